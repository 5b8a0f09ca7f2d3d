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
    def presets(cls) -> list:
        """Names of this stage's presets (the shared ones first, then stage-specific extras)."""
        extra = sorted(n[len("_preset_"):] for n in dir(cls) if n.startswith("_preset_"))
        return [p for p in PRESETS if p in extra] + [p for p in extra if p not in PRESETS]

    @classmethod
    def preset(cls, name: str, **overrides):
        builder = getattr(cls, f"_preset_{name}", None)
        if builder is None:
            raise ValueError(f"{cls.__name__}.preset(name)={name!r} is not one of {tuple(cls.presets())}; "
                             "pick one of those.")
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
    shape_negatives: bool = True         # NegCLIP-style hard negatives: each caption with a shape word swapped
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


# ----------------------------------------------------------------------------- sandbox text-to-image model
@dataclass(frozen=True)
class DiffusionConfig(_Preset):
    """The sandbox mini Stable Diffusion: component sizes and the two training stages (VAE, then UNet)."""
    image_size: int = 64
    vae_channels: tuple = (16, 32, 32)       # 3 blocks: 64x64x3 <-> 16x16x4
    unet_channels: tuple = (32, 64, 64)
    cross_attention_levels: tuple = (1,)     # UNet levels with text cross-attention (level 1 = 8x8 latents);
                                             # attention at 16x16 costs 3x the step time on CPU
    unet_layers_per_block: int = 1
    text_time_embedding: bool = True         # also add an attention-pooled caption embedding to the UNet's
                                             # time embedding (diffusers addition_embed_type="text"), so
                                             # every ResNet block, at every resolution, sees the caption
    attention_head_dim: int = 8
    norm_groups: int = 8
    vae_steps: int = 800
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-5
    vae_latent_channels: int = 8             # 64x64x3 -> 16x16x8: 6x compression (SD: 48x on 512 px photos)
    vae_perceptual_weight: float = 1.0       # MSE of the frozen sandbox CLIP's patch tokens of input vs
                                             # reconstruction (SD's VAE uses LPIPS with VGG the same way)
    unet_steps: int = 3000
    unet_batch: int = 64
    unet_lr: float = 1e-3
    cond_dropout: float = 0.1                # caption dropout, for classifier-free guidance
    warmup_steps: int = 100
    checkpoint_every: int = 200
    seed: int = 0
    out_dir: str = "data/sandbox_sd"
    run_dir: str = "runs/train_diffusion"
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self):
        check_range("image_size", self.image_size, 16, 1024)
        for name in ("vae_steps", "unet_steps", "vae_batch", "unet_batch", "checkpoint_every", "warmup_steps"):
            check_range(name, getattr(self, name), 1)
        check_range("cond_dropout", self.cond_dropout, 0.0, 1.0)
        check_range("vae_latent_channels", self.vae_latent_channels, 1, 64)
        check_range("vae_perceptual_weight", self.vae_perceptual_weight, 0.0)
        if not self.cross_attention_levels or not all(0 <= k < len(self.unet_channels) - 1
                                                      for k in self.cross_attention_levels):
            raise ValueError(f"cross_attention_levels={self.cross_attention_levels} must name levels in "
                             f"[0, {len(self.unet_channels) - 2}] (the last level has no attention).")
        if self.image_size % 2 ** (len(self.vae_channels) - 1):
            raise ValueError(f"image_size={self.image_size} must be divisible by 2**(len(vae_channels)-1).")

    @staticmethod
    def _preset_tiny():
        return DiffusionConfig(vae_channels=(8, 8), unet_channels=(8, 16), cross_attention_levels=(0,),
                               norm_groups=4, vae_steps=4,
                               vae_batch=4, unet_steps=4, unet_batch=4, warmup_steps=1, checkpoint_every=2,
                               world=WorldConfig.preset("tiny"), out_dir="runs/tiny_sd",
                               run_dir="runs/train_diffusion_tiny")

    @staticmethod
    def _preset_sandbox():
        return DiffusionConfig()


