"""Configs of the data sources: the sandbox world, CLIP backbones, real caption data, test protocols."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .core import Preset, check_choice, check_range, clip_checkpoint_override
from .layout import reference_set


# ----------------------------------------------------------------------------- sandbox world
@dataclass(frozen=True)
class WorldConfig(Preset):
    """The procedural scene world: what can appear in a scene and how images are rendered."""
    seed: int = 0
    image_size: int = 64                 # rendered "real" image side, pixels
    supersample: int = 4                 # draw at image_size*supersample then downsample (anti-aliasing)
    min_objects: int = 1
    max_objects: int = 6
    n_train: int = 20000                 # scenes per split
    n_val: int = 1000
    n_test: int = 2000
    n_test_unseen: int = 500             # test scenes that contain a held-out colour-shape pair
    noise_std: float = 4.0               # pixel noise, in 0..255 units
    max_rotation_deg: float = 15.0

    def __post_init__(self):
        check_range("image_size", self.image_size, 16, 1024)
        check_range("supersample", self.supersample, 1, 8)
        check_range("min_objects", self.min_objects, 1, 8)
        check_range("max_objects", self.max_objects, self.min_objects, 8)
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
class ClipConfig(Preset):
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
class RealDataConfig(Preset):
    """Where real images and reference captions live (paper profiles). Paths are relative to the repo; the
    defaults are MSCOCO's Karpathy val split in the data layout (``config/layout.py``), whose images are all in
    COCO's val2014."""
    image_dir: str = reference_set("mscoco", "val").image_dir
    captions_file: str = reference_set("mscoco", "val").captions_file   # any format of readers.load_captions

    def __post_init__(self):
        if not self.image_dir or not self.captions_file:
            raise ValueError("image_dir and captions_file must both be set (paths to images and captions).")

    @staticmethod
    def _preset_paper_b32():
        return RealDataConfig()

    _preset_paper_l14 = _preset_paper_b32
    _preset_tiny = _preset_paper_b32


@dataclass(frozen=True)
class ProtocolConfig(Preset):
    """In-domain / cross-domain evaluation (PCM-Net Tables 1-2): a captioner trained on ``train_corpus``'s
    text is scored on each test set; a set from the same corpus is in-domain, any other cross-domain. The
    default test sets are the Karpathy test splits of the data layout (``config/layout.py``)."""
    train_corpus: str = "mscoco"
    test_sets: tuple = (reference_set("mscoco"), reference_set("flickr30k"))
    max_images: Optional[int] = None     # first N images of each set (None: all that are present)
    beam: int = 3
    on_unreadable: str = "skip"          # an image that does not decode: "skip" (named, counted) or "fail"

    def __post_init__(self):
        if not self.test_sets:
            raise ValueError("test_sets is empty; give at least one ReferenceSetConfig(corpus, image_dir, captions_file).")
        if self.max_images is not None:
            check_range("max_images", self.max_images, 1)
        check_range("beam", self.beam, 1)
        check_choice("on_unreadable", self.on_unreadable, ("skip", "fail"))

    def domain(self, corpus: str) -> str:
        return "in-domain" if corpus == self.train_corpus else "cross-domain"

    @staticmethod
    def _preset_paper_b32():
        return ProtocolConfig()

    @staticmethod
    def _preset_paper_flickr30k():
        """Trained on Flickr30k text: Flickr30k is in-domain, MSCOCO cross-domain."""
        return ProtocolConfig(train_corpus="flickr30k")

    _preset_paper_l14 = _preset_paper_b32


