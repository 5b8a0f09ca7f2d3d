"""Configs of the captioning stages: gap analysis, feature cache, concepts, PCM, captioner, training, ablation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import carryover as R
from .core import PRESETS, Preset, check_choice, check_range, scale, scaled


# ----------------------------------------------------------------------------- modality-gap analysis
@dataclass(frozen=True)
class GapConfig(Preset):
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
class FeatureConfig(Preset):
    """Cached CLIP features of an image set / a caption set: shards of safetensors + a manifest."""
    batch_size: int = 256                # images encoded per forward pass
    shard_size: int = 4096               # items per shard file
    dtype: str = "fp16"                  # stored precision
    root: str = "runs/cache/features"    # caches live in <root>/<name>
    verify_checksums: bool = False       # re-hash every shard when a cache is opened (default: only shards
                                         # whose file size or mtime differ from the manifest's)

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
class ConceptConfig(Preset):
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
class PCMConfig(Preset):
    """PCM: K salient concepts, M mixed patches, tau for the textual patch map and the pair selection.

    ``selection``: ``"pair"`` = top-M (patch, concept) pairs as in the official code (<= M patches),
    ``"patch"`` = top-M patches by their best concept affinity (exactly M)."""
    k: int = 5
    m: int = 5
    tau: float = 0.01                    # the presets carry it in units of the CLIP's temperature (carryover)
    concept_temperature: float = 0.01    # softmax temperature over the concept bank (Eq. 1)
    concept_threshold: float = 0.0       # concepts with softmax probability <= this are masked out
    selection: str = "pair"

    def __post_init__(self):
        check_range("k", self.k, 1)
        check_range("m", self.m, 0)
        check_range("tau", self.tau, 1e-6, 1e6)                  # a softmax temperature: finite and > 0
        check_range("concept_temperature", self.concept_temperature, 1e-6, 1e6)
        check_range("concept_threshold", self.concept_threshold, 0.0, 1.0)
        check_choice("selection", self.selection, ("pair", "patch"))

    @staticmethod
    def _preset_tiny():
        return PCMConfig(k=2, m=3)

    @staticmethod
    def _preset_sandbox():
        return PCMConfig._carried(R.sandbox_backbone(), R.SANDBOX_BANK_SIZE)

    @staticmethod
    def _preset_paper_b32():
        return PCMConfig._carried(R.VIT_B32, R.PCM_K[1])   # official MSCOCO B/32 config: TOPK 5, TOPK2 5, THRES 0

    @staticmethod
    def _preset_paper_l14():
        return PCMConfig._carried(R.VIT_L14, R.PCM_K[1], R.PCM_NET_L14_M)      # the official L/14 config's

    @staticmethod
    def _carried(backbone, bank_size: int, m_source=R.PCM_M) -> "PCMConfig":
        """K, M and both temperatures carried from PCM-Net's setting (``carryover``)."""
        tau = R.temperature(backbone)
        return PCMConfig(k=R.pcm_k(bank_size), m=R.pcm_m(backbone, m_source), tau=tau, concept_temperature=tau)


