"""PCM-Net (seed 000) and its ablation rows (Table 3): synthetic image features (global + patch tokens),
patch-wise cross-modal mix-up (PCM: replace in training, append at inference), CLIP-weighted cross-entropy
(CXE); plus the oracle, the same captioner trained on real renders of the training captions' scenes.

    base      synthetic images, plain cross-entropy
    +mixup    base + PCM          +cxe    base + CXE          pcm-net   base + PCM + CXE
    oracle    real renders instead of synthetic images (an upper reference, not a text-only method)
    base-global, oracle-global   the same without the patch tokens (global feature only): separates what the
              patch tokens add from what the data adds (SynTIC and the text-only methods read the global only)

The captioner keeps the preset's noise on the global feature (``CaptionerConfig.noise_variance``).
"""
from __future__ import annotations

from dataclasses import replace

from .base import Method, Reported

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

    def __init__(self, name: str):
        super().__init__(None)
        self.name, self.v = name, VARIANTS[name]
        self.block = "reference" if self.v["data"] == "real" else "synthetic images"
        self.training_data = self.v["data"]
        self.reported = (Reported("PCM-Net (ECCV'24) Table 1, ViT-B/32", 103.8, 31.5, 25.9, 53.9, 19.7)
                         if name == "pcm-net" else None)

    def captioner_config(self, cfg):
        return replace(cfg, use_patches=self.v.get("patches", True), mixup=self.v["mixup"])

    def train_config(self, cfg):
        return replace(cfg, cxe=self.v["cxe"])

    def train_set(self, exp):
        return exp.sets[self.v["data"]]


METHODS = {name: (lambda name=name: PCMNetVariant(name)) for name in VARIANTS}
