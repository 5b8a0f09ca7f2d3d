"""Looking at PCM patch by patch: which patches it mixes, and whether they fall on the caption's objects.

* ``true_object_patches``: for real sandbox renders, the patches covered by the objects the caption
  mentions (exact object masks from the renderer);
* ``colour_object_patches``: for any image (synthetic ones have no scene layout), the patches whose
  pixels match a colour the caption names, checked against the exact masks on real renders by
  ``label_agreement``: a proxy that over-labels since world v3 (places and props share the named colours:
  grass, sea, a red ball; on v6 it finds 0.86 of the named things' patches at precision 0.33, base rate 0.11),
  so compare its hit rates with the random patches' rather than read them as absolute;
* ``hit_rates``: the share of mixed patches that land on caption objects vs the share for random
  patches (the same number per image, drawn uniformly);
* ``render_pcm``: the pure render function behind notebook 03's widget (image + mixed patches, top-K
  concepts, one affinity heatmap per concept, the textual-patch assignment map).
"""
from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

from ..model import pcm
from ..sandbox.captions import COLOUR_WORDS, SHAPE_WORDS
from ..sandbox.render import RGB, draw_mask

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
            mask = np.maximum(mask, np.asarray(draw_mask(obj, side), np.float32) / 255.0)
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


def selection_note(result: pcm.PCMResult, i: int, m: int, rule: str) -> str:
    """Why image ``i`` has fewer mixed patches than M, or "" when it has M."""
    n_sel = int(result.selected[i].sum())
    if n_sel >= m:
        return ""
    if rule == "pair":
        return (f"pair rule: the top-{m} (patch, concept) pairs fall on only {n_sel} distinct patches "
                f"({m - n_sel} pairs share a patch with a higher-ranked pair), so {n_sel} of M={m} are mixed")
    return f"{n_sel} of M={m} patches are mixed"


def weight_entropy(result: pcm.PCMResult, i: int) -> np.ndarray:
    """Entropy of Eq. 3's softmax weights per patch, divided by log K: [N] in [0, 1] (0: one concept takes
    the whole textual patch, as tau -> 0; 1: all K concepts mix equally, as tau -> infinity)."""
    w = result.weights[i].double().clamp_min(1e-300)                                     # [N, K]
    k = w.shape[-1]
    if k < 2:
        return np.zeros(w.shape[0])
    return (-(w * w.log()).sum(-1) / np.log(k)).clamp(0, 1).numpy()


def render_pcm(image: np.ndarray, result: pcm.PCMResult, i: int, words: list, mode: str = "train",
               caption: str = "", labels=None, max_concepts: int = 5, m: int | None = None,
               tau: float | None = None, rule: str | None = None):
    """One image's PCM, as a Figure (no pyplot): the image with the mixed patches outlined (red: replaced in
    training, cyan: appended at inference; green dots: caption-object patches when ``labels`` is given)
    under its full caption; the top-K concepts with their probabilities (log axis); which concept
    dominates each textual patch (with a colour key); the entropy of Eq. 3's weights per patch (the view
    that tau changes); one affinity heatmap per concept (Eq. 2). With ``m`` and ``rule`` the title says
    when fewer than M patches are mixed and why."""
    from . import plots
    if mode not in ("train", "inference"):
        raise ValueError(f"mode={mode!r} is not one of ('train', 'inference').")
    if tau is not None:
        pcm.check_temperature("tau", tau)
    k = min(result.affinity.shape[2], max_concepts)
    names = [words[j] for j in result.concepts.index[i, :k].tolist()]
    colours = [f"C{j}" for j in range(k)]
    fig = plots.WorkbenchFigure(figsize=(plots.MAX_WIDTH_IN, 7.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1.0])
    ax_img, ax_bar, ax_map, ax_ent = top.subplots(1, 4, gridspec_kw={"width_ratios": [1.15, 1.0, 1.0, 1.1]})
    n_sel = _draw_selection(ax_img, image, result, i, mode, labels, caption)
    _draw_concepts(ax_bar, ax_map, result, i, names, colours)
    tau_text = f" (τ={tau:.3g})" if tau is not None else ""
    _draw_entropy(top, ax_ent, result, i, tau_text)
    _draw_affinities(bottom, result, i, names, colours)
    verb = "replaced" if mode == "train" else "appended"
    head = f"{mode} mode · K={result.affinity.shape[2]}" + (f" · M={m}" if m is not None else "") + tau_text.replace(
        " (", " · ").replace(")", "") + (f" · {rule} rule" if rule else "") + f" · {n_sel} patches {verb}"
    note = selection_note(result, i, m, rule or "pair") if m is not None else ""
    fig.suptitle(plots.wrap_text(head, 88) + ("\n" + plots.wrap_text(note, 88) if note else ""), fontsize=plots.TITLE,
                 color="black" if not note else "darkred")
    return plots.finish(fig)


