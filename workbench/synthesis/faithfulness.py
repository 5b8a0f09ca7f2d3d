"""A GenEval-like faithfulness profile of an image set against the captions it was made from.

GenEval (Ghosh et al., NeurIPS 2023) scores text-to-image models on six kinds of prompt. The sandbox
mirrors them with scenes of matching structure and scores each image with the sandbox CLIP against
*minimally changed* captions in one canonical wording ("a photo of ..."): the image passes when CLIP
prefers the true description to every change. As in GenEval, the later categories also require the
objects themselves to be right.

=====================  ==============================  ==============================================
category               scenes                          passes when CLIP prefers the truth to ...
=====================  ==============================  ==============================================
single_object          one object                      its category swapped (15 other things)
colour                 one object                      ... and its colour swapped (7 other colours)
two_objects            two single objects              either object's shape swapped or either dropped
counting               one group of 2-3                its category swapped, the count changed by one
position               two objects, left/right/above   two_objects, and the relation flipped
                       /below, relation in the caption
colour_attribution     two objects, distinct colours   two_objects, and the two colours exchanged
=====================  ==============================  ==============================================

Changes that describe something also present in the scene are not counted against it. Real renders give
the ceiling (what the sandbox CLIP can see); the same measure on synthetic images gives the profile.

    cats = category_scenes(world, "val", n=100)          # {category: [(scene, caption)]}
    prof = profile(clip, images_by_category, cats)        # {category: rate}
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.clipscore import clipscore
from ..sandbox import COLOURS, SHAPES, make_scene, reference_captions
from ..sandbox.captions import INVERSE, pluralise
from ..sandbox.layout import parse_caption

CATEGORIES = ("single_object", "colour", "two_objects", "counting", "position", "colour_attribution")
# Stable Diffusion 1.5 and 2.1 on GenEval (Ghosh et al., 2023, Table 2).
GENEVAL = {"sd15": {"single_object": 0.97, "two_objects": 0.38, "counting": 0.35, "colour": 0.76,
                    "position": 0.04, "colour_attribution": 0.06},
           "sd21": {"single_object": 0.98, "two_objects": 0.51, "counting": 0.44, "colour": 0.85,
                    "position": 0.07, "colour_attribution": 0.17}}
_COUNT_WORD = {1: "a", 2: "two", 3: "three", 4: "four"}


def phrase(colour: str, shape: str, count: int = 1) -> str:
    """Canonical object phrase: "a red circle", "three blue stars"."""
    if count == 1:
        return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"
    return f"{_COUNT_WORD[count]} {colour} {pluralise(shape)}"


def _photo(*phrases: str, relation: Optional[str] = None) -> str:
    if relation is not None:
        return f"a photo of {phrases[0]} {relation} {phrases[1]}"
    return "a photo of " + " and ".join(phrases)


def category_of(scene) -> list:
    """The categories a scene can test (structure only; the position test also needs the caption)."""
    g = scene.groups
    cats = []
    if scene.n_objects == 1:
        cats += ["single_object", "colour"]
    if len(g) == 1 and g[0].count >= 2:
        cats.append("counting")
    if len(g) == 2 and g[0].count == g[1].count == 1:
        cats.append("two_objects")
        if scene.relation in ("left of", "right of", "above", "below"):
            cats.append("position")
        if g[0].colour != g[1].colour and g[0].shape != g[1].shape:
            cats.append("colour_attribution")
    return cats


def states(caption: str, scene, category: str) -> bool:
    """Does ``caption`` say everything ``category`` tests of ``scene``? Every object named with its colour, the
    exact count for ``counting``, the relation for ``position`` (a prompt can only be faithful to what it says)."""
    try:
        parsed = parse_caption(caption)
    except ValueError:
        return False
    said = {(g.colour, g.shape, g.count) for g in parsed.groups}
    if not all((g.colour, g.shape, g.count) in said for g in scene.groups):
        return False
    return category != "position" or parsed.relation is not None


def category_scenes(world, split: str, n: int, max_scan: int = 20000) -> dict:
    """``{category: [(scene, caption)]}``, ``n`` each, from the first fitting scenes of ``split``.

    The caption is the scene's first reference that ``states`` what the category tests (each object with its
    colour, exact counts, the relation for ``position``); scenes with none are skipped. Scenes come from the split's own stream (forced object counts),
    deterministic from the world seed."""
    want = {c: [] for c in CATEGORIES}
    streams = {1: ("single_object", "colour"), 2: ("two_objects", "position", "colour_attribution", "counting"),
               3: ("counting",)}
    for n_obj, cats in streams.items():
        for i in range(max_scan):
            if all(len(want[c]) >= n for c in cats):
                break
            scene = make_scene(world, split, i, n_objects=n_obj)
            caps = reference_captions(scene)
            for c in category_of(scene):
                if c not in cats or len(want[c]) >= n:
                    continue
                stated = [k for k in caps if states(k, scene, c)]
                if stated:
                    want[c].append((scene, stated[0]))
    if split != "test_unseen" and any(len(v) < n for v in want.values()):
        short = {c: len(v) for c, v in want.items() if len(v) < n}
        raise ValueError(f"split={split!r} gave too few scenes for n={n}: {short}; lower n or raise max_scan.")
    return want


def contrasts(category: str, scene) -> tuple:
    """``(truth, [changed captions])`` for one scene of ``category``."""
    g = scene.groups
    present = scene.pairs()
    if category in ("single_object", "colour", "counting"):
        a = g[0]
        truth = _photo(phrase(a.colour, a.shape, a.count))
        alts = [_photo(phrase(a.colour, s, a.count)) for s in SHAPES if (a.colour, s) not in present]
        if category == "colour":
            alts += [_photo(phrase(c, a.shape, a.count)) for c in COLOURS if (c, a.shape) not in present]
        if category == "counting":
            alts += [_photo(phrase(a.colour, a.shape, k)) for k in (a.count - 1, a.count + 1) if 1 <= k <= 4]
        return truth, alts
    a, b = g[0], g[1]
    pa, pb = phrase(a.colour, a.shape), phrase(b.colour, b.shape)
    if category == "two_objects":
        alts = [_photo(pa), _photo(pb)]
        alts += [_photo(phrase(a.colour, s), pb) for s in SHAPES if (a.colour, s) not in present]
        alts += [_photo(pa, phrase(b.colour, s)) for s in SHAPES if (b.colour, s) not in present]
        return _photo(pa, pb), alts
    if category == "position":
        return _photo(pa, pb, relation=scene.relation), [_photo(pa, pb, relation=INVERSE[scene.relation])]
    if category == "colour_attribution":
        return _photo(pa, pb), [_photo(phrase(b.colour, a.shape), phrase(a.colour, b.shape))]
    raise ValueError(f"category={category!r} is not one of {CATEGORIES}.")


def _passes(clip, img: torch.Tensor, scenes, category: str) -> np.ndarray:
    """bool [N]: CLIP prefers the truth to every change of ``category``; ``img`` normalised [N, D]."""
    pairs = [contrasts(category, s) for s in scenes]
    texts = sorted({t for truth, alts in pairs for t in [truth, *alts]})
    index = {t: i for i, t in enumerate(texts)}
    txt = F.normalize(clip.text_features(texts).float(), dim=-1)                    # [T, D]
    sim = (img @ txt.T).numpy()                                                    # [N, T]
    return np.array([sim[i, index[t]] > max(sim[i, index[a]] for a in alts) for i, (t, alts) in enumerate(pairs)])


def profile(clip, images: dict, cats: dict) -> dict:
    """``{category: {"rate", "flags", "n"}}`` for images grouped like ``cats`` (``images[c]`` uint8 [N, H, W, 3]
    paired with ``cats[c]``); later categories include their prerequisite (``colour`` needs
    ``single_object``, ``position`` and ``colour_attribution`` need ``two_objects``)."""
    needs = {"colour": "single_object", "position": "two_objects", "colour_attribution": "two_objects"}
    out = {}
    with torch.no_grad():
        for c in CATEGORIES:
            if c not in cats or not len(cats[c]):
                continue
            scenes = [s for s, _ in cats[c]]
            img = F.normalize(clip.image_features(images[c]).global_.float(), dim=-1)   # [N, D], encoded once
            flags = _passes(clip, img, scenes, c)
            if c in needs:
                flags &= _passes(clip, img, scenes, needs[c])
            out[c] = {"rate": float(flags.mean()), "flags": flags.tolist(), "n": len(flags)}
    return out


def rates(prof: dict) -> dict:
    """``{category: rate}`` of a profile, plus GenEval's overall score (the mean over categories)."""
    r = {c: v["rate"] for c, v in prof.items()}
    r["overall"] = float(np.mean(list(r.values()))) if r else float("nan")
    return r


