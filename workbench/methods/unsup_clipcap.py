"""Unsupervised-ClipCap ("Simple Unsupervised Image Captioning via CLIP's Multimodal Embeddings", seed 004):
a decoder trained on caption embeddings where the input is the embedding of *another* caption y' of the same
image and the target is y (Eq. 2; weak pairing: the dataset's grouping of 5 captions per image); no noise.
At inference the image embedding is used as it is, or corrected (§5):
    mean alignment   x - mean(images) + mean(texts), renormalised, the means estimated on *unpaired* data:
                     renders of other training scenes (no captions) and the training captions, never test;
    rotation         principal directions of the images mapped onto those of the texts (paper: fails);
    optimal transport the test images transported onto training-caption embeddings (entropic OT, barycentric
                     map; transductive by construction; paper: "nonsense text").
``target="self"`` is the paper's "- matched captions" row (y' = y, self-reconstruction). The paper gives no
hyperparameters; its ClipCap decoder is the workbench captioner (global slot only) here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import check_choice
from ..training import CaptionSet
from .base import Method, Reported, caption_memory, recipe_eval_set
from .common import apply_rotation, mean_alignment, modality_means, ot_barycentric, rotation_alignment

ALIGNMENTS = ("none", "mean", "rotation", "ot")


@dataclass(frozen=True)
class UCCConfig:
    target: str = "other"        # "other": y' != y of the same image (Eq. 2); "self": y' = y ("- matched captions")
    alignment: str = "none"      # inference-time correction: none | mean | rotation | ot
    ot_targets: int = 2000       # training-caption embeddings the OT map transports onto (a seeded sample)

    def __post_init__(self):
        check_choice("target", self.target, ("other", "self"))
        check_choice("alignment", self.alignment, ALIGNMENTS)


@dataclass
class ParaphraseSet(CaptionSet):
    """Inputs: the embedding of a caption of image i drawn each step from its other captions (torch's global
    generator, reseeded per step by ``train_captioner``); targets: ``captions[i]``. ``own[i]`` is the store row
    of ``captions[i]``; ``groups[i]`` the rows of every caption of its image (None: the sandbox's layout, the
    five captions of scene i at rows 5 i .. 5 i + 4). An image with a single caption reads its own."""
    own: list = None
    mode: str = "other"
    groups: list = None

    def identity(self) -> str:
        from ..utils.io import stable_hash
        extra = {"group_rows": [list(g) for g in self.groups]} if self.groups is not None else {}
        return stable_hash({"groups": super().identity(), "own": list(self.own), "mode": self.mode, **extra})

    def batch(self, idx: np.ndarray, vocab, use_patches: bool) -> dict:
        idx = np.asarray(idx)
        own = np.asarray(self.own)[idx]
        if self.mode == "self":
            src = own
        elif self.groups is None:
            shift = torch.randint(1, 5, (len(idx),)).numpy()           # one of the 4 other captions
            src = 5 * (own // 5) + (own % 5 + shift) % 5
        else:
            src = []
            for i, o in zip(idx.tolist(), own.tolist()):
                others = [r for r in self.groups[i] if r != o] or [o]
                src.append(others[int(torch.randint(len(others), ()))])
            src = np.asarray(src)
        f = self.store.get(src.tolist(), keys=["text"])
        return {"global_": f["text"], "tokens": None, "patches": None,
                "words": vocab.encode_batch([self.captions[i] for i in idx]), "cos": None}


def correction(exp, alignment: str, ot_targets: int = 2000):
    """The inference-time map ``global_ [B, D] -> [B, D]`` of ``alignment`` (fitted on unpaired data)."""
    if alignment == "none":
        return lambda g: g
    texts, images = caption_memory(exp), exp.unpaired.all("global")
    if alignment == "mean":
        mi, mt = modality_means(images, texts)
        return lambda g: mean_alignment(g, mi, mt)
    if alignment == "rotation":
        rot = rotation_alignment(images, texts)
        return lambda g: apply_rotation(g, rot)
    pick = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))[:ot_targets]
    return lambda g: ot_barycentric(g, texts[pick])


class UnsupervisedClipCap(Method):
    family, block, training_data = "Unsupervised-ClipCap", "text only", "text groups"

    def __init__(self, config: UCCConfig = UCCConfig(), name: str = "ucc"):
        super().__init__(config)
        self.name = name
        self.reported = (Reported("Unsupervised-ClipCap (seed 004) Table 1", 74.6, 22.1, 22.2, 48.0, 14.9)
                         if config.target == "other" and config.alignment == "none" else None)

    def needs_unpaired(self) -> bool:
        return self.config.alignment != "none"

    def train_set(self, exp):
        if exp.group_rows is None:                                   # the sandbox: five captions a scene
            own = [5 * i + i % 5 for i in range(len(exp.captions))]     # prepare_sandbox's choice of training caption
            return ParaphraseSet(exp.group_store, list(range(len(exp.captions))), exp.captions, None, "text", own,
                                 self.config.target)
        return ParaphraseSet(exp.group_store, list(range(len(exp.captions))), exp.captions, None, "text",
                             list(range(len(exp.captions))), self.config.target, exp.group_rows)

    def inference_set(self, exp, evalset, images=None):
        fix = correction(exp, self.config.alignment, self.config.ot_targets)
        return recipe_eval_set(evalset, lambda g, t, p: (fix(g), t, p))

    def extra_metrics(self, model, exp, clip, beam: int) -> dict:
        """Test CIDEr of the same checkpoint under every other correction (the paper's §5 analysis)."""
        if self.config.alignment != "none":
            return {}
        from ..evaluation.metrics import cider
        if "test" not in exp.evals:                 # a corpus experiment: its test sets are the protocol's
            return {}
        base = exp.evals["test"][0]
        out = {}
        for a in ALIGNMENTS[1:]:
            fix = correction(exp, a, self.config.ot_targets)
            hyps = recipe_eval_set(base, lambda g, t, p, fix=fix: (fix(g), t, p)).captions(model, exp.vocab, beam)
            out[f"CIDEr_{a}_correction"] = cider(base.references(), dict(zip(base.ids, hyps)))
        return out


METHODS = {"ucc": lambda: UnsupervisedClipCap(UCCConfig(), "ucc"),
           "ucc+mean": lambda: UnsupervisedClipCap(UCCConfig(alignment="mean"), "ucc+mean"),
           "ucc-self": lambda: UnsupervisedClipCap(UCCConfig(target="self"), "ucc-self")}