def _draw_selection(ax, image: np.ndarray, result: pcm.PCMResult, i: int, mode: str, labels, caption: str) -> int:
    """The image with its mixed patches outlined (and the caption-object patches dotted); returns how many."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    from . import plots
    grid = result.grid
    ax.imshow(image)
    cell = image.shape[0] / grid
    edge = "red" if mode == "train" else "cyan"
    for j in torch.nonzero(result.selected[i]).flatten().tolist():
        r, c = divmod(j, grid)
        ax.add_patch(Rectangle((c * cell - 0.5, r * cell - 0.5), cell, cell, fill=False, lw=1.8, ec=edge))
    verb = "replaced" if mode == "train" else "appended"
    n_sel = int(result.selected[i].sum())
    keys = [Line2D([], [], color=edge, lw=2, label=f"{verb} patch ({n_sel})")]
    if labels is not None:
        for j in np.nonzero(np.asarray(labels))[0]:
            r, c = divmod(int(j), grid)
            ax.plot((c + 0.5) * cell - 0.5, (r + 0.5) * cell - 0.5, "o", color="lime", ms=3.5, mec="k", mew=0.4)
        keys.append(Line2D([], [], ls="", marker="o", color="lime", mec="k", label="caption-object patch"))
    ax.legend(handles=keys, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=plots.FONT, frameon=False)
    ax.set_title(plots.wrap_text(caption, 30) if caption else "image", fontsize=plots.FONT)
    ax.axis("off")
    return n_sel


def _draw_concepts(ax_bar, ax_map, result: pcm.PCMResult, i: int, names: list, colours: list) -> None:
    """The top-K concepts' probabilities (log axis), and which of them dominates each textual patch."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    from . import plots
    k = len(names)
    probs = result.concepts.prob[i, :k].double().numpy()
    ys = np.arange(k)
    ax_bar.barh(ys, probs, color=colours)
    ax_bar.set_xscale("log")
    ax_bar.set_xlim(max(probs.min() / 3, 1e-6), 2.5)
    for y, p in zip(ys, probs):
        ax_bar.text(p * 1.15, y, f"{p:.3g}", va="center", fontsize=plots.FONT)
    ax_bar.set_yticks(ys, names)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("p (log scale)", fontsize=plots.FONT)
    ax_bar.set_title(f"top-{k} concepts", fontsize=plots.TITLE)
    assign = result.weights[i, :, :k].argmax(-1).reshape(result.grid, result.grid).numpy()
    ax_map.imshow(assign, cmap=ListedColormap(colours), norm=BoundaryNorm(np.arange(k + 1) - 0.5, k))
    ax_map.legend(handles=[Patch(color=c, label=n) for c, n in zip(colours, names)], loc="upper center",
                  bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=plots.FONT, frameon=False)
    ax_map.set_title("textual patch:\nits top concept", fontsize=plots.TITLE)
    ax_map.axis("off")