# ----------------------------------------------------------------------------- profiles of a synthesis setting
def real_images(world, cats: dict) -> dict:
    """Renders of the category scenes (the ceiling of the profile), ``{category: uint8 [N, H, W, 3]}``."""
    from ..sandbox import render_scenes
    return {c: render_scenes([s for s, _ in v], world) for c, v in cats.items()}


def synthesise(pipe, cfg, cats: dict, clip=None, progress: bool = False) -> dict:
    """Synthesise every category caption with ``cfg`` (resumable, in ``cfg.out_dir``), ``{category: images}``."""
    from .engine import SynthesisEngine, load_images
    rows = [(c, f"{c}:{s.scene_id}", cap) for c, v in cats.items() for s, cap in v]
    engine = SynthesisEngine(pipe, cfg, scorer=clip)
    recs = engine.run([r[2] for r in rows], [r[1] for r in rows], progress=progress)
    images = load_images(cfg.out_dir, recs)
    return {c: images[[i for i, r in enumerate(rows) if r[0] == c]] for c in cats}


def probe_features(clip, images: np.ndarray) -> torch.Tensor:
    """What a synthetic-vs-real probe sees: the normalised global embedding and the mean of the patch tokens
    (the captioner's inputs), [N, D + W]. The calibrated CLIP's global embedding keeps little of an image's
    style (a tight cone of caption content), the patch tokens keep it."""
    with torch.no_grad():
        f = clip.image_features(images)
    return torch.cat([F.normalize(f.global_.float(), dim=-1), f.tokens.float().mean(1)], dim=1)


