"""PCM-Net (seed 000) and its ablation rows (Table 3): synthetic image features (global + patch tokens),
patch-wise cross-modal mix-up (PCM: replace in training, append at inference), CLIP-weighted cross-entropy
(CXE); plus the oracle, the same captioner trained on real renders of the training captions' scenes.

    base      synthetic images, plain cross-entropy
    +mixup    base + PCM          +cxe    base + CXE          pcm-net   base + PCM + CXE
    oracle    real renders instead of synthetic images (an upper reference, not a text-only method)
    base-global, oracle-global   the same without the patch tokens (global feature only): separates what the
              patch tokens add from what the data adds (SynTIC and the text-only methods read the global only)

The captioner keeps the preset's noise on the global feature (``CaptionerConfig.noise_variance``).
``PCMNetConfig`` overrides the presets' CXE w and PCM's K / M for a sweep point (``pcm-net[cxe_w=4]``, Fig. 4);
None keeps the preset's (carried, ``config.carryover``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from ..config import check_range
from .base import Method, Reported


@dataclass(frozen=True)
class PCMNetConfig:
    cxe_w: Optional[float] = None          # None: TrainConfig's (sandbox: picked on val over Fig. 4c's grid)
    k: Optional[int] = None                # None: PCMConfig's
    m: Optional[int] = None
    global_noise: Optional[float] = None   # training noise variance on the global token; None: the captioner preset's
                                           # (PCM-Net: CapDec's, "following CapDec"); 0: none

    def __post_init__(self):
        for name in ("cxe_w", "k", "m", "global_noise"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 0)

VARIANTS = {
    "base": {"data": "synthetic", "mixup": False, "cxe": False},
    "+mixup": {"data": "synthetic", "mixup": True, "cxe": False},
    "+cxe": {"data": "synthetic", "mixup": False, "cxe": True},
    "pcm-net": {"data": "synthetic", "mixup": True, "cxe": True},
    "oracle": {"data": "real", "mixup": False, "cxe": False},
    "base-global": {"data": "synthetic", "mixup": False, "cxe": False, "patches": False},
    "oracle-global": {"data": "real", "mixup": False, "cxe": False, "patches": False},
}


class PCMNetVariant(Method):
    family = "PCM-Net"

    def __init__(self, name: str, config: PCMNetConfig = PCMNetConfig()):
        super().__init__(config)
        self.name, self.v = name, VARIANTS[name]
        self.block = "reference" if self.v["data"] == "real" else "synthetic images"
        self.training_data = self.v["data"]
        self.reported = (Reported("PCM-Net (ECCV'24) Table 1, ViT-B/32", 103.8, 31.5, 25.9, 53.9, 19.7)
                         if name == "pcm-net" else None)

    def options(self) -> dict:
        """{} at the presets' settings (row keys as before), else the overridden fields."""
        return {k: v for k, v in super().options().items() if v is not None}

    def captioner_config(self, cfg):
        cfg = replace(cfg, use_patches=self.v.get("patches", True), mixup=self.v["mixup"])
        return cfg if self.config.global_noise is None else replace(cfg, noise_variance=self.config.global_noise)

    def train_config(self, cfg):
        cfg = replace(cfg, cxe=self.v["cxe"])
        return replace(cfg, cxe_w=self.config.cxe_w) if self.config.cxe_w is not None else cfg

    def build(self, exp, cap_cfg, pcm_cfg, seed: int):
        sizes = {k: v for k, v in (("k", self.config.k), ("m", self.config.m)) if v is not None}
        return super().build(exp, cap_cfg, replace(pcm_cfg, **sizes) if sizes else pcm_cfg, seed)

    def train_set(self, exp):
        return exp.sets[self.v["data"]]


METHODS = {name: (lambda name=name: PCMNetVariant(name)) for name in VARIANTS}
