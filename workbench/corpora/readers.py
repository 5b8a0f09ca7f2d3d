"""Readers of real caption files (Karpathy lists, Karpathy ``dataset_*.json``, COCO-format annotations) and of the
image folders they describe.

    items = load_captions(karpathy_file("mscoco"), splits=("train", "restval"))     # config/layout.py's path
    image_counts(items, "data/mscoco")   # {"captions", "images", "images_present", "images_missing"}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import WorldConfig
from ..config.layout import KARPATHY_SPLITS
from ..utils.io import stable_hash

# ----------------------------------------------------------------------------- real caption data
CAPTION_FORMATS = ("a Karpathy list of {split, image_name, captions} items (MacCap style)",
                   "a Karpathy dataset_coco.json / dataset_flickr30k.json ({dataset, images: [{filename, split, "
                   "sentences: [{raw}]}]})",
                   "COCO-format annotations ({images: [{id, file_name}], annotations: [{image_id, caption}]})")


@dataclass
class CaptionedImage:
    image_id: object      # int for COCO, str (file stem) for Flickr30k
    file_name: str
    captions: list
    split: Optional[str] = None   # Karpathy split (train / restval / val / test), when the file says
    folder: str = ""              # sub-folder of the image root (Karpathy "filepath", e.g. "val2014")
    domain: Optional[str] = None  # NoCaps' per-image label: "in-domain", "near-domain" or "out-domain"


def coco_id(name: str):
    stem = os.path.splitext(os.path.basename(name))[0]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() and (stem.startswith("COCO_") or len(tail) == 12) else stem


def _splits_arg(splits) -> Optional[tuple]:
    if splits is None:
        return None
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    bad = [s for s in splits if s not in KARPATHY_SPLITS]
    if not splits or bad:
        raise ValueError(f"splits={splits!r} must name Karpathy splits among {KARPATHY_SPLITS}, e.g. "
                         "('train', 'restval') for training text or 'test'.")
    return splits


def caption_format(blob) -> Optional[str]:
    """``"karpathy_list"``, ``"karpathy_dataset"``, ``"coco"`` or None for a parsed caption file."""
    if isinstance(blob, list) and blob and isinstance(blob[0], dict) and {"image_name", "captions"} <= set(blob[0]):
        return "karpathy_list"
    if isinstance(blob, dict) and isinstance(blob.get("images"), list):
        if "annotations" in blob:
            return "coco"
        first = blob["images"][0] if blob["images"] else None
        if isinstance(first, dict) and {"filename", "sentences"} <= set(first):
            return "karpathy_dataset"
    return None


def describe_json(blob) -> str:
    """What a parsed JSON file holds, for errors: its top-level type and keys (or its first item's)."""
    if isinstance(blob, dict):
        return f"a dict with keys {sorted(blob)[:12]}"
    if isinstance(blob, list):
        first = blob[0] if blob else None
        inner = f"dicts with keys {sorted(first)[:12]}" if isinstance(first, dict) else type(first).__name__
        return f"a list of {len(blob)} items (the first: {inner})" if blob else "an empty list"
    return f"a JSON {type(blob).__name__}"


def _checked(path, image_id, captions) -> list:
    """The stripped captions of one image; refuses an image without captions or an empty / non-text one."""
    if not captions:
        raise ValueError(f"image {image_id} in {path} has no captions; remove it from the file or add its references.")
    out = []
    for k, c in enumerate(captions):
        if not isinstance(c, str) or not c.strip():
            raise ValueError(f"caption {k} of image {image_id} in {path} is empty ({c!r}); fix or drop it.")
        out.append(c.strip())
    return out


def parse_captions(blob, path="<caption file>", splits=None) -> list:
    """``CaptionedImage`` items of an already parsed caption file (see ``load_captions``)."""
    splits = _splits_arg(splits)
    fmt = caption_format(blob)
    if fmt == "karpathy_list":
        items = []
        for k, it in enumerate(blob):
            if not isinstance(it, dict) or not {"image_name", "captions"} <= set(it):
                raise ValueError(f"item {k} of {path} is not an {{image_name, captions}} dict: {str(it)[:120]}")
            image_id = coco_id(it["image_name"])
            items.append(CaptionedImage(image_id, it["image_name"], _checked(path, image_id, it["captions"]),
                                        it.get("split"), it.get("file_path") or ""))
    elif fmt == "karpathy_dataset":
        items = []
        for im in blob["images"]:
            image_id = im.get("cocoid", coco_id(im["filename"]))
            caps = _checked(path, image_id, [s.get("raw") if isinstance(s, dict) else s for s in im["sentences"]])
            items.append(CaptionedImage(image_id, im["filename"], caps, im.get("split"), im.get("filepath") or ""))
    elif fmt == "coco":
        if splits is not None:
            raise ValueError(f"splits={splits!r} was given but {path} is COCO-format, which has no Karpathy splits; "
                             "drop splits or use a Karpathy file (dataset_coco.json).")
        caps: dict = {}
        for a in blob["annotations"]:
            caps.setdefault(a["image_id"], []).append(a["caption"])
        return [CaptionedImage(im["id"], im["file_name"], _checked(path, im["id"], caps.get(im["id"], [])),
                               domain=im.get("domain")) for im in blob["images"]]
    else:
        raise ValueError(f"{path} is neither a Karpathy list of {{image_name, captions}} items, a Karpathy "
                         f"dataset_*.json nor COCO-format annotations; found {describe_json(blob)}. Accepted "
                         f"formats: {'; '.join(CAPTION_FORMATS)}.")
    if splits is None:
        return items
    kept = [it for it in items if it.split in splits]
    if not kept:
        raise ValueError(f"no image of {path} is in splits={splits!r}; the file has splits "
                         f"{sorted({str(it.split) for it in items})}.")
    return kept


def load_captions(path: str | os.PathLike, splits=None) -> list:
    """Reference captions of a real caption file, as ``CaptionedImage`` items (captions stripped).

    * Karpathy lists (MacCap style): ``[{split, image_name, file_path?, captions}, ...]``
    * Karpathy ``dataset_coco.json`` / ``dataset_flickr30k.json``: ``{dataset, images: [{filepath?, filename,
      split, sentences: [{raw, tokens}], cocoid?}]}``
    * COCO-format annotations: ``{images: [{id, file_name}], annotations: [{image_id, caption}]}`` (``info`` etc.
      are ignored); NoCaps' files are of this format with a ``domain`` per image, kept as ``item.domain``

    ``splits`` (Karpathy formats only) keeps the images of those splits, e.g. ``("train", "restval")`` or
    ``"test"``; None keeps all. An image without captions or with an empty caption is refused.
    """
    import json
    with open(path) as f:
        blob = json.load(f)
    return parse_captions(blob, path, splits)


CORPUS_FORMATS = ("a .txt file, one caption per line", "a JSON list of caption strings",
                  "a JSON list of {id, caption} dicts") + CAPTION_FORMATS


def load_caption_corpus(path: str | os.PathLike, splits=None) -> tuple:
    """``(captions, caption_ids)`` of a caption corpus to synthesise or train on, one entry per caption.

    Accepts a ``.txt`` file (one caption per line; ids are line indices from 0), a JSON list of strings (ids:
    list indices) or of ``{id, caption}`` dicts, and the three reference formats of ``load_captions`` (ids
    ``"<image_id>#<k>"``, the k-th caption of that image). ``splits`` selects Karpathy splits; for a Karpathy
    ``dataset_*.json`` it defaults to the training text, ``("train", "restval")``. Empty captions are refused.
    """
    import json
    from pathlib import Path
    path = str(path)
    text = Path(path).read_text()
    if path.endswith(".txt"):
        lines = text.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        empty = [k for k, line in enumerate(lines) if not line.strip()]
        if empty or not lines:
            raise ValueError(f"{path} has {'no captions' if not lines else f'empty line(s) {empty[:5]}'}; a .txt "
                             "caption file holds one non-empty caption per line.")
        return [line.strip() for line in lines], [str(k) for k in range(len(lines))]
    try:
        blob = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is neither a .txt file nor valid JSON ({err}). Accepted caption files: "
                         f"{'; '.join(CORPUS_FORMATS)}.") from None
    fmt = caption_format(blob)
    if fmt is not None:
        if fmt == "karpathy_dataset" and splits is None:
            splits = ("train", "restval")
        items = parse_captions(blob, path, splits)
        rows = [(c, f"{it.image_id}#{k}") for it in items for k, c in enumerate(it.captions)]
        return [r[0] for r in rows], [r[1] for r in rows]
    if isinstance(blob, list) and blob:
        if splits is not None:
            raise ValueError(f"splits={splits!r} applies to Karpathy files only; {path} is a plain caption list.")
        caps, ids = [], []
        for k, it in enumerate(blob):
            if isinstance(it, str):
                cap, cid = it, str(k)
            elif isinstance(it, dict) and {"id", "caption"} <= set(it):
                cap, cid = it["caption"], str(it["id"])
            else:
                raise ValueError(f"item {k} of {path} is neither a caption string nor an {{id, caption}} dict: "
                                 f"{str(it)[:120]}. Accepted caption files: {'; '.join(CORPUS_FORMATS)}.")
            if not isinstance(cap, str) or not cap.strip():
                raise ValueError(f"caption {k} (id {cid}) in {path} is empty ({cap!r}); fix or drop it.")
            caps.append(cap.strip())
            ids.append(cid)
        return caps, ids
    raise ValueError(f"{path} is not a caption file this workbench reads; found {describe_json(blob)}. Accepted "
                     f"caption files: {'; '.join(CORPUS_FORMATS)}.")