# ----------------------------------------------------------------------------- synthesis engine
@dataclass(frozen=True)
class SynthesisConfig(_Preset):
    """Text-to-image synthesis of a caption corpus with any diffusers text-to-image pipeline.

    ``model_id`` is a local pipeline folder (relative to the repo or absolute) or a hub id. Defaults of
    the paper presets follow SynTIC: Stable Diffusion 1.5, 20 steps, 512x512; ``paper_fast`` is SD-Turbo.
    """
    model_id: str = "data/sandbox_sd"
    steps: int = 20
    guidance: float = 4.0
    height: int = 64
    width: int = 64
    batch_size: int = 32
    seed: int = 0
    shard_size: int = 1000                 # captions per shard folder / manifest file
    dtype: str = "fp32"                    # fp16 on GPUs for the paper models
    negative_prompt: Optional[str] = None
    clipscore_w: float = 2.5               # CLIPScore = w * max(cos, 0) (Hessel et al.)
    out_dir: str = "runs/synthetic/sandbox"

    def __post_init__(self):
        check_range("steps", self.steps, 1, 1000)
        check_range("guidance", self.guidance, 0.0, 50.0)
        check_range("batch_size", self.batch_size, 1)
        check_range("shard_size", self.shard_size, 1)
        check_choice("dtype", self.dtype, ("fp32", "fp16", "bf16"))
        for name in ("height", "width"):
            if getattr(self, name) % 8:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of 8 (the VAE's stride).")

    def settings(self) -> dict:
        """What determines the images (the manifest records it; a resume must match it)."""
        return {k: getattr(self, k) for k in ("model_id", "steps", "guidance", "height", "width", "seed",
                                                "dtype", "negative_prompt")}

    @staticmethod
    def _preset_tiny():
        return SynthesisConfig(model_id="runs/tiny_sd", steps=2, batch_size=4, shard_size=8,
                               out_dir="runs/synthetic/tiny")

    @staticmethod
    def _preset_sandbox():
        return SynthesisConfig()

    @staticmethod
    def _preset_paper_b32():
        return SynthesisConfig(model_id="stable-diffusion-v1-5/stable-diffusion-v1-5", steps=20, guidance=7.5,
                               height=512, width=512, batch_size=16, dtype="fp16", out_dir="runs/synthetic/sd15")

    _preset_paper_l14 = _preset_paper_b32

    @staticmethod
    def _preset_paper_fast():
        return SynthesisConfig(model_id="stabilityai/sd-turbo", steps=1, guidance=0.0, height=512, width=512,
                               batch_size=32, dtype="fp16", out_dir="runs/synthetic/sd-turbo")


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


# ----------------------------------------------------------------------------- CLIP feature cache
@dataclass(frozen=True)
class FeatureConfig(_Preset):
    """Cached CLIP features of an image set / a caption set: shards of safetensors + a manifest."""
    batch_size: int = 256                # images encoded per forward pass
    shard_size: int = 4096               # items per shard file
    dtype: str = "fp16"                  # stored precision
    root: str = "runs/cache/features"    # caches live in <root>/<name>

    def __post_init__(self):
        check_range("batch_size", self.batch_size, 1)
        check_range("shard_size", self.shard_size, 1)
        check_choice("dtype", self.dtype, ("fp16", "fp32"))

    @staticmethod
    def _preset_tiny():
        return FeatureConfig(batch_size=8, shard_size=16, root="runs/cache/features-tiny")

    @staticmethod
    def _preset_sandbox():
        return FeatureConfig()

    @staticmethod
    def _preset_paper_b32():
        return FeatureConfig(batch_size=128, shard_size=8192)

    _preset_paper_l14 = _preset_paper_b32


# ----------------------------------------------------------------------------- concept vocabulary
@dataclass(frozen=True)
class ConceptConfig(_Preset):
    """The concept bank: frequent nouns of the training corpus and their CLIP text embeddings."""
    max_size: int = 500                  # keep at most this many nouns (most frequent first)
    min_count: int = 5                   # ... each seen at least this many times
    template: str = "A photo of {}."     # {} = the concept, with its article ("a dog", "an apple")
    ensemble: bool = False               # average over PROMPT_ENSEMBLE templates instead of one
    extra_stopwords: tuple = ()          # nouns to drop on top of the built-in list

    def __post_init__(self):
        check_range("max_size", self.max_size, 1)
        check_range("min_count", self.min_count, 1)
        if "{}" not in self.template:
            raise ValueError(f"template={self.template!r} has no '{{}}' slot for the concept; e.g. 'A photo of {{}}.'")

    @staticmethod
    def _preset_tiny():
        return ConceptConfig(min_count=1)

    @staticmethod
    def _preset_sandbox():
        return ConceptConfig(min_count=20)

    @staticmethod
    def _preset_paper_b32():
        return ConceptConfig(max_size=500, min_count=50, ensemble=True)

    _preset_paper_l14 = _preset_paper_b32


# ----------------------------------------------------------------------------- patch-wise cross-modal mix-up
@dataclass(frozen=True)
class PCMConfig(_Preset):
    """PCM: K salient concepts, M mixed patches, tau for the textual patch map and the pair selection.

    ``selection``: ``"pair"`` = top-M (patch, concept) pairs as in the official code (<= M patches),
    ``"patch"`` = top-M patches by their best concept affinity (exactly M)."""
    k: int = 5
    m: int = 5
    tau: float = 0.01
    concept_temperature: float = 0.01    # softmax temperature over the concept bank (Eq. 1)
    concept_threshold: float = 0.0       # concepts with softmax probability <= this are masked out
    selection: str = "pair"

    def __post_init__(self):
        check_range("k", self.k, 1)
        check_range("m", self.m, 0)
        check_range("tau", self.tau, 1e-6)
        check_range("concept_temperature", self.concept_temperature, 1e-6)
        check_range("concept_threshold", self.concept_threshold, 0.0, 1.0)
        check_choice("selection", self.selection, ("pair", "patch"))

    @staticmethod
    def _preset_tiny():
        return PCMConfig(k=2, m=3)

    @staticmethod
    def _preset_sandbox():
        return PCMConfig(k=3, m=8)

    @staticmethod
    def _preset_paper_b32():
        return PCMConfig(k=5, m=5)       # official MSCOCO B/32 config: TOPK 5, TOPK2 5, THRES 0

    _preset_paper_l14 = _preset_paper_b32


# ----------------------------------------------------------------------------- captioner
@dataclass(frozen=True)
class CaptionerConfig(_Preset):
    """The PCM-Net encoder-decoder (paper: N_e = N_d = 3, width 512, 8 heads)."""
    width: int = 512
    heads: int = 8
    encoder_layers: int = 3
    decoder_layers: int = 3
    ff_mult: int = 4
    dropout: float = 0.1
    max_length: int = 20                 # words per caption
    noise_variance: float = 0.016        # CapDec-style Gaussian noise on the global feature while training
    use_patches: bool = True             # False: global feature only (the text-only CapDec-style model)
    mixup: bool = True                   # PCM mix-up in training (replace) and inference (append)

    def __post_init__(self):
        check_range("width", self.width, 8)
        check_range("heads", self.heads, 1)
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be divisible by heads={self.heads}.")
        for name in ("encoder_layers", "decoder_layers", "ff_mult", "max_length"):
            check_range(name, getattr(self, name), 1)
        check_range("dropout", self.dropout, 0.0, 0.9)
        check_range("noise_variance", self.noise_variance, 0.0, 1.0)

    @staticmethod
    def _preset_tiny():
        return CaptionerConfig(width=32, heads=2, encoder_layers=1, decoder_layers=1, ff_mult=2)

    @staticmethod
    def _preset_sandbox():
        return CaptionerConfig(width=128, heads=4, encoder_layers=2, decoder_layers=2, ff_mult=2)

    @staticmethod
    def _preset_paper_b32():
        return CaptionerConfig()

    _preset_paper_l14 = _preset_paper_b32


# ----------------------------------------------------------------------------- captioner training
@dataclass(frozen=True)
class TrainConfig(_Preset):
    """Optimisation of the captioner: Adam + Noam warm-up, clipping, CXE, checkpoints, val CIDEr selection."""
    epochs: int = 12
    batch_size: int = 32
    lr: float = 5e-4                     # peak of the Noam schedule (reached at the end of warm-up)
    warmup_steps: int = 10000
    grad_clip: float = 0.1               # official: clip by value 0.1
    label_smoothing: float = 0.1
    cxe: bool = True                     # CLIP-weighted cross-entropy (Eq. 11); False = plain cross-entropy
    cxe_w: float = 4.0                   # weight = min(1, w * cos(g_I, g_S)) (paper 4; official B/32 configs 2.5)
    focal_gamma: float = 0.0             # the official code's extra (1 - p)^gamma term; off by default
    seed: int = 0
    beam_size: int = 3
    val_size: int = 500                  # val images scored with CIDEr after each epoch (picks the checkpoint)
    checkpoint_every: int = 500          # steps between resumable checkpoints (and at every epoch end)
    mixed_precision: str = "no"          # "fp16"/"bf16" on GPUs through accelerate
    run_dir: str = "runs/captioner"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "warmup_steps", "beam_size", "val_size", "checkpoint_every"):
            check_range(name, getattr(self, name), 1)
        check_range("lr", self.lr, 0.0)
        check_range("label_smoothing", self.label_smoothing, 0.0, 0.5)
        check_range("cxe_w", self.cxe_w, 0.0)
        check_range("focal_gamma", self.focal_gamma, 0.0)
        check_choice("mixed_precision", self.mixed_precision, ("no", "fp16", "bf16"))

    @staticmethod
    def _preset_tiny():
        return TrainConfig(epochs=2, batch_size=8, warmup_steps=4, val_size=8, checkpoint_every=2,
                           run_dir="runs/captioner-tiny")

    @staticmethod
    def _preset_sandbox():
        return TrainConfig(epochs=scaled(8, 1), batch_size=64, lr=1e-3, warmup_steps=300, checkpoint_every=100,
                           val_size=scaled(300, 24))

    @staticmethod
    def _preset_paper_b32():
        return TrainConfig(cxe_w=2.5)    # the official MSCOCO B/32 config (ALPHA 2.5); the paper states 4

    _preset_paper_l14 = _preset_paper_b32


