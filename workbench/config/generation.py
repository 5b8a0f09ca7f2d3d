"""Configs of the generative stages: sandbox CLIP pretraining, the sandbox text-to-image model, synthesis."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .core import Preset, check_choice, check_range
from .world import ClipConfig, WorldConfig


# ----------------------------------------------------------------------------- CLIP pretraining
@dataclass(frozen=True)
class PretrainConfig(Preset):
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
    logit_scale: Optional[float] = None  # fixed logit scale (OpenAI CLIP ends at 100); None learns it (capped at 100)
    monitor_every: int = 0               # every N steps record the gap and zero-shot numbers on val (0: never)
    text: str = "annotator"              # pretraining text: "annotator" (the references) or "alt" (web alt-text)
    schedule_steps: Optional[int] = None  # length of the cosine learning-rate schedule (None: ``steps``); training
    #                                      stops at ``steps``, so steps < schedule_steps is a stop chosen on val
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self):
        check_choice("text", self.text, ("alt", "annotator"))
        check_range("steps", self.steps, 1)
        check_range("batch_size", self.batch_size, 2)
        check_range("lr", self.lr, 0.0)
        check_range("warmup_steps", self.warmup_steps, 0, self.steps)
        check_range("checkpoint_every", self.checkpoint_every, 1)
        if self.logit_scale is not None:
            check_range("logit_scale", self.logit_scale, 1.0, 1000.0)
        check_range("monitor_every", self.monitor_every, 0)
        if self.schedule_steps is not None:
            check_range("schedule_steps", self.schedule_steps, self.steps)

    @property
    def schedule_length(self) -> int:
        """Steps of the cosine learning-rate schedule."""
        return self.schedule_steps if self.schedule_steps is not None else self.steps

    @staticmethod
    def _preset_tiny():
        return PretrainConfig(model_name="wb-tiny-vit", steps=6, batch_size=16, warmup_steps=2,
                              checkpoint_every=2, world=WorldConfig.preset("tiny"),
                              run_dir="runs/pretrain_clip_tiny", out_weights="runs/tiny_clip.safetensors")

    @staticmethod
    def _preset_sandbox():
        # A fixed logit scale from random initialisation: with a low temperature the contrastive loss keeps
        # the cones of the two modalities apart ("Mind the Gap"). It is the calibration knob: OpenAI CLIP's 100
        # let the first (shapes) world align its pairs to cosine 0.58 by step 300 (still rising); 800 kept the
        # paired cosine at 0.41 (real ViT-B/32: ~0.3). The things-in-places world needs more steps: colour is
        # learned by step 400, categories only after it (README, "The sandbox CLIP").
        # World v7: one 2,800-step cosine schedule stopped at 1,050, the earliest of its 350-step segments whose val
        # statistics meet every calibration bound (scripts/trial_clip_steps.py; docs/world_trials.md)
        return PretrainConfig(logit_scale=800.0, steps=1050, schedule_steps=2800, monitor_every=100)


# ----------------------------------------------------------------------------- sandbox text-to-image model
@dataclass(frozen=True)
class DiffusionConfig(Preset):
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
    decoder_steps: int = 2000                # stage 3: the VAE *decoder* alone, fine-tuned with pixel MSE on
                                             # training renders + flat sketches of training captions (the
                                             # encoder, hence the UNet's latent space, unchanged); 0 = skip.
                                             # Issue 10 probe: the stage-1 VAE's round trip drops the sketches'
                                             # single-object faithfulness from 0.91 to 0.73 on val
    decoder_batch: int = 32
    decoder_lr: float = 3e-4
    decoder_renders: int = 4000              # the first training renders in its data
    decoder_sketches: int = 2000             # sketches of the first caption of the first training scenes
    warmup_steps: int = 100
    checkpoint_every: int = 200
    seed: int = 0
    out_dir: str = "data/sandbox_sd"
    run_dir: str = "runs/train_diffusion"
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self):
        check_range("image_size", self.image_size, 16, 1024)
        for name in ("vae_steps", "unet_steps", "vae_batch", "unet_batch", "checkpoint_every", "warmup_steps",
                     "decoder_batch"):
            check_range(name, getattr(self, name), 1)
        for name in ("decoder_steps", "decoder_renders", "decoder_sketches"):
            check_range(name, getattr(self, name), 0)
        if self.decoder_steps and not (self.decoder_renders or self.decoder_sketches):
            raise ValueError(f"decoder_steps={self.decoder_steps} needs training images: set decoder_renders or "
                             f"decoder_sketches above 0 (or decoder_steps=0 to skip the decoder stage).")
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
                               norm_groups=4, vae_steps=4, decoder_steps=2, decoder_batch=4,
                               decoder_renders=8, decoder_sketches=4,
                               vae_batch=4, unet_steps=4, unet_batch=4, warmup_steps=1, checkpoint_every=2,
                               world=WorldConfig.preset("tiny"), out_dir="runs/tiny_sd",
                               run_dir="runs/train_diffusion_tiny")

    @staticmethod
    def _preset_sandbox():
        return DiffusionConfig()


# ----------------------------------------------------------------------------- synthesis engine
@dataclass(frozen=True)
class SynthesisConfig(Preset):
    """Text-to-image synthesis of a caption corpus with any diffusers text-to-image pipeline.

    ``model_id`` is a local pipeline folder (relative to the repo or absolute) or a hub id. Defaults of
    the paper presets follow SynTIC: Stable Diffusion 1.5, 20 steps, 512x512; ``paper_fast`` is SD-Turbo
    (1 step) for the ViT-B/32 profile. ``clip_profile`` names the ``ClipConfig`` preset whose CLIP scores each
    (image, caption) pair for the CXE weight: the CLIP of the profile the images are made for.
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
    layout_strength: Optional[float] = None  # layout-guided img2img from a sketch of the parsed caption at this
                                             # strength (sandbox captions only); None or 1: pure text-to-image
    clip_profile: str = "sandbox"          # ClipConfig preset of the CLIP that scores the pairs (CXE weights)
    out_dir: str = "runs/synthetic/sandbox"

    def __post_init__(self):
        check_range("steps", self.steps, 1, 1000)
        check_range("guidance", self.guidance, 0.0, 50.0)
        check_range("batch_size", self.batch_size, 1)
        check_range("shard_size", self.shard_size, 1)
        check_choice("dtype", self.dtype, ("fp32", "fp16", "bf16"))
        check_choice("clip_profile", self.clip_profile, ClipConfig.presets())
        if self.layout_strength is not None:
            check_range("layout_strength", self.layout_strength, 0.05, 1.0)
            if self.layout_strength == 1.0:              # the whole schedule from noise: plain text-to-image
                object.__setattr__(self, "layout_strength", None)
        for name in ("height", "width"):
            if getattr(self, name) % 8:
                raise ValueError(f"{name}={getattr(self, name)} must be a multiple of 8 (the VAE's stride).")

    def settings(self) -> dict:
        """What determines the images (the manifest records it; a resume must match it)."""
        return {k: getattr(self, k) for k in ("model_id", "steps", "guidance", "height", "width", "seed",
                                                "dtype", "negative_prompt", "layout_strength")}

    @staticmethod
    def _preset_tiny():
        return SynthesisConfig(model_id="runs/tiny_sd", steps=2, batch_size=4, shard_size=8, clip_profile="tiny",
                               out_dir="runs/synthetic/tiny")

    @staticmethod
    def _preset_sandbox():
        # Layout-guided at strength 0.1 (two of the 20 steps redraw the sketch), chosen on val captions by
        # `workbench calibrate` as the setting closest to SD 1.5's GenEval profile on single object and
        # colour (data/sandbox_synthesis.json; world v6: no strength met the synthetic-vs-real probe bound, recorded)
        return SynthesisConfig(layout_strength=0.1)

    @staticmethod
    def _preset_paper_b32():
        return SynthesisConfig(model_id="stable-diffusion-v1-5/stable-diffusion-v1-5", steps=20, guidance=7.5,
                               height=512, width=512, batch_size=16, dtype="fp16", clip_profile="paper_b32",
                               out_dir="runs/synthetic/sd15")

    @staticmethod
    def _preset_paper_l14():
        # the same images as paper_b32 (same settings and out_dir, so one run serves both profiles), scored by
        # ViT-L/14: a resume with the other scorer re-scores the recorded images instead of mixing scores
        return SynthesisConfig.preset("paper_b32", clip_profile="paper_l14")

    @staticmethod
    def _preset_paper_fast():
        return SynthesisConfig(model_id="stabilityai/sd-turbo", steps=1, guidance=0.0, height=512, width=512,
                               batch_size=32, dtype="fp16", clip_profile="paper_b32", out_dir="runs/synthetic/sd-turbo")