def caption_groups(caption_ids: list) -> list:
    """For each caption, the indices of every caption of the same image (itself included), from the corpus ids
    ``"<image_id>#<k>"`` that ``load_caption_corpus`` gives reference files; a caption without an image (a .txt
    line, a JSON string) is its own group."""
    by_image: dict = {}
    keys = [str(c).rsplit("#", 1)[0] if "#" in str(c) else ("", i) for i, c in enumerate(caption_ids)]
    for i, k in enumerate(keys):
        by_image.setdefault(k, []).append(i)
    return [by_image[k] for k in keys]


def find_image(image_dir: str | os.PathLike, item: CaptionedImage) -> Optional[str]:
    """The file of ``item`` under ``image_dir``: its own name, ``<folder>/<name>`` (Karpathy ``filepath``, when
    ``image_dir`` is the corpus root), or the bare COCO id name (``%012d.jpg``)."""
    candidates = [item.file_name]
    if item.folder:
        candidates.append(os.path.join(item.folder, item.file_name))
    if isinstance(item.image_id, int):
        candidates.append(f"{item.image_id:012d}.jpg")
    for name in candidates:
        p = os.path.join(image_dir, name)
        if os.path.isfile(p):
            return p
    return None


def image_counts(items: list, image_dir: str | os.PathLike, verify: bool = False) -> dict:
    """``{"captions", "images", "images_present", "images_missing"}`` of caption items against an image folder
    (a missing folder counts every image as missing): a small dict for results tables. ``verify`` decodes every
    present file and adds ``images_unreadable`` (counted present only when it decodes) and their names."""
    from ..utils.paths import repo_path
    root = repo_path(image_dir)
    paths = [p for it in items if (p := find_image(root, it)) is not None] if root.is_dir() else []
    out = {"captions": sum(len(it.captions) for it in items), "images": len(items)}
    if verify:
        bad = unreadable_images(paths)
        out.update({"images_unreadable": len(bad), "unreadable": sorted(bad)[:20]})
        paths = [p for p in paths if p not in bad]
    out.update({"images_present": len(paths), "images_missing": len(items) - len(paths) - out.get("images_unreadable", 0)})
    return out


