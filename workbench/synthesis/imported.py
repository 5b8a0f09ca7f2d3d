"""Bring your own synthetic images: an existing set (e.g. PCM-Net's published MSCOCO-SD / Flickr30k-SD images)
in place of synthesis, written into the same manifest the engine writes, so no later stage can tell.

    records, report = import_images("sd_images/", "sd_index.csv", captions, caption_ids, "runs/x/synthetic", clip)

The index maps caption id -> image file (relative to the folder): a JSON object ``{caption_id: file}``, a JSON list
of ``{caption_id, file}`` items (``id`` / ``image`` accepted), or a CSV with a header holding those columns. Each
image is verified (it decodes, each side at least ``min_side`` pixels), hashed, and scored by the profile's CLIP
(cos(image, caption): CXE's weight), one line per image appended to ``import.jsonl`` (fsync'd): a rerun checks
the recorded files (size, modification time) and scores only what is new. ``manifest.jsonl`` holds the records
of the captions that have a good image, in caption order. Nothing is dropped silently: the report counts and
names captions without an image, index entries whose caption id the corpus does not have, files the index names
that are missing, unreadable or too small, duplicate ids in the index, and image files the index never names.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

from ..evaluation.clipscore import W, clipscore
from ..utils.io import atomic_write, atomic_write_json, sha256_file, stable_hash
from ..utils.paths import repo_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ID_KEYS, FILE_KEYS = ("caption_id", "id"), ("file", "image", "file_name", "path")


def _pick(row: dict, keys: tuple, what: str, where: str):
    for k in keys:
        if k in row and row[k] not in (None, ""):
            return str(row[k])
    raise ValueError(f"{where}: an entry has no {what} (one of {keys}): {str(row)[:120]}; each entry maps a caption "
                     "id to an image file, e.g. {\"caption_id\": \"391895#0\", \"file\": \"000000391895_0.jpg\"}.")


def read_index(path: str | os.PathLike) -> tuple:
    """(``[(caption_id, file)]`` in file order, duplicate ids) of an index file (JSON object, JSON list, CSV)."""
    path = repo_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"synthetic_index={str(path)!r} is not a file; give a JSON or CSV mapping caption id "
                                "-> image file (relative to --synthetic-images).")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        pairs = [(_pick(r, ID_KEYS, "caption id", str(path)), _pick(r, FILE_KEYS, "image file", str(path))) for r in rows]
    else:
        blob = json.loads(path.read_text())
        if isinstance(blob, dict):
            pairs = [(str(k), str(v)) for k, v in blob.items()]
        elif isinstance(blob, list):
            pairs = [(_pick(r, ID_KEYS, "caption id", str(path)), _pick(r, FILE_KEYS, "image file", str(path)))
                     for r in blob]
        else:
            raise ValueError(f"{path} holds a JSON {type(blob).__name__}; give an object {{caption_id: file}} or a "
                             "list of {caption_id, file} items.")
    seen, dups = set(), []
    for cid, _ in pairs:
        if cid in seen:
            dups.append(cid)
        seen.add(cid)
    return pairs, sorted(set(dups))


def _check_image(path: Path, min_side: int) -> Optional[str]:
    """None for a good image, else why not."""
    from PIL import Image
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
    except Exception as err:                                  # noqa: BLE001 - any decoding failure names the file
        return f"unreadable ({type(err).__name__})"
    return f"too small ({w}x{h} < {min_side})" if min(w, h) < min_side else None


def import_images(folder, index, captions: list, caption_ids: list, out_dir, scorer=None,
                  min_side: int = 64, batch_size: int = 64, progress: bool = True) -> tuple:
    """Verify, hash and score the indexed images of ``captions`` -> (manifest records of the captions with a good
    image, in caption order; the report). ``scorer``: the profile's CLIP (None: unscored)."""
    from tqdm.auto import tqdm

    from ..backbones.zeroshot import pair_cosines
    folder, out = repo_path(folder), repo_path(out_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"synthetic_images={str(folder)!r} is not a folder; point it at the images the "
                                "index names.")
    pairs, dups = read_index(index)
    by_id = {cid: i for i, cid in enumerate(map(str, caption_ids))}
    first = {}
    for cid, f in pairs:
        first.setdefault(cid, f)                              # a duplicate id: the first entry counts (named)
    unknown = sorted(cid for cid in first if cid not in by_id)
    named = {os.path.normpath(f) for f in first.values()}
    unnamed = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                     if p.suffix.lower() in IMAGE_SUFFIXES and os.path.normpath(str(p.relative_to(folder))) not in named)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "import.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue                                      # a line torn by a kill
            done[rec["caption_id"]] = rec
    from ..utils.io import weights_fingerprint
    identity = {"folder": str(folder), "w": W, "scorer": None if scorer is None else
                [scorer.cfg.model_name, str(scorer.cfg.pretrained), weights_fingerprint(scorer.model)]}
    bad, todo, records = {}, [], {}
    for cid, f in tqdm(first.items(), desc="verify images", disable=not progress):
        if cid not in by_id:
            continue
        path = folder / f
        rec = done.get(cid)
        if rec and rec.get("identity") == identity and path.is_file() and rec["size"] == path.stat().st_size \
                and rec["mtime_ns"] == path.stat().st_mtime_ns and rec["source"] == f:
            records[cid] = rec
            continue
        why = _check_image(path, min_side)
        if why:
            bad[f] = why
        else:
            todo.append((cid, f))
    with open(log, "a") as fh:
        for b in tqdm(range(0, len(todo), batch_size), desc="score images", disable=not progress or not todo):
            batch = todo[b:b + batch_size]
            paths = [str(folder / f) for _, f in batch]
            caps = [captions[by_id[cid]] for cid, _ in batch]
            cos = pair_cosines(scorer, paths, caps) if scorer is not None else [None] * len(batch)
            for (cid, f), p, c in zip(batch, paths, cos):
                st = os.stat(p)
                rec = {"caption_id": cid, "index": by_id[cid], "caption": captions[by_id[cid]], "seed": None,
                       "model_id": f"imported:{folder}", "settings_hash": stable_hash(identity), "file": str(p),
                       "source": f, "sha256": sha256_file(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "identity": identity}
                if c is not None:
                    rec.update(clip_cos=float(c), clip_score=clipscore(float(c)))
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                records[cid] = rec
    ordered = [records[cid] for cid in map(str, caption_ids) if cid in records]
    without = [cid for cid in map(str, caption_ids) if cid not in records]
    report = {"captions": len(caption_ids), "imported": len(ordered), "newly_scored": len(todo),
              "captions_without_image": len(without), "examples_without_image": without[:10],
              "index_entries": len(pairs), "duplicate_ids": dups[:20], "n_duplicate_ids": len(dups),
              "ids_not_in_corpus": unknown[:20], "n_ids_not_in_corpus": len(unknown),
              "bad_images": dict(sorted(bad.items())[:20]), "n_bad_images": len(bad),
              "images_not_in_index": unnamed[:20], "n_images_not_in_index": len(unnamed)}
    if not ordered:
        raise ValueError(f"no caption has a good image in {folder} ({report['n_bad_images']} bad, "
                         f"{report['n_ids_not_in_corpus']} index ids not among the {len(caption_ids)} training "
                         "captions' ids); check that the index's caption ids are the corpus ids "
                         "('<image_id>#<k>' for a Karpathy or COCO file).")
    atomic_write(out / "manifest.jsonl", lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in ordered)))
    atomic_write_json(out / "import_report.json", report)
    return ordered, report


def format_report(report: dict) -> str:
    """One paragraph of the import's counts, naming examples of every kind of problem."""
    parts = [f"{report['imported']:,} of {report['captions']:,} captions have an image ({report['newly_scored']:,} "
             "newly scored)"]
    for key, label in (("captions_without_image", "captions without an image"),
                       ("n_ids_not_in_corpus", "index ids not in the training text"),
                       ("n_duplicate_ids", "duplicate ids in the index (the first entry kept)"),
                       ("n_bad_images", "images missing, unreadable or too small"),
                       ("n_images_not_in_index", "image files the index does not name")):
        if report[key]:
            ex = {"captions_without_image": report["examples_without_image"], "n_ids_not_in_corpus":
                  report["ids_not_in_corpus"], "n_duplicate_ids": report["duplicate_ids"],
                  "n_bad_images": [f"{k}: {v}" for k, v in report["bad_images"].items()],
                  "n_images_not_in_index": report["images_not_in_index"]}[key]
            parts.append(f"{report[key]:,} {label} (e.g. {', '.join(map(str, ex[:3]))})")
    return "; ".join(parts)
