"""Typed configs for every stage, named presets, and the two global switches.

This is the only module that reads environment variables:

* ``WORKBENCH_SMOKE=1``  shrinks every notebook and job (sizes, steps, epochs) for CI.
* ``WORKBENCH_PROFILE``  picks the profile: ``sandbox`` (default), ``paper_b32`` or ``paper_l14``.
* ``WORKBENCH_CLIP_CHECKPOINT`` points a paper profile at a local open_clip checkpoint file.
* ``WORKBENCH_RUN_DIR`` (set by the main job) redirects figures to that run's folder.

Each stage has a dataclass validated in ``__post_init__`` and built by ``preset(name)``, where the
names are ``tiny`` (unit tests), ``sandbox``, ``paper_b32`` and ``paper_l14``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Optional

PROFILES = ("sandbox", "paper_b32", "paper_l14")
PRESETS = ("tiny",) + PROFILES


# ----------------------------------------------------------------------------- switches
def smoke() -> bool:
    """True when ``WORKBENCH_SMOKE`` is set to a truthy value (1/true/yes)."""
    return os.environ.get("WORKBENCH_SMOKE", "0").strip().lower() in ("1", "true", "yes", "on")


def scaled(full: int, smoke_value: int) -> int:
    """``smoke_value`` under ``WORKBENCH_SMOKE=1``, else ``full``: the one knob notebooks use to shrink."""
    return smoke_value if smoke() else full


def profile() -> str:
    """The active profile, from ``WORKBENCH_PROFILE`` (default ``sandbox``)."""
    name = os.environ.get("WORKBENCH_PROFILE", "sandbox").strip() or "sandbox"
    check_choice("WORKBENCH_PROFILE", name, PROFILES)
    return name


def clip_checkpoint_override() -> Optional[str]:
    """A local checkpoint path for the paper CLIP, from ``WORKBENCH_CLIP_CHECKPOINT``, or None."""
    value = os.environ.get("WORKBENCH_CLIP_CHECKPOINT", "").strip()
    return value or None


def run_dir_override() -> Optional[str]:
    """The main job's run folder, from ``WORKBENCH_RUN_DIR``, or None."""
    return os.environ.get("WORKBENCH_RUN_DIR", "").strip() or None


# ----------------------------------------------------------------------------- validation helpers
def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}; pick one of those.")


def check_range(name: str, value, lo=None, hi=None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name}={value!r} is outside the allowed range {rng}; choose a value inside it.")


class _Preset:
    """Mixin: ``Cls.preset(name, **overrides)`` builds a named preset and applies overrides."""

    @classmethod
    def preset(cls, name: str, **overrides):
        check_choice(f"{cls.__name__}.preset(name)", name, PRESETS)
        builder = getattr(cls, f"_preset_{name}", None)
        if builder is None:
            raise ValueError(f"{cls.__name__} has no preset {name!r}; available: "
                             f"{[p for p in PRESETS if hasattr(cls, f'_preset_{p}')]}.")
        cfg = builder()
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"{cls.__name__}.preset({name!r}) got unknown overrides {sorted(unknown)}; "
                            f"valid fields: {sorted(known)}.")
        return replace(cfg, **overrides)


# ----------------------------------------------------------------------------- sandbox world
@dataclass(frozen=True)
class WorldConfig(_Preset):
    """The procedural scene world: what can appear in a scene and how images are rendered."""
    seed: int = 0
    image_size: int = 64                 # rendered "real" image side, pixels
    supersample: int = 4                 # draw at image_size*supersample then downsample (anti-aliasing)
    min_objects: int = 1
    max_objects: int = 4
    n_train: int = 20000                 # scenes per split
    n_val: int = 1000
    n_test: int = 2000
    n_test_unseen: int = 500             # test scenes that contain a held-out colour-shape pair
    noise_std: float = 4.0               # pixel noise, in 0..255 units
    max_rotation_deg: float = 15.0

    def __post_init__(self):
        check_range("image_size", self.image_size, 16, 1024)
        check_range("supersample", self.supersample, 1, 8)
        check_range("min_objects", self.min_objects, 1, 4)
        check_range("max_objects", self.max_objects, self.min_objects, 4)
        for name in ("n_train", "n_val", "n_test", "n_test_unseen"):
            check_range(name, getattr(self, name), 0)
        check_range("noise_std", self.noise_std, 0.0, 64.0)

    def split_size(self, split: str) -> int:
        check_choice("split", split, ("train", "val", "test", "test_unseen"))
        return getattr(self, f"n_{split}")

    @staticmethod
    def _preset_tiny():
        return WorldConfig(n_train=64, n_val=16, n_test=32, n_test_unseen=8)

    @staticmethod
    def _preset_sandbox():
        return WorldConfig()

    # The paper profiles still use the sandbox world for their offline smoke paths.
    _preset_paper_b32 = _preset_sandbox
    _preset_paper_l14 = _preset_sandbox