def caption_file_counts(captions_file: str | os.PathLike, image_dir: str | os.PathLike, splits=None) -> dict:
    """``image_counts`` of a caption file (``splits`` as in ``load_captions``) against ``image_dir``."""
    from ..utils.paths import repo_path
    return image_counts(load_captions(repo_path(captions_file), splits), image_dir)


def format_counts(counts: dict, label: str = "") -> str:
    """One printable line of ``image_counts``."""
    return (f"{label + ': ' if label else ''}{counts['captions']:,} captions, {counts['images']:,} images listed, "
            f"{counts['images_present']:,} present, {counts['images_missing']:,} missing")


def present_items(image_dir: str | os.PathLike, captions_file: str | os.PathLike,
                  owner: str = "RealDataConfig") -> list:
    """``(CaptionedImage, image path)`` for the items of ``captions_file`` whose image is in ``image_dir``;
    ``owner`` names the config whose ``image_dir`` to fix in the error."""
    from ..utils.paths import repo_path
    image_dir, captions_file = repo_path(image_dir), repo_path(captions_file)
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image_dir={str(image_dir)!r} is not a folder; point {owner}.image_dir "
                                "at the images of its caption file.")
    found = [(it, p) for it in load_captions(captions_file) if (p := find_image(image_dir, it))]
    if not found:
        raise FileNotFoundError(f"none of the images named in captions_file={str(captions_file)!r} is in "
                                f"{image_dir}; check that the two belong together.")
    return found


