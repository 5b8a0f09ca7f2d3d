"""Datasets: sandbox splits (scenes, rendered images, five captions each), cached on disk.

    split = load_sandbox_split(WorldConfig.preset("sandbox"), "val", n=500)
    split.images      # uint8 [N, 64, 64, 3]
    split.captions    # list of 5 captions per scene
    split.scenes      # the scene specs (objects, positions, relation)
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .config import WorldConfig
from .paths import atomic_write, cache_dir, stable_hash
from .sandbox import make_split, reference_captions, render_scenes
from .sandbox.world import WORLD_VERSION

RENDER_VERSION = 1   # bump when the renderer changes so cached images are rebuilt (see also WORLD_VERSION)


@dataclass
class SandboxSplit:
    split: str
    scenes: list          # list[Scene]
    images: np.ndarray    # uint8 [N, H, W, 3]
    captions: list        # list[list[str]], 5 per scene

    def __len__(self) -> int:
        return len(self.scenes)

    def first_captions(self) -> list:
        return [c[0] for c in self.captions]


def _render_chunk(args):
    cfg, scenes = args
    return render_scenes(scenes, cfg)


def render_parallel(scenes, cfg: WorldConfig, workers: Optional[int] = None, progress: bool = True) -> np.ndarray:
    """Render scenes on all cores (chunks in worker processes) with a progress bar."""
    from tqdm.auto import tqdm
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(scenes) < 512:
        return render_scenes(scenes, cfg, progress=progress)
    chunks = [scenes[i:i + 256] for i in range(0, len(scenes), 256)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(tqdm(pool.map(_render_chunk, [(cfg, c) for c in chunks]), total=len(chunks),
                          desc="render", disable=not progress))
    return np.concatenate(parts)


def load_sandbox_split(cfg: WorldConfig, split: str, n: Optional[int] = None,
                       n_objects: Optional[int] = None, progress: bool = True) -> SandboxSplit:
    """Scenes, images and captions of ``split``; images are cached under ``runs/cache/sandbox``."""
    scenes = make_split(cfg, split, n, n_objects)
    key = stable_hash({"world": asdict(cfg), "split": split, "n": len(scenes), "n_objects": n_objects,
                       "render_version": RENDER_VERSION, "world_version": WORLD_VERSION})
    path = cache_dir("sandbox") / f"{split}-{len(scenes)}-{key}.npy"
    if path.exists():
        images = np.load(path)
    else:
        images = render_parallel(scenes, cfg, progress=progress)
        def _save(tmp):
            with open(tmp, "wb") as f:
                np.save(f, images)
        atomic_write(path, _save)
    return SandboxSplit(split, scenes, images, [reference_captions(s) for s in scenes])


# ----------------------------------------------------------------------------- real caption data
@dataclass
class CaptionedImage:
    image_id: object      # int for COCO, str (file stem) for Flickr30k
    file_name: str
    captions: list


def _coco_id(name: str):
    stem = os.path.splitext(os.path.basename(name))[0]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() and (stem.startswith("COCO_") or len(tail) == 12) else stem


def load_captions(path: str | os.PathLike) -> list:
    """Reference captions in either real format, as ``CaptionedImage`` items.

    * Karpathy lists (MacCap style): ``[{split, image_name, captions}, ...]``
    * COCO-format annotations: ``{images: [{id, file_name}], annotations: [{image_id, caption}]}``
    """
    import json
    with open(path) as f:
        blob = json.load(f)
    if isinstance(blob, list) and blob and {"image_name", "captions"} <= set(blob[0]):
        return [CaptionedImage(_coco_id(it["image_name"]), it["image_name"], list(it["captions"])) for it in blob]
    if isinstance(blob, dict) and {"images", "annotations"} <= set(blob):
        caps: dict = {}
        for a in blob["annotations"]:
            caps.setdefault(a["image_id"], []).append(a["caption"].strip())
        return [CaptionedImage(im["id"], im["file_name"], caps.get(im["id"], [])) for im in blob["images"]]
    raise ValueError(f"{path} is neither a Karpathy list of {{image_name, captions}} items nor COCO-format "
                     "annotations with 'images' and 'annotations'.")


def find_image(image_dir: str | os.PathLike, item: CaptionedImage) -> Optional[str]:
    """The file of ``item`` in ``image_dir``: its own name, or the bare COCO id name (``%012d.jpg``)."""
    candidates = [item.file_name]
    if isinstance(item.image_id, int):
        candidates.append(f"{item.image_id:012d}.jpg")
    for name in candidates:
        p = os.path.join(image_dir, name)
        if os.path.isfile(p):
            return p
    return None


def present_items(image_dir: str | os.PathLike, captions_file: str | os.PathLike,
                  owner: str = "RealDataConfig") -> list:
    """``(CaptionedImage, image path)`` for the items of ``captions_file`` whose image is in ``image_dir``;
    ``owner`` names the config whose ``image_dir`` to fix in the error."""
    from .paths import repo_path
    image_dir, captions_file = repo_path(image_dir), repo_path(captions_file)
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"image_dir={str(image_dir)!r} is not a folder; point {owner}.image_dir "
                                "at the images of its caption file.")
    found = [(it, p) for it in load_captions(captions_file) if (p := find_image(image_dir, it))]
    if not found:
        raise FileNotFoundError(f"none of the images named in captions_file={str(captions_file)!r} is in "
                                f"{image_dir}; check that the two belong together.")
    return found


def load_real_pairs(image_dir: str | os.PathLike, captions_file: str | os.PathLike, n: Optional[int] = None):
    """Real pairs: a list of ``(image_path, captions)`` for images present in ``image_dir``."""
    pairs = [(p, it.captions) for it, p in present_items(image_dir, captions_file)]
    return pairs[:n] if n else pairs


def analysis_pairs(profile: str, n: int, split: str = "val", world: Optional[WorldConfig] = None):
    """``(images, captions)`` for an analysis: sandbox renders (uint8 [N, H, W, 3]) or, for a paper
    profile, real image paths from ``RealDataConfig.preset(profile)``; one caption (the first) per image."""
    from .config import RealDataConfig, check_choice
    from .config import PROFILES
    check_choice("profile", profile, PROFILES)
    if profile == "sandbox":
        data = load_sandbox_split(world or WorldConfig.preset("sandbox"), split, n=n)
        return data.images, data.first_captions()
    real = RealDataConfig.preset(profile)
    pairs = load_real_pairs(real.image_dir, real.captions_file, n=n)
    return [p for p, _ in pairs], [c[0] for _, c in pairs]