# ----------------------------------------------------------------------------- ablation
@dataclass(frozen=True)
class AblationConfig(_Preset):
    """The sandbox ablation: data sizes, variants, seeds and the presets of the stages it runs."""
    n_train: int = 4000                  # training scenes (one caption each, one synthetic image per caption)
    n_val: int = 300
    n_test: int = 1000
    n_test_unseen: int = 300
    vocab_min_count: int = 3
    variants: tuple = ("text-only", "base", "+mixup", "+cxe", "pcm-net", "oracle")
    seeds: tuple = (0, 1, 2)
    captioner_preset: str = "sandbox"
    train_preset: str = "sandbox"
    pcm_preset: str = "sandbox"
    world_preset: str = "sandbox"
    synthesis_preset: str = "sandbox"
    out_dir: str = "runs/ablation/sandbox"

    def __post_init__(self):
        for name in ("n_train", "n_val", "n_test", "n_test_unseen"):
            check_range(name, getattr(self, name), 2)
        from .ablation import VARIANTS
        for v in self.variants:
            check_choice("variants", v, tuple(VARIANTS))
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed, e.g. (0, 1, 2).")

    @staticmethod
    def _preset_tiny():
        return AblationConfig(n_train=64, n_val=8, n_test=8, n_test_unseen=4, vocab_min_count=1, seeds=(0,),
                              captioner_preset="tiny", train_preset="tiny", pcm_preset="tiny",
                              world_preset="tiny", synthesis_preset="tiny", out_dir="runs/ablation/tiny")

    @staticmethod
    def _preset_sandbox():
        return AblationConfig(n_train=scaled(4000, 96), n_val=scaled(300, 16), n_test=scaled(1000, 24),
                              n_test_unseen=scaled(300, 8), seeds=scaled((0, 1, 2), (0,)),
                              out_dir="runs/ablation/sandbox" + ("-smoke" if smoke() else ""))
