"""Zero-shot checks of a CLIP on the sandbox world (the sandbox CLIP's acceptance floors).

* ``attribute_accuracy``: single-object images vs all 128 prompts "a photo of a {colour} {shape}" (thing);
  the best prompt's colour and shape are scored separately.
* ``caption_vs_other``: does an image's own caption outscore the caption of another scene?
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .clip import ClipBackbone
from ..sandbox import COLOURS, SHAPES, canonical_prompt


def _prompt_features(clip: ClipBackbone, template: str) -> tuple:
    """All (colour, thing) pairs and their normalised prompt embeddings [C * S, D]."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    text = F.normalize(clip.text_features([canonical_prompt(c, s, template) for c, s in pairs]), dim=-1)
    return pairs, text


def attribute_accuracy(clip: ClipBackbone, images: np.ndarray, scenes,
                       template: str = "a photo of a {colour} {shape}") -> dict:
    """Colour / shape / joint zero-shot accuracy on single-object images (uint8 [B, H, W, 3])."""
    if any(s.n_objects != 1 for s in scenes):
        raise ValueError("scenes must all hold exactly one object; load them with n_objects=1.")
    pairs, text = _prompt_features(clip, template)
    img = F.normalize(clip.image_features(images).global_, dim=-1)         # [B, D]
    pred = (img @ text.T).argmax(dim=-1).tolist()                           # [B]
    truth = [(s.objects[0].colour, s.objects[0].shape) for s in scenes]
    colour = np.mean([pairs[p][0] == t[0] for p, t in zip(pred, truth)])
    shape = np.mean([pairs[p][1] == t[1] for p, t in zip(pred, truth)])
    joint = np.mean([pairs[p] == t for p, t in zip(pred, truth)])
    return {"colour_acc": float(colour), "shape_acc": float(shape), "joint_acc": float(joint), "n": len(scenes)}


def caption_vs_other(clip: ClipBackbone, images: np.ndarray, captions, seed: int = 0) -> dict:
    """Share of images whose own caption scores above the caption of a random other scene."""
    n = len(captions)
    if n < 2:
        raise ValueError(f"need at least 2 image-caption pairs, got {n}.")
    rng = np.random.default_rng(seed)
    other = (np.arange(n) + rng.integers(1, n, size=n)) % n                  # never the same index
    img = F.normalize(clip.image_features(images).global_.float(), dim=-1)
    txt = F.normalize(clip.text_features(list(captions)).float(), dim=-1)
    own = (img * txt).sum(-1)
    alt = (img * txt[torch.as_tensor(other)]).sum(-1)
    return {"win_rate": float((own > alt).float().mean()), "n": n}


def sandbox_report(clip: ClipBackbone, world_cfg, n_single: int = 500, n_multi: int = 500,
                   progress: bool = False) -> dict:
    """The acceptance numbers of a sandbox CLIP, all on held-out test scenes."""
    from ..sandbox.splits import load_sandbox_split
    single = load_sandbox_split(world_cfg, "test", n=n_single, n_objects=1, progress=progress)
    unseen = load_sandbox_split(world_cfg, "test_unseen", n=max(8, n_single // 5), n_objects=1, progress=progress)
    multi = load_sandbox_split(world_cfg, "test", n=int(n_multi / 0.7) + 16, progress=progress)
    keep = [i for i, s in enumerate(multi.scenes) if s.n_objects > 1][:n_multi]   # ~3/4 are multi-object
    return {
        "single_object_test": attribute_accuracy(clip, single.images, single.scenes),
        "single_object_unseen_pairs": attribute_accuracy(clip, unseen.images, unseen.scenes),
        "multi_object_caption_vs_other": caption_vs_other(
            clip, multi.images[keep], [multi.captions[i][0] for i in keep]),
    }


def pair_cosines(clip: ClipBackbone, images, captions) -> np.ndarray:
    """Cosine between each image and its caption, [N] (what ``evaluation.clipscore`` rescales)."""
    img = F.normalize(clip.image_features(images).global_.float(), dim=-1)
    txt = F.normalize(clip.text_features(list(captions)).float(), dim=-1)
    return (img * txt).sum(-1).numpy()