def _draw_entropy(fig, ax, result: pcm.PCMResult, i: int, tau_text: str) -> None:
    """The entropy of Eq. 3's weights per patch, over log K (what tau changes)."""
    from . import plots
    ent = weight_entropy(result, i).reshape(result.grid, result.grid)
    im = ax.imshow(ent, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=plots.FONT)
    ax.set_title(f"Eq. 3 weights{tau_text}\nentropy / log K", fontsize=plots.FONT)
    ax.set_xlabel(f"mean {ent.mean():.2f}", fontsize=plots.FONT)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_affinities(fig, result: pcm.PCMResult, i: int, names: list, colours: list) -> None:
    """One heatmap per concept of Eq. 2's patch affinity, on a shared colour scale."""
    from . import plots
    k, grid = len(names), result.grid
    heat = fig.subplots(1, max(k, 3))
    aff = result.affinity[i, :, :k].numpy()
    lo, hi = float(aff.min()), float(aff.max())
    for slot, a in enumerate(heat):
        a.axis("off")
        if slot < k:
            im = a.imshow(aff[:, slot].reshape(grid, grid), cmap="magma", vmin=lo, vmax=hi)
            a.set_title(f"cos(patch, {names[slot]})", fontsize=plots.FONT, color=colours[slot])
    fig.colorbar(im, ax=list(heat), shrink=0.8).ax.tick_params(labelsize=plots.FONT)
    fig.suptitle("Eq. 2: affinity of each patch to each concept (shared colour scale)", fontsize=plots.FONT)


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


def concept_report(global_: torch.Tensor, patches: torch.Tensor, bank, refs: list, scenes, world_cfg,
                   cfg) -> dict:
    """Can PCM's inputs act on this CLIP? On real images (global [B, D], head-mapped patches [B, N, D], their
    reference captions and scenes):

    * Eq. 1 precision: the top concept, and the top-K, among the nouns of the image's references;
    * Eq. 2 specificity: the mean Pearson correlation, over patches, between the affinity maps of the concepts
      of the image's own objects (1: the map depends on the patch, not the concept);
    * Eq. 2 localisation: how often an object's concept has its highest-affinity patch on that object (exact
      masks of the world), against the object's share of the patches (chance)."""
    from ..features.concepts import count_nouns
    words = list(bank.words)
    index = {w: i for i, w in enumerate(words)}
    concepts = pcm.salient_concepts(global_, bank.embeddings, cfg.k, cfg.concept_temperature)
    top1, topk = [], []
    for i, r in enumerate(refs):
        nouns = set(count_nouns(r))
        picked = [words[j] for j in concepts.index[i].tolist()]
        top1.append(picked[0] in nouns)
        topk.append(np.mean([w in nouns for w in picked]))
    p = F.normalize(patches.float(), dim=-1)
    c = F.normalize(bank.embeddings.float(), dim=-1)
    side = world_cfg.image_size * world_cfg.supersample
    grid = int(round(patches.shape[1] ** 0.5))
    corr, hit, chance = [], [], []
    for i, scene in enumerate(scenes):
        own = []
        for obj in scene.objects:
            j = next((index[w] for w in SHAPE_WORDS[obj.shape] if w in index), None)
            if j is None:
                continue
            amap = p[i] @ c[j]                                                   # [N]
            cover = _patch_cover(np.asarray(draw_mask(obj, side), np.float32) / 255.0, grid) >= 0.25
            if cover.any():
                hit.append(bool(cover[int(amap.argmax())]))
                chance.append(float(cover.mean()))
            if j not in own:
                own.append(j)
        if len(own) >= 2:
            maps = (p[i] @ c[own].T).T                                           # [k, N]
            r = torch.corrcoef(maps)
            corr.append(float(r[~torch.eye(len(own), dtype=torch.bool)].mean()))
    return {"eq1_top1_precision": float(np.mean(top1)), "eq1_topk_precision": float(np.mean(topk)), "k": cfg.k,
            "bank_size": len(words), "eq2_map_correlation": float(np.mean(corr)) if corr else float("nan"),
            "n_images_two_concepts": len(corr), "eq2_argmax_on_object": float(np.mean(hit)) if hit else float("nan"),
            "eq2_chance": float(np.mean(chance)) if chance else float("nan"), "n_objects": len(hit),
            "n_images": len(refs)}
