"""Sandbox splits: the scenes of a split, their renders (cached on disk) and five reference captions each.

    split = load_sandbox_split(Profile("sandbox").world, "val", n=500)
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

from ..config import WorldConfig
from ..utils.io import atomic_write, stable_hash
from ..utils.paths import cache_dir
from .captions import reference_captions
from .render import render_scenes
from .world import WORLD_VERSION, make_split

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

    @property
    def ids(self) -> list:
        return [s.scene_id for s in self.scenes]

    @property
    def source_id(self) -> str:
        """Names the image set for a feature cache."""
        return f"sandbox-{self.split}"

    def pixels_digest(self, n: int = 256) -> str:
        """sha256 of the first ``n`` renders: with the captions, what keys a run trained on this split (another
        world is another run, never resumed)."""
        import hashlib
        return hashlib.sha256(self.images[:n].tobytes()).hexdigest()


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