# ----------------------------------------------------------------------------- captioner
@dataclass(frozen=True)
class CaptionerConfig(Preset):
    """The PCM-Net encoder-decoder (paper: N_e = N_d = 3, width 512, 8 heads)."""
    width: int = 512
    heads: int = 8
    encoder_layers: int = 3
    decoder_layers: int = 3
    ff_mult: int = 4
    dropout: float = 0.1
    max_length: int = R.MAX_LENGTH[0]    # words per caption (PCM-Net's 20 on MSCOCO)
    noise_variance: float = 0.016        # CapDec-style Gaussian noise on the global feature while training
    use_patches: bool = True             # False: global feature only (the text-only CapDec-style model)
    mixup: bool = True                   # PCM mix-up in training (replace) and inference (append)
    token_type: bool = True              # a learned visual / textual type embedding on the patch tokens (needed
                                         # by mix-up; PyTorch's N(0, 1) init: it dwarfs a lone unit-norm token)

    def __post_init__(self):
        check_range("width", self.width, 8)
        check_range("heads", self.heads, 1)
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be divisible by heads={self.heads}.")
        for name in ("encoder_layers", "decoder_layers", "ff_mult", "max_length"):
            check_range(name, getattr(self, name), 1)
        check_range("dropout", self.dropout, 0.0, 0.9)
        check_range("noise_variance", self.noise_variance, 0.0, 1.0)
        if self.mixup and not self.token_type:
            raise ValueError("mixup=True needs token_type=True (mix-up marks textual patches by their type); "
                             "set token_type=True or mixup=False.")

    @staticmethod
    def _preset_tiny():
        return CaptionerConfig(width=32, heads=2, encoder_layers=1, decoder_layers=1, ff_mult=2)

    @staticmethod
    def _preset_sandbox():
        # noise: CapDec's 0.016 at D = 512 carried by its expected clean-noisy cosine 0.33 (carryover), times the
        # multiple of CapDec's grid that the sandbox's val sweep picked (workbench select --sweep noise)
        # max_length: PCM-Net's 20 words carried by the share of training captions it cuts (0.5 % of MSCOCO's)
        return CaptionerConfig(width=128, heads=4, encoder_layers=2, decoder_layers=2, ff_mult=2,
                               noise_variance=R.noise_variance(R.sandbox_backbone()) * R.noise_multiple(),
                               max_length=R.sandbox_max_length())

    @staticmethod
    def _preset_paper_b32():
        return CaptionerConfig(noise_variance=R.noise_variance(R.VIT_B32))      # CapDec's own 0.016

    @staticmethod
    def _preset_paper_l14():
        return CaptionerConfig(noise_variance=R.noise_variance(R.VIT_L14, R.PCM_NET_L14_NOISE))   # its own 0.016


# ----------------------------------------------------------------------------- captioner training
@dataclass(frozen=True)
class TrainConfig(Preset):
    """Optimisation of the captioner: Adam + Noam warm-up, clipping, CXE, checkpoints, val CIDEr selection."""
    epochs: int = 12
    batch_size: int = 32
    lr: float = 4.42e-4                  # peak of the Noam schedule (reached at the end of warm-up); the paper
                                         # presets derive it with noam_peak(width, warmup_steps)
    warmup_steps: int = 10000
    grad_clip: float = 0.1               # official: clip by value 0.1
    label_smoothing: float = 0.1
    cxe: bool = True                     # CLIP-weighted cross-entropy (Eq. 11); False = plain cross-entropy
    cxe_w: float = 4.0                   # weight = min(1, w * cos(g_I, g_S)) (paper 4; official B/32 configs 2.5);
                                         # off the paper's CLIP the cosines are carried by rank (carryover)
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
        # w: the official B/32 config's, on cosines carried onto ViT-B/32's paired distribution (carryover)
        # epochs: where the oracle's val curve flattens (its last quarter adds under 2 %), picked on val by
        # `workbench select --sweep budget` (24, world v2's plateau, without a selection; README, learning curves)
        # quick: 12 epochs of 1,000 pairs (188 steps), the warm-up kept at a fifth of the run as in full (300 of 1,500)
        return TrainConfig(epochs=scaled(R.train_budget(24), 1, 12), batch_size=64, lr=1e-3,
                           warmup_steps=scaled(300, 300, 36),
                           checkpoint_every=100, val_size=scaled(300, 24, 100), cxe_w=R.cxe_w(R.CXE_W["paper_b32"]))

    @staticmethod
    def _preset_paper_b32():
        # the official MSCOCO B/32 config (ALPHA 2.5; the paper states 4); Noam peak d^-0.5 * warmup^-0.5
        return TrainConfig(cxe_w=R.CXE_W["paper_b32"], lr=noam_peak(512, 10000))

    @staticmethod
    def _preset_paper_l14():
        return TrainConfig(cxe_w=R.CXE_W["paper_l14"], lr=noam_peak(512, 10000))   # the paper's w = 4 (official L/14)


def noam_peak(width: int, warmup_steps: int) -> float:
    """The Noam schedule's peak learning rate, width^-0.5 * warmup^-0.5 (Vaswani et al.; the official PCM-Net
    code's, 4.42e-4 at width 512 and 10,000 warm-up steps), reached at the end of warm-up."""
    check_range("width", width, 1)
    check_range("warmup_steps", warmup_steps, 1)
    return float(width ** -0.5 * warmup_steps ** -0.5)


