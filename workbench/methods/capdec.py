"""CapDec (Nukrai, Mokady & Globerson, EMNLP Findings 2022): the text-only captioner. Training reads the
CLIP embedding of each caption with Gaussian noise, exactly as CapDec's ``noise_injection``
(``DavidHuji/CapDec`` train.py): normalise, add N(0, v I), normalise again; inference reads the image's CLIP
embedding. v: the paper's 0.016 is a per-dimension variance for D = 512 (expected cosine to the clean vector
1 / sqrt(1 + D v) = 0.33); ``CapDecConfig.noise_variance = None`` takes the captioner preset's value, carried
by that expected cosine (``config.carryover.noise_variance``): 0.064 on the sandbox (D = 128), 0.016 on ViT-B/32,
0.0107 on ViT-L/14. CapDec chose 0.016 by a sweep on its val data; ``capdec_noise_sweep`` re-runs the sweep. ``renormalize=False`` is the workbench's older variant (no second norm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import carryover as R
from ..config import check_range
from ..training import CaptionSet
from .base import Method, Reported
from .common import noise_injection


@dataclass(frozen=True)
class CapDecConfig:
    noise_variance: Optional[float] = None     # None: the captioner preset's (carried; ViT-B/32: 0.016)
    renormalize: bool = True                   # CapDec's code: normalise again after the noise

    def __post_init__(self):
        if self.noise_variance is not None:
            check_range("noise_variance", self.noise_variance, 0.0, 1.0)


@dataclass
class NoisyTextSet(CaptionSet):
    """Caption embeddings as training inputs, with CapDec's noise drawn from torch's global generator (which
    ``train_captioner`` reseeds before every batch: the noise is reproducible per seed and step)."""
    variance: float = 0.0
    renormalize: bool = True

    def identity(self) -> str:
        from ..utils.io import stable_hash
        return stable_hash({"text": super().identity(), "variance": self.variance, "renorm": self.renormalize})

    def batch(self, idx: np.ndarray, vocab, use_patches: bool) -> dict:
        out = super().batch(idx, vocab, False)
        out["global_"] = noise_injection(out["global_"], self.variance, self.renormalize)
        return out


def noisy_text_set(exp, variance: float, renormalize: bool = True) -> NoisyTextSet:
    text = exp.sets["text"]
    return NoisyTextSet(text.store, text.rows, text.captions, None, text.global_key, variance, renormalize)


class CapDec(Method):
    name, family, block, training_data = "capdec", "CapDec", "text only", "text"
    reported = Reported("CapDec (EMNLP Findings'22), RN50x4, as quoted by PCM-Net Table 1", 91.8, 26.4, 25.1, 51.8)

    def __init__(self, config: CapDecConfig = CapDecConfig()):
        super().__init__(config)

    def variance(self, exp) -> float:
        if self.config.noise_variance is not None:
            return self.config.noise_variance
        return exp.cfg.stages.captioner.noise_variance

    def train_set(self, exp):
        return noisy_text_set(exp, self.variance(exp), self.config.renormalize)


METHODS = {"capdec": CapDec}
PROFILES = {p: {"noise_variance": R.noise_variance(b)} for p, b in R.PAPER_BACKBONES.items()}   # 0.016 on B/32
