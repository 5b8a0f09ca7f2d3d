"""Caption evaluation: pycocoevalcap metrics, CLIPScore / RefCLIPScore, and results tables.

* ``coco_metrics(refs, hyps)``: BLEU-1..4, METEOR, ROUGE-L, CIDEr through pycocoevalcap's own scorers
  after its PTB tokenizer (Java), exactly as ``COCOEvalCap`` computes them; SPICE whenever Java and its
  Stanford CoreNLP jars can be had (``spice.py``), otherwise reported as unavailable with the reason.
* ``cider(refs, hyps)``: CIDEr alone on the workbench tokenizer (no Java): the per-epoch val score.
* ``clip_scores``: mean CLIPScore of captions (each prefixed "A photo depicts ", as Hessel et al. 2021 do) for
  their images, and RefCLIPScore against references: the formulas of ``clipscore.py``.
* ``write_table``: rows of metrics with the exact config and seed of each, as markdown + CSV.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.io import atomic_write
from ..utils.paths import repo_path
from ..utils.tables import markdown_table, write_csv
from .clipscore import W, clipscore, refclipscore
from ..model.vocab import tokenize


def _check(refs: dict, hyps: dict) -> None:
    missing = [k for k in hyps if k not in refs]
    if missing or not hyps:
        raise ValueError(f"hyps must be a non-empty dict whose keys all have references; {len(missing)} keys "
                         f"have none (e.g. {missing[:3]}).")
    for k in hyps:
        if not isinstance(hyps[k], str):
            raise ValueError(f"hyps[{k!r}]={hyps[k]!r} must be a string (one caption per image).")
        if not refs[k] or any(not isinstance(r, str) or not r.strip() for r in refs[k]):
            raise ValueError(f"refs[{k!r}]={refs[k]!r} holds no reference or an empty one; every scored image needs "
                             "non-empty reference captions (drop the image or fix its references).")


def empty_hypotheses(hyps: dict) -> list:
    """Ids whose caption is empty (a model that ends at once); they are scored as empty and counted."""
    return [k for k, h in hyps.items() if not h.strip()]


def coco_metrics(refs: dict, hyps: dict, spice: bool = True) -> dict:
    """refs {id: [str, ...]}, hyps {id: str} -> {"Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr"[, "SPICE"]}
    (fractions, as pycocoevalcap reports them) plus "SPICE_status" and "empty_captions" (hypotheses that are
    empty, scored as such, with a warning). SPICE is attempted whenever Java and its jars can be had
    (``workbench.evaluation.spice``); otherwise ``SPICE_status`` says why and how to enable it."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    _check(refs, hyps)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in refs[k]] for k in hyps})
    res = tok.tokenize({k: [{"caption": hyps[k]}] for k in hyps})
    out = {}
    scorers = [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]), (Meteor(), "METEOR"), (Rouge(), "ROUGE_L"),
               (Cider(), "CIDEr")]
    for scorer, names in scorers:
        with contextlib.redirect_stdout(io.StringIO()):                  # BLEU prints its internals
            score, _ = scorer.compute_score(gts, res)
        if isinstance(names, list):
            out.update({n: float(s) for n, s in zip(names, score)})
        else:
            out[names] = float(score)
    out["SPICE_status"] = "not requested"
    if spice:
        from . import spice as spice_lib
        ok, out["SPICE_status"] = spice_lib.status()
        if ok:
            value, out["SPICE_status"] = spice_lib.compute(gts, res)
            if value is not None:
                out["SPICE"] = value
    empty = empty_hypotheses(hyps)
    if empty:
        import warnings
        warnings.warn(f"{len(empty)} of {len(hyps)} captions are empty (e.g. ids {empty[:3]}); scored as empty.")
    out["empty_captions"] = len(empty)
    return out


def cider(refs: dict, hyps: dict) -> float:
    """CIDEr-D of ``hyps`` against ``refs`` on the workbench tokenizer (no Java; for per-epoch validation)."""
    from pycocoevalcap.cider.cider import Cider
    _check(refs, hyps)
    gts = {k: [" ".join(tokenize(c)) for c in refs[k]] for k in hyps}
    res = {k: [" ".join(tokenize(hyps[k])) or "<empty>"] for k in hyps}
    return float(Cider().compute_score(gts, res)[0])


def held_out_references(refs: dict, rng: np.random.Generator) -> tuple:
    """``(held, rest)``: for each image with at least 2 references one drawn with ``rng`` (in ``refs``' order), and
    the others: the split annotator agreement scores, and that a captioner is scored against beside it."""
    held, rest = {}, {}
    for k, v in refs.items():
        if len(v) < 2:
            continue
        j = int(rng.integers(len(v)))
        held[k], rest[k] = v[j], [c for i, c in enumerate(v) if i != j]
    return held, rest