# ----------------------------------------------------------------------------- ablation
@dataclass(frozen=True)
class AblationConfig(Preset):
    """The sandbox ablation: data sizes, variants, seeds and the presets of the stages it runs."""
    n_train: int = 4000                  # training scenes (one caption each, one synthetic image per caption)
    n_val: int = 300
    n_test: int = 1000
    n_test_unseen: int = 300
    vocab_min_count: int = 3
    variants: tuple = ("capdec", "base", "+mixup", "+cxe", "pcm-net", "oracle")   # registered method names
                                                                                   # (workbench.methods)
    seeds: tuple = (0, 1, 2)
    profile: str = "sandbox"             # the presets of every stage it runs (``stages``)
    overrides: tuple = ()                # (("train.epochs", 3), ...): stage fields over the presets (the pipeline's)
    layout_strength: Optional[float] = None  # override the synthesis preset's layout strength (1.0: text-to-image)
    sweep_strengths: tuple = (0.1, 0.5, 0.7, 1.0)    # faithfulness sweep: layout strengths (1.0: text-to-image)
    sweep_n_train: int = 2000            # training pairs per sweep point (one seed; ~30 min on 2 cores; at 1,000 the
                                         # captioner is undertrained: oracle = base)
    sweep_n_profile: int = 60            # val scenes per category measuring each point's faithfulness
    train_epochs: Optional[int] = None   # override the train preset's epochs (learning curves); rows and runs
                                         # then live in rows-e<N> / runs-e<N> beside the default budget's
    out_dir: str = "runs/ablation/sandbox"

    @property
    def run_tag(self) -> str:
        """'' for the train preset's budget (also when ``train_epochs`` equals it: the same runs), '-e<N>' for
        another ``train_epochs``."""
        if self.train_epochs is None or self.train_epochs == self.stages.train.epochs:
            return ""
        return f"-e{self.train_epochs}"

    @property
    def stages(self):
        """Every stage's config under ``profile`` (a ``config.stages.Profile``)."""
        from .stages import Profile
        return Profile(self.profile, self.overrides)

    def __post_init__(self):
        check_choice("profile", self.profile, PRESETS)
        for name in ("n_train", "n_val", "n_test", "n_test_unseen"):
            check_range(name, getattr(self, name), 2)
        if not self.variants or not all(isinstance(v, str) and v for v in self.variants):
            raise ValueError(f"variants={self.variants!r} must be non-empty method names, e.g. ('capdec', 'pcm-net'); "
                             "workbench.methods.names() lists them.")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed, e.g. (0, 1, 2).")
        if self.layout_strength is not None:
            check_range("layout_strength", self.layout_strength, 0.05, 1.0)
        for v in self.sweep_strengths:
            check_range("sweep_strengths", v, 0.05, 1.0)
        check_range("sweep_n_train", self.sweep_n_train, 2)
        check_range("sweep_n_profile", self.sweep_n_profile, 1)
        if self.train_epochs is not None:
            check_range("train_epochs", self.train_epochs, 1)

    @staticmethod
    def _preset_tiny():
        return AblationConfig(n_train=64, n_val=8, n_test=8, n_test_unseen=4, vocab_min_count=1, seeds=(0,),
                              profile="tiny", out_dir="runs/ablation/tiny",
                              sweep_strengths=(0.5, 1.0), sweep_n_train=32, sweep_n_profile=2)

    @staticmethod
    def _preset_sandbox():
        # the faithfulness sweep: the synthesis preset's strength (chosen on val by ``workbench calibrate``), two
        # weaker layouts and pure text-to-image (1.0)
        from .generation import SynthesisConfig
        s0 = SynthesisConfig.preset("sandbox").layout_strength
        return AblationConfig(n_train=scaled(4000, 96, 1000), n_val=scaled(300, 16, 100),
                              n_test=scaled(1000, 24, 300), n_test_unseen=scaled(300, 8, 100),
                              seeds=scaled((0, 1, 2), (0,), (0,)),
                              sweep_strengths=scaled((s0, 0.5, 0.7, 1.0), (s0, 1.0), (s0, 1.0)),
                              sweep_n_train=scaled(2000, 64, 300), sweep_n_profile=scaled(60, 4, 20),
                              out_dir="runs/ablation/sandbox" + {"full": ""}.get(scale(), f"-{scale()}"))