# ----------------------------------------------------------------------------- CLIP backbone
@dataclass(frozen=True)
class ClipConfig(_Preset):
    """Which CLIP to load and from where.

    ``pretrained`` is an open_clip tag (``"openai"``), a path to a local checkpoint file
    (``.safetensors``/``.pt``/``.bin``), a path relative to the repository (``data/...``), or None for
    random weights.
    """
    model_name: str = "wb-sandbox-vit"
    pretrained: Optional[str] = "data/sandbox_clip.safetensors"
    pool_grid: Optional[int] = None      # average-pool the patch grid to pool_grid x pool_grid (L/14: 8)
    precision: str = "fp32"

    def __post_init__(self):
        if not self.model_name:
            raise ValueError("model_name is empty; give an open_clip model name such as 'ViT-B-32'.")
        if self.pool_grid is not None:
            check_range("pool_grid", self.pool_grid, 1, 64)
        check_choice("precision", self.precision, ("fp32", "fp16", "bf16"))

    @staticmethod
    def _preset_tiny():
        return ClipConfig(model_name="wb-tiny-vit", pretrained=None)

    @staticmethod
    def _preset_sandbox():
        return ClipConfig()

    @staticmethod
    def _preset_paper_b32():
        return ClipConfig(model_name="ViT-B-32", pretrained=clip_checkpoint_override() or "openai")

    @staticmethod
    def _preset_paper_l14():
        return ClipConfig(model_name="ViT-L-14", pretrained=clip_checkpoint_override() or "openai",
                          pool_grid=8)


# ----------------------------------------------------------------------------- real caption data
@dataclass(frozen=True)
class RealDataConfig(_Preset):
    """Where real images and reference captions live (paper profiles). Paths are relative to the repo."""
    image_dir: str = "data/mscoco/val2014"
    captions_file: str = "data/mscoco/karpathy/mscoco_val.json"   # Karpathy list or COCO-format json

    def __post_init__(self):
        if not self.image_dir or not self.captions_file:
            raise ValueError("image_dir and captions_file must both be set (paths to images and captions).")

    @staticmethod
    def _preset_paper_b32():
        return RealDataConfig()

    _preset_paper_l14 = _preset_paper_b32
    _preset_tiny = _preset_paper_b32


# ----------------------------------------------------------------------------- CLIP pretraining
@dataclass(frozen=True)
class PretrainConfig(_Preset):
    """Contrastive pretraining of the sandbox CLIP on sandbox renders and captions."""
    model_name: str = "wb-sandbox-vit"
    steps: int = 600
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0
    checkpoint_every: int = 50
    out_weights: str = "data/sandbox_clip.safetensors"
    run_dir: str = "runs/pretrain_clip"
    threads: Optional[int] = None        # torch intra-op threads; None keeps torch's default
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self):
        check_range("steps", self.steps, 1)
        check_range("batch_size", self.batch_size, 2)
        check_range("lr", self.lr, 0.0)
        check_range("warmup_steps", self.warmup_steps, 0, self.steps)
        check_range("checkpoint_every", self.checkpoint_every, 1)

    @staticmethod
    def _preset_tiny():
        return PretrainConfig(model_name="wb-tiny-vit", steps=6, batch_size=16, warmup_steps=2,
                              checkpoint_every=2, world=WorldConfig.preset("tiny"),
                              run_dir="runs/pretrain_clip_tiny", out_weights="runs/tiny_clip.safetensors")

    @staticmethod
    def _preset_sandbox():
        return PretrainConfig()


# ----------------------------------------------------------------------------- modality-gap analysis
@dataclass(frozen=True)
class GapConfig(_Preset):
    """Notebook 01: the modality gap analyses."""
    n_pairs: int = 1000                  # image-caption pairs analysed
    split: str = "val"
    subregion_windows: tuple = (2, 4)    # window sides (in patches) pooled into sub-region features
    subregion_top: int = 4               # sub-regions mixed into the global feature (MacCap's top-L)
    subregion_weight: float = 1.0        # weight of the normalised sub-region feature in the mix
    capdec_variance: float = 0.016       # CapDec's noise variance, for comparison
    seed: int = 0

    def __post_init__(self):
        check_range("n_pairs", self.n_pairs, 8)
        check_choice("split", self.split, ("train", "val", "test", "test_unseen"))
        check_range("subregion_top", self.subregion_top, 1)

    @staticmethod
    def _preset_tiny():
        return GapConfig(n_pairs=32)

    @staticmethod
    def _preset_sandbox():
        return GapConfig()

    _preset_paper_b32 = _preset_sandbox
    _preset_paper_l14 = _preset_sandbox
