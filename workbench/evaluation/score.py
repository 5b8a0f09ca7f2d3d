"""Score any caption file with the workbench's metrics, against a Karpathy or COCO reference file.

    workbench score captions.json --refs data/mscoco/karpathy/dataset_coco.json --split test
    workbench score magic_outputs.json --refs mscoco_test.json

Accepted caption files: the COCO results format every captioning codebase writes
(``[{"image_id": ..., "caption": ...}]``), lists of ``{"image_name", "prediction"}`` items (``caption`` also
read), and a JSON dict ``{image id or file name: caption}``. Ids are matched as the reference loader reads them
(COCO: the integer id, also from a ``COCO_val2014_...jpg`` / ``000000123456.jpg`` file name; Flickr30k: the file
stem). The report counts matched images, references without a caption (missing) and captions without
references (extra); only matched images are scored.
"""
from __future__ import annotations

import argparse
import json
import os

from ..corpora.readers import coco_id, describe_json, load_captions
from ..utils.tables import markdown_table


def _key(image_id) -> str:
    """One spelling of an image id: a COCO file name ("COCO_val2014_000000391895.jpg", "000000391895.jpg") and its
    integer id give "391895"; any other name its stem ("1000092795.jpg" -> "1000092795")."""
    return str(image_id) if isinstance(image_id, int) else str(coco_id(str(image_id)))


def load_predictions(path: str | os.PathLike) -> dict:
    """``{image key: caption}`` of a caption file (see the module docstring); duplicate images are refused."""
    with open(path) as f:
        blob = json.load(f)
    items = []
    if isinstance(blob, dict):
        items = list(blob.items())
    elif isinstance(blob, list) and all(isinstance(x, dict) for x in blob):
        for k, x in enumerate(blob):
            ident = x.get("image_id", x.get("image_name", x.get("file_name")))
            cap = x.get("caption", x.get("prediction"))
            if ident is None or cap is None:
                raise ValueError(f"item {k} of {path} has no image_id / image_name or no caption / prediction: "
                                 f"{str(x)[:120]}; write [{{'image_id': ..., 'caption': ...}}] (COCO results).")
            items.append((ident, cap))
    else:
        raise ValueError(f"{path} is not a caption file: found {describe_json(blob)}; write the COCO results format "
                         "[{'image_id': ..., 'caption': ...}] or a list of {'image_name', 'prediction'} items.")
    out: dict = {}
    for ident, cap in items:
        k = _key(ident)
        if k in out:
            raise ValueError(f"image {ident!r} has two captions in {path}; keep one caption per image.")
        if not isinstance(cap, str):
            raise ValueError(f"the caption of image {ident!r} in {path} is {cap!r}, not a string.")
        out[k] = cap
    return out


def score_file(captions: str | os.PathLike, refs: str | os.PathLike, splits=None, spice: bool = False) -> dict:
    """Metrics (×100 except CLIPScore, which needs images and is not computed here) of the matched images, and
    the counts: ``matched``, ``missing`` (references without a caption), ``extra`` (captions without references)."""
    from .metrics import coco_metrics
    hyps = load_predictions(captions)
    gts = {_key(it.image_id): it.captions for it in load_captions(refs, splits)}
    matched = sorted(set(hyps) & set(gts))
    if not matched:
        raise ValueError(f"no image of {captions} is among the {len(gts)} images of {refs} (e.g. caption ids "
                         f"{sorted(hyps)[:3]}, reference ids {sorted(gts)[:3]}); check the reference file and --split.")
    metrics = coco_metrics({k: gts[k] for k in matched}, {k: hyps[k] for k in matched}, spice=spice)
    counts = {"matched": len(matched), "missing": len(set(gts) - set(hyps)), "extra": len(set(hyps) - set(gts)),
              "missing_ids": sorted(set(gts) - set(hyps))[:10], "extra_ids": sorted(set(hyps) - set(gts))[:10]}
    return {"metrics": metrics, "counts": counts}


def report(result: dict) -> str:
    m, c = result["metrics"], result["counts"]
    names = [k for k in ("CIDEr", "Bleu_4", "METEOR", "ROUGE_L", "SPICE") if k in m]
    table = markdown_table(names + ["matched", "missing", "extra"],
                           [[f"{100 * m[k]:.1f}" for k in names] + [c["matched"], c["missing"], c["extra"]]])
    lines = [table]
    if c["missing"]:
        lines.append(f"missing (references without a caption), e.g. {c['missing_ids']}")
    if c["extra"]:
        lines.append(f"extra (captions without references), e.g. {c['extra_ids']}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description="Score a caption file (COCO results format, {image_name, prediction} items or {id: caption}) "
                    "against a Karpathy or COCO reference file.")
    ap.add_argument("captions", help="the caption file to score")
    ap.add_argument("--refs", required=True, help="reference captions (Karpathy list / dataset_*.json, COCO json)")
    ap.add_argument("--split", nargs="+", default=None, help="Karpathy split(s) of --refs to score against, e.g. test")
    ap.add_argument("--spice", action="store_true", help="also SPICE (needs Java)")
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    result = score_file(args.captions, args.refs, args.split, spice=args.spice)
    print(report(result))
    if args.out:
        from ..utils.io import atomic_write_json
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