def synthetic_vs_real(clip, synthetic: dict, real: dict, seed: int = 0) -> dict:
    """Is the synthetic set measurably synthetic? Held-out accuracy of a linear probe on CLIP image features
    (``probe_features``) telling synthetic from real images of the same captions."""
    from ..backbones.gap import linear_separability
    syn = np.concatenate([synthetic[c] for c in synthetic])
    rl = np.concatenate([real[c] for c in synthetic])
    acc = linear_separability(probe_features(clip, syn), probe_features(clip, rl), seed=seed)["accuracy"]
    return {"probe_accuracy": acc, "n": len(syn)}


def clip_scores(clip, images: dict, cats: dict) -> float:
    """Mean CLIPScore of images against their captions (all categories)."""
    from ..backbones.zeroshot import pair_cosines
    cos = np.concatenate([pair_cosines(clip, images[c], [cap for _, cap in cats[c]]) for c in cats])
    return float(clipscore(cos).mean())


def profile_report(pipe, clip, cfg, world, split: str, n: int, progress: bool = False) -> dict:
    """Profiles of real renders and of ``cfg``'s synthetic images on ``n`` scenes per category of ``split``,
    plus the synthetic-vs-real probe and CLIPScores. Images go to ``<cfg.out_dir>-profile-<split>-<n>-<weights>``
    (one folder per text-to-image model)."""
    from dataclasses import replace

    from .engine import pipeline_fingerprint
    cats = category_scenes(world, split, n)
    run = replace(cfg, out_dir=f"{cfg.out_dir}-profile-{split}-{n}-{pipeline_fingerprint(pipe)[:8]}")
    syn = synthesise(pipe, run, cats, progress=progress)
    real = real_images(world, cats)
    p_syn, p_real = profile(clip, syn, cats), profile(clip, real, cats)
    return {"split": split, "n_per_category": n, "settings": cfg.settings(),
            "synthetic": rates(p_syn), "real": rates(p_real),
            "synthetic_flags": {c: v["flags"] for c, v in p_syn.items()},
            "probe_accuracy": synthetic_vs_real(clip, syn, real)["probe_accuracy"],
            "clipscore_synthetic": clip_scores(clip, syn, cats), "clipscore_real": clip_scores(clip, real, cats),
            "captions": {c: [cap for _, cap in v] for c, v in cats.items()}, "images": syn, "real_images": real}


def distance_to(rates_: dict, reference: dict, keys=("single_object", "colour")) -> float:
    """Largest absolute deviation from a reference profile on ``keys`` (SD 1.5 calibration: <= 0.15)."""
    return max(abs(rates_[k] - reference[k]) for k in keys)


MIN_PROBE = 0.95   # "measurably synthetic": a linear probe on CLIP features tells the images from real this often


def choose_strength(reports: dict, reference: dict = GENEVAL["sd15"], min_probe: float = MIN_PROBE) -> float:
    """The knob value whose *val* profile is closest to ``reference`` on single object and colour among the
    measurably synthetic ones (probe >= ``min_probe`` and mean CLIPScore below real); ties go to the larger
    strength (more of the image drawn by the model)."""
    ok = {s: r for s, r in reports.items()
          if r["probe_accuracy"] >= min_probe and r["clipscore_synthetic"] < r["clipscore_real"]}
    if not ok:
        raise ValueError(f"no strength in {sorted(reports)} gives measurably synthetic images "
                         f"(probe >= {min_probe}, CLIPScore below real); widen the sweep.")
    return min(ok, key=lambda s: (round(distance_to(ok[s]["synthetic"], reference), 6), -s))
