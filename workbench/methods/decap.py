"""DeCap (Li et al., ICLR 2023): a captioner trained on caption embeddings *without* noise, and at inference
the image embedding projected onto a memory of training-caption embeddings:
    v = normalise( sum_j softmax_j(cos(image, m_j) / tau) m_j )
(``dhg-wei/DeCap`` inference_decap.ipynb: (sim * 100).softmax, normalised memory, renormalised prefix).

Paper vs code, as options: tau = 1/100 there is CLIP's own temperature; ``tau=None`` uses the backbone's
(1/100 for OpenAI's CLIP, 1/800 for the calibrated sandbox CLIP). The memory is the training captions
(DeCap's code samples 500,000 of them; ``memory_size`` takes a seeded sample). DeCap's decoder is a 4-layer
GPT-2 from scratch; here the workbench captioner (global slot only), as for every text-only row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import carryover as R
from ..config import check_range
from .base import Method, Reported, caption_memory, recipe_eval_set
from .capdec import noisy_text_set
from .common import support_projection


@dataclass(frozen=True)
class DeCapConfig:
    tau: Optional[float] = None              # None: the CLIP backbone's temperature (paper: 1/100 on CLIP)
    memory_size: Optional[int] = None        # None: every training caption; else a seeded sample

    def __post_init__(self):
        if self.tau is not None:
            check_range("tau", self.tau, 1e-6)
        if self.memory_size is not None:
            check_range("memory_size", self.memory_size, 1)

class DeCap(Method):
    name, family, block, training_data = "decap", "DeCap", "text only", "text"
    reported = Reported("DeCap (ICLR'23), ViT-B/32, as quoted by PCM-Net Table 1", 91.2, 24.7, 25.0, None, 18.7)

    def __init__(self, config: DeCapConfig = DeCapConfig()):
        super().__init__(config)

    def train_set(self, exp):
        return noisy_text_set(exp, 0.0)

    def inference_set(self, exp, evalset, images=None):
        tau = self.config.tau or R.carried_temperature(exp.clip_temperature)
        memory = caption_memory(exp, self.config.memory_size)
        return recipe_eval_set(evalset, lambda g, t, p: (support_projection(g, memory, tau), t, p))


METHODS = {"decap": DeCap}
PROFILES = {"paper_b32": {"tau": 0.01}, "paper_l14": {"tau": 0.01}}      # the code's (sim * 100).softmax