class RealImages:
    """Real images named by file (a val or test set) with their references, the same interface as
    ``SandboxSplit``: ``images[i]`` / ``images[a:b]`` load uint8 thumbnails (centre-cropped, ``size`` px) from the
    files when asked, so nothing holds the set in memory."""

    def __init__(self, paths: list, captions: list, ids: list, size: int = 224):
        self.paths, self.captions, self.ids = [str(p) for p in paths], captions, list(ids)
        self.images = _Thumbnails(self.paths, size)

    def __len__(self) -> int:
        return len(self.paths)

    def first_captions(self) -> list:
        return [c[0] for c in self.captions]

    @property
    def source_id(self) -> str:
        return stable_hash([[os.path.basename(p), os.path.getsize(p)] for p in self.paths])


class _Thumbnails:
    def __init__(self, paths: list, size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return thumbnails(self.paths[index], self.size)
        return thumbnails([self.paths[index]], self.size)[0]



def unreadable_images(paths: list) -> dict:
    """``{path: reason}`` of the image files PIL cannot decode (truncated, corrupt, not an image)."""
    from PIL import Image
    bad = {}
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception as err:                      # noqa: BLE001 - any decoding failure names the file
            bad[p] = f"{type(err).__name__}: {err}"
    return bad


def thumbnails(paths: list, size: int = 224) -> np.ndarray:
    """uint8 [N, size, size, 3]: each image file centre-cropped to a square and resized (for display)."""
    from PIL import Image, ImageOps
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([np.asarray(ImageOps.fit(Image.open(p).convert("RGB"), (size, size), Image.BICUBIC))
                     for p in paths])


def load_real_pairs(image_dir: str | os.PathLike, captions_file: str | os.PathLike, n: Optional[int] = None):
    """Real pairs: a list of ``(image_path, captions)`` for images present in ``image_dir``."""
    pairs = [(p, it.captions) for it, p in present_items(image_dir, captions_file)]
    return pairs[:n] if n else pairs


def analysis_pairs(profile: str, n: int, split: str = "val", world: Optional[WorldConfig] = None):
    """``(images, captions)`` for an analysis: sandbox renders (uint8 [N, H, W, 3]) or, for a paper
    profile, real image paths from its ``RealDataConfig``; one caption (the first) per image."""
    from ..config import PROFILES, Profile, check_choice
    from ..sandbox.splits import load_sandbox_split
    check_choice("profile", profile, PROFILES)
    stages = Profile(profile)
    if profile == "sandbox":
        data = load_sandbox_split(world or stages.world, split, n=n)
        return data.images, data.first_captions()
    real = stages.real
    pairs = load_real_pairs(real.image_dir, real.captions_file, n=n)
    return [p for p, _ in pairs], [c[0] for _, c in pairs]