def annotator_agreement(refs: dict, n_images: int | None = None, seed: int = 0) -> dict:
    """Annotator agreement: for each image (``refs``: id -> its reference captions, at least 2), one reference
    drawn at random (seeded) is scored with CIDEr-D against the others, as if it were a captioner's output.
    ``n_images`` draws that many images at random (all by default). MSCOCO's Karpathy test: 93.6 on 1,000 images;
    a captioner's CIDEr as a share of it says how close to a human it is (both are scored against ~4 references,
    a captioner against 5, which raises its CIDEr a little)."""
    rng = np.random.default_rng(seed)
    ids = [k for k, v in refs.items() if len(v) >= 2]
    if not ids:
        raise ValueError("refs has no image with at least 2 references; annotator agreement needs several per image.")
    if n_images is not None and n_images < len(ids):
        ids = [ids[i] for i in sorted(rng.choice(len(ids), size=n_images, replace=False))]
    held, rest = held_out_references({k: refs[k] for k in ids}, rng)
    return {"CIDEr": cider(rest, held), "n_images": len(ids),
            "references_per_image": float(np.mean([len(v) for v in rest.values()]))}


@torch.no_grad()
def clip_scores(clip, image_global: torch.Tensor, hyps: list, refs: list | None = None, w: float = W,
                prefix: str = "A photo depicts ") -> dict:
    """Mean CLIPScore (and RefCLIPScore with ``refs``: list of reference lists) of captions ``hyps`` for
    images with CLIP embeddings ``image_global`` [B, D]."""
    if len(hyps) != len(image_global):
        raise ValueError(f"got {len(hyps)} captions for {len(image_global)} images; they must pair up.")
    img = F.normalize(image_global.float(), dim=-1)
    cand = F.normalize(clip.text_features([prefix + h for h in hyps]).float(), dim=-1)
    clip_s = clipscore((img * cand).sum(-1), w)                                      # [B]
    out = {"CLIPScore": float(clip_s.mean())}
    if refs is not None:
        flat = [r for rs in refs for r in rs]
        ref = F.normalize(clip.text_features([prefix + r for r in flat]).float(), dim=-1)
        best, start = [], 0
        for i, rs in enumerate(refs):
            best.append((cand[i] @ ref[start:start + len(rs)].T).max())
            start += len(rs)
        ref_s = clipscore(torch.stack(best), w)
        out["RefCLIPScore"] = float(refclipscore(clip_s, ref_s).mean())
    return out


METRIC_ORDER = ("CIDEr", "Bleu_4", "METEOR", "ROUGE_L", "SPICE", "CLIPScore", "RefCLIPScore")


def aggregate(rows: list, group_key: str = "model", metrics=METRIC_ORDER) -> list:
    """Mean and sample std over seeds of every metric, one row per ``group_key`` value (order kept)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(r[group_key], []).append(r)
    out = []
    for name, rs in groups.items():
        row = {group_key: name, "seeds": ",".join(str(r.get("seed", "")) for r in rs), "n_seeds": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if isinstance(r.get(m), (int, float))]
            if vals:
                row[m], row[m + "_std"] = float(np.mean(vals)), float(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
        out.append(row)
    return out


def mean_std(mean: float, std: float, n: int, digits: int = 1) -> str:
    """"12.3 ± 0.4" over ``n`` seeds; one seed has no spread to show: "12.3"."""
    return f"{mean:.{digits}f}" if n <= 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_markdown(rows: list, group_key: str = "model", scale: float = 100.0) -> str:
    """Markdown of aggregated rows: metrics x100 as mean ± sample std over seeds (CLIPScores as they are; a single
    seed shows its value alone)."""
    metrics = [m for m in METRIC_ORDER if any(m in r for r in rows)]
    out = []
    for r in rows:
        cells = [str(r[group_key]), str(r.get("n_seeds", 1))]
        for m in metrics:
            s, d = (1.0, 3) if m.startswith(("CLIP", "RefCLIP")) else (scale, 1)
            cells.append(mean_std(r[m] * s, r.get(m + "_std", 0.0) * s, r.get("n_seeds", 1), d) if m in r else "n/a")
        out.append(cells)
    return markdown_table([group_key, "seeds"] + metrics, out)


def write_table(rows: list, path: str | Path, group_key: str = "model") -> dict:
    """Write per-run rows (each with its config and seed) to ``<path>.csv`` and the aggregated table to
    ``<path>.md`` (a relative path is under the repository, wherever the notebook runs); returns the paths."""
    path = repo_path(path)
    csv_path = write_csv(rows, path.with_suffix(".csv"), first=(group_key, "seed"))
    md = results_markdown(aggregate(rows, group_key), group_key)
    md_path = atomic_write(path.with_suffix(".md"), lambda tmp: Path(tmp).write_text(md + "\n"))
    return {"csv": csv_path, "md": md_path, "markdown": md}
