"""Looking at PCM patch by patch: which patches it mixes, and whether they fall on the caption's objects.

* ``true_object_patches``: for real sandbox renders, the patches covered by the objects the caption
  mentions (exact object masks from the renderer);
* ``colour_object_patches``: for any image (synthetic ones have no scene layout), the patches whose
  pixels match a colour the caption names (sandbox objects are saturated, backgrounds muted), checked
  against the exact masks on real renders by ``label_agreement``;
* ``hit_rates``: the share of mixed patches that land on caption objects vs the share for random
  patches (the same number per image, drawn uniformly);
* ``render_pcm``: the pure render function behind notebook 03's widget (image + mixed patches, top-K
  concepts, one affinity heatmap per concept, the textual-patch assignment map).
"""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import pcm
from .sandbox.captions import COLOUR_WORDS
from .sandbox.render import RGB, _draw_mask

_COLOUR_OF = {w: c for c, words in COLOUR_WORDS.items() for w in words}


def caption_colours(caption: str) -> set:
    """The sandbox colours a caption names ("violet" counts as purple)."""
    return {_COLOUR_OF[w] for w in re.findall(r"[a-z]+", caption.lower()) if w in _COLOUR_OF}


def _patch_cover(mask: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of each patch covered by a [S, S] mask in [0, 1] -> [grid * grid] (row-major, as CLIP)."""
    s = mask.shape[0] // grid
    return mask[:s * grid, :s * grid].reshape(grid, s, grid, s).mean(axis=(1, 3)).reshape(-1)


def true_object_patches(scene, caption: str, world_cfg, grid: int, min_cover: float = 0.25) -> np.ndarray:
    """bool [grid * grid]: patches at least ``min_cover`` covered by an object whose colour the caption names."""
    side = world_cfg.image_size * world_cfg.supersample
    named = caption_colours(caption)
    mask = np.zeros((side, side), np.float32)
    for obj in scene.objects:
        if obj.colour in named:
            mask = np.maximum(mask, np.asarray(_draw_mask(obj, side), np.float32) / 255.0)
    return _patch_cover(mask, grid) >= min_cover


def colour_object_patches(image: np.ndarray, caption: str, grid: int, tolerance: float = 70.0,
                          min_cover: float = 0.25) -> np.ndarray:
    """bool [grid * grid]: patches whose pixels (uint8 [H, W, 3]) are at least ``min_cover`` within
    ``tolerance`` (RGB distance, brightness-normalised) of a colour the caption names."""
    px = image.astype(np.float32)
    hit = np.zeros(image.shape[:2], bool)
    for colour in caption_colours(caption):
        ref = np.array(RGB[colour], np.float32)
        scale = np.clip((px * ref).sum(-1) / (ref * ref).sum(), 0.75, 1.25)[..., None]   # lighting gain
        hit |= np.linalg.norm(px - scale * ref, axis=-1) < tolerance
    return _patch_cover(hit.astype(np.float32), grid) >= min_cover


def label_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Patch-level agreement of two bool label sets [B, N]: accuracy and IoU of the positives."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return {"accuracy": float((a == b).mean()), "iou": float((a & b).sum() / union) if union else 1.0}


def hit_rates(selected: torch.Tensor, labels: np.ndarray, seed: int = 0) -> dict:
    """Share of PCM-selected patches on caption objects vs the same number of random patches per image.

    ``selected`` bool [B, N]; ``labels`` bool [B, N]. ``random_expected`` is the exact expectation for
    uniformly random patches; ``random_sampled`` one draw of them (seeded)."""
    sel = selected.cpu().numpy().astype(bool)
    labels = np.asarray(labels, bool)
    if sel.shape != labels.shape:
        raise ValueError(f"selected {sel.shape} and labels {labels.shape} must both be [B, N].")
    rng = np.random.default_rng(seed)
    n_sel = sel.sum(1)
    rand = np.zeros_like(sel)
    for i, m in enumerate(n_sel):
        rand[i, rng.choice(sel.shape[1], size=m, replace=False)] = True
    total = max(int(n_sel.sum()), 1)
    return {"pcm": float((sel & labels).sum() / total),
            "random_expected": float((n_sel * labels.mean(1)).sum() / total),
            "random_sampled": float((rand & labels).sum() / total),
            "object_patch_share": float(labels.mean()), "n_images": int(len(sel)), "n_selected": int(n_sel.sum())}


def run_pcm(store, indices, bank, cfg) -> pcm.PCMResult:
    """PCM on cached features: rows ``indices`` of a feature store, the concept bank's embeddings."""
    f = store.get(list(indices), keys=["global", "patches"])
    return pcm.pcm(f["global"], f["patches"], bank.embeddings, cfg)


def render_pcm(image: np.ndarray, result: pcm.PCMResult, i: int, words: list, mode: str = "train",
               caption: str = "", labels=None, max_concepts: int = 5):
    """One image's PCM, as a Figure: the image with the mixed patches outlined (red: replaced in training,
    cyan: appended at inference; green dots: caption-object patches when ``labels`` is given), its top-K
    concepts, one affinity heatmap per concept and the textual-patch assignment map."""
    if mode not in ("train", "inference"):
        raise ValueError(f"mode={mode!r} is not one of ('train', 'inference').")
    grid = result.grid
    k = min(result.affinity.shape[2], max_concepts)
    names = [words[j] for j in result.concepts.index[i, :k].tolist()]
    fig, axes = plt.subplots(1, k + 3, figsize=(2.3 * (k + 3), 2.6))
    ax = axes[0]
    ax.imshow(image)
    cell = image.shape[0] / grid
    for j in torch.nonzero(result.selected[i]).flatten().tolist():
        r, c = divmod(j, grid)
        ax.add_patch(plt.Rectangle((c * cell, r * cell), cell, cell, fill=False, lw=1.5,
                                   ec="red" if mode == "train" else "cyan"))
    if labels is not None:
        for j in np.nonzero(np.asarray(labels))[0]:
            r, c = divmod(int(j), grid)
            ax.plot((c + 0.5) * cell, (r + 0.5) * cell, ".", color="lime", ms=3)
    verb = "replaced" if mode == "train" else "appended"
    ax.set_title(f"{int(result.selected[i].sum())} patches {verb}\n{caption[:40]}", fontsize=7)
    ax.axis("off")
    probs = result.concepts.prob[i, :k].tolist()
    axes[1].barh(range(k)[::-1], probs, color="tab:blue")
    axes[1].set_yticks(range(k)[::-1], names, fontsize=7)
    axes[1].set_title("top-K concepts (p)", fontsize=8)
    axes[1].tick_params(axis="x", labelsize=6)
    for slot in range(k):
        a = axes[2 + slot]
        a.imshow(result.affinity[i, :, slot].reshape(grid, grid).numpy(), cmap="magma")
        a.set_title(f"cos(patch, {names[slot]})", fontsize=7)
        a.axis("off")
    assign = result.weights[i].argmax(-1).reshape(grid, grid).numpy()
    a = axes[-1]
    a.imshow(assign, cmap="tab10", vmin=0, vmax=9)
    for r in range(grid):
        for c in range(grid):
            a.text(c, r, names[assign[r, c]][:3] if assign[r, c] < k else "", fontsize=4, ha="center", va="center")
    a.set_title("textual patch: top concept", fontsize=7)
    a.axis("off")
    fig.tight_layout()
    return fig


def hit_report(store, images: np.ndarray, captions: list, bank, cfg, scenes=None, world_cfg=None) -> dict:
    """Hit rates of PCM's mixed patches on caption objects for every image of a cached set.

    Labels come from the caption's colours in the pixels; with ``scenes`` (real renders) also from the
    exact object masks, and the agreement of the two labellings is reported."""
    result = run_pcm(store, range(len(store)), bank, cfg)
    grid = result.grid
    colour = np.stack([colour_object_patches(im, c, grid) for im, c in zip(images, captions)])
    report = {"colour_labels": hit_rates(result.selected, colour)}
    if scenes is not None:
        true = np.stack([true_object_patches(s, c, world_cfg, grid) for s, c in zip(scenes, captions)])
        report["true_labels"] = hit_rates(result.selected, true)
        report["label_agreement"] = label_agreement(colour, true)
    return report
