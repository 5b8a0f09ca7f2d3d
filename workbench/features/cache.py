"""Cached CLIP features of image sets and caption sets.

An image cache holds, per image, the global embedding ``global`` [D], the patch tokens ``tokens`` [N, W]
(class token removed, after ln_post) and the head-mapped patches ``patches`` [N, D]; a text cache holds
``text`` [D]; an attention cache (MacCap) holds ``attn`` [1 + N, 1 + N]. For ViT-L/14, ``ClipConfig(pool_grid=8)`` average-pools the 16x16 grid to 8x8 first.

On disk: ``<root>/<name>/manifest.json`` + ``shard_<k>/<key>.npy`` (fp16 by default), read back through
numpy memory maps, so a batch read touches only its rows. Extraction is resumable per shard: a shard is
written to a temp folder and swapped in, then recorded in the manifest with its checksum; a rerun skips
recorded shards whose files still match. A set cached with another backbone (a retrained CLIP) keeps its folder:
this backbone's goes to ``<root>/<name>@<backbone>``. A manifest made with another image set is
refused with the fix named.

    store = extract_image_features(clip, images, ids, "synthetic-train", Profile("sandbox").features)
    batch = store.get([3, 17, 42])            # {"global": [3, D], "tokens": [3, N, W], "patches": [3, N, D]}
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..config import FeatureConfig
from ..utils.device import ProcessState
from ..utils.io import atomic_write_json, sha256_file, stable_hash, weights_fingerprint
from ..utils.paths import repo_path

IMAGE_KEYS = ("global", "tokens", "patches")
TEXT_KEYS = ("text",)
ATTENTION_KEYS = ("attn",)


def clip_fingerprint(clip) -> str:
    """A short id of a CLIP's config and weights."""
    return stable_hash({"cfg": asdict(clip.cfg), "weights": weights_fingerprint(clip.model)})


class FeatureStore:
    """Read side of a feature cache: ``len``, ``ids``, ``get(indices)``, ``store[i]``."""

    def __init__(self, folder: str | Path):
        self.folder = repo_path(folder)
        path = self.folder / "manifest.json"
        if not path.exists():
            raise FileNotFoundError(f"no feature cache at {self.folder} (manifest.json missing); build it with "
                                    "extract_image_features / extract_text_features first.")
        self.manifest = json.loads(path.read_text())
        if not self.manifest.get("complete"):
            raise RuntimeError(f"the feature cache at {self.folder} is incomplete "
                               f"({len(self.manifest['shards'])} shards done); rerun the extraction to finish it.")
        self.ids = self.manifest["ids"]
        self.keys = tuple(self.manifest["keys"])
        self._starts = np.array([s["start"] for s in self.manifest["shards"]])
        self._maps: dict = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _map(self, shard: int, key: str) -> np.ndarray:
        if (shard, key) not in self._maps:
            self._maps[shard, key] = np.load(self.folder / self.manifest["shards"][shard]["dir"] / f"{key}.npy",
                                             mmap_mode="r")
        return self._maps[shard, key]

    def get(self, indices: Sequence[int], keys: Optional[Sequence[str]] = None, dtype=torch.float32) -> dict:
        """Rows ``indices`` of each key (default all) as tensors [len(indices), ...] in ``dtype``."""
        keys = self.keys if keys is None else tuple(keys)
        bad = [k for k in keys if k not in self.keys]
        if bad:
            raise KeyError(f"keys={bad} are not in this cache; it holds {self.keys}.")
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}); got min {idx.min()}, max {idx.max()}.")
        shard_of = np.searchsorted(self._starts, idx, side="right") - 1
        out = {}
        for key in keys:
            parts, where = [], []
            for shard in np.unique(shard_of):
                sel = np.nonzero(shard_of == shard)[0]
                parts.append(self._map(int(shard), key)[idx[sel] - self._starts[shard]])
                where.append(sel)
            if parts:
                rows = np.concatenate(parts)[np.argsort(np.concatenate(where), kind="stable")]
            else:
                rows = np.zeros((0,) + self._map(0, key).shape[1:], dtype=np.float16)
            out[key] = torch.from_numpy(np.ascontiguousarray(rows)).to(dtype)
        return out

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.get([i]).items()}

    def all(self, key: str) -> torch.Tensor:
        """Every row of one key, [len, ...] float32 (for small caches and analyses)."""
        return self.get(range(len(self)), [key])[key]


def _stat(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _with_stat(folder: Path, shard: dict, keys: tuple) -> dict:
    """The shard record with each file's [size, mtime_ns] (files verified against their sha256 just now)."""
    return dict(shard, stat={k: _stat(folder / shard["dir"] / f"{k}.npy") for k in keys})


def _shard_ok(folder: Path, shard: dict, keys: tuple, verify: bool) -> bool:
    """A recorded shard is reused when its files exist and match their sha256. The hash is skipped when a
    file's size and mtime equal those recorded after it was last hashed (as git and rsync do), unless
    ``verify`` is set: reopening a large cache then costs a stat per file instead of reading it all."""
    for k in keys:
        f = folder / shard["dir"] / f"{k}.npy"
        if not f.exists():
            return False
        if not verify and shard.get("stat", {}).get(k) == _stat(f):
            continue
        if sha256_file(f) != shard["sha256"][k]:
            return False
    return True


def _extract(name: str, ids: list, source_id: str, backbone_id: str, keys: tuple, n_items: int,
             encode: Callable[[int, int], dict], cfg: FeatureConfig, progress: bool, kind: str,
             split: bool = False) -> FeatureStore:
    """Shard loop shared by images and texts: ``encode(start, stop) -> {key: [n, ...] tensor}``. With ``split``
    (every launched process calls it at once) process r encodes shards r, r + P, ... and records them in its own
    ``manifest.rank<r>.json`` (resumable); the main process then checks and merges them into the manifest."""
    from tqdm.auto import tqdm
    if len(ids) != n_items or len(set(ids)) != len(ids):
        raise ValueError(f"ids must be {n_items} unique ids, one per item; got {len(ids)} "
                         f"({len(set(ids))} unique).")
    def read(folder: Path):
        path = folder / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else None

    folder = repo_path(cfg.root) / name
    manifest = read(folder)
    if manifest and manifest["identity"].get("backbone") != backbone_id:
        folder = folder.with_name(f"{name}@{backbone_id[:8]}")     # another backbone's cache keeps its folder
        manifest = read(folder)
    identity = {"kind": kind, "backbone": backbone_id, "source": stable_hash({"ids": ids, "source": source_id}),
                "dtype": cfg.dtype, "shard_size": cfg.shard_size}
    path = folder / "manifest.json"
    if manifest and manifest["identity"] != identity:
        diff = [k for k in identity if manifest["identity"].get(k) != identity[k]]
        raise ValueError(f"the feature cache {folder} was built with another {', '.join(diff)}; pass a new "
                         f"name= for this set, or delete {folder} to rebuild it.")
    if manifest is None:
        manifest = {"identity": identity, "ids": ids, "keys": list(keys), "n": n_items, "shards": [],
                    "complete": False}
    state = ProcessState(None, None) if split else None
    rank, world = (state.process_index, state.num_processes) if state else (0, 1)
    recorded = manifest["shards"] + [s for f in sorted(folder.glob("manifest.rank*.json"))
                                     for s in json.loads(f.read_text())["shards"]]
    done = {s["dir"]: _with_stat(folder, s, keys) for s in recorded if _shard_ok(folder, s, keys, cfg.verify_checksums)}
    if world > 1:
        state.wait_for_everyone()                       # every process has read the records before any is rewritten
    dtype = np.float16 if cfg.dtype == "fp16" else np.float32
    starts = list(range(0, n_items, cfg.shard_size))
    bar = tqdm(total=n_items, desc=f"features {name}", unit=kind, disable=not progress)
    shards, mine = [], []
    for start in starts:
        stop = min(start + cfg.shard_size, n_items)
        sdir = f"shard_{start // cfg.shard_size:05d}"
        if sdir not in done and (start // cfg.shard_size) % world != rank:
            continue                                    # another process encodes it
        if sdir not in done:
            parts = {k: [] for k in keys}
            for b in range(start, stop, cfg.batch_size):
                for k, v in encode(b, min(b + cfg.batch_size, stop)).items():
                    parts[k].append(v.float().cpu().numpy().astype(dtype))
                bar.update(min(b + cfg.batch_size, stop) - b)
            tmp = folder / (sdir + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for k in keys:
                np.save(tmp / f"{k}.npy", np.concatenate(parts[k]))
            shutil.rmtree(folder / sdir, ignore_errors=True)
            tmp.rename(folder / sdir)
            done[sdir] = _with_stat(folder, {"dir": sdir, "start": start, "stop": stop, "process": rank,
                                             "sha256": {k: sha256_file(folder / sdir / f"{k}.npy") for k in keys}}, keys)
            mine.append(done[sdir])
        else:
            bar.update(stop - start)
        shards.append(done[sdir])
        if world == 1:
            manifest["shards"] = list(shards)
            atomic_write_json(path, manifest)
        elif mine and mine[-1]["dir"] == sdir:
            atomic_write_json(folder / f"manifest.rank{rank}.json", {"shards": mine})
    bar.close()
    if world > 1:
        state.wait_for_everyone()
        if state.is_main_process:
            _merge_ranks(folder, manifest, starts, cfg, keys)
        state.wait_for_everyone()
        return FeatureStore(folder)
    manifest["complete"] = True
    atomic_write_json(path, manifest)
    return FeatureStore(folder)


def _merge_ranks(folder: Path, manifest: dict, starts: list, cfg: FeatureConfig, keys: tuple) -> None:
    """Main process, after a split extraction: every shard recorded (by the manifest or a process's own record)
    and matching its checksum, in order, into the manifest; the per-process records are then removed."""
    recorded = manifest["shards"] + [s for f in sorted(folder.glob("manifest.rank*.json"))
                                     for s in json.loads(f.read_text())["shards"]]
    by_dir = {s["dir"]: s for s in recorded}
    shards = []
    for start in starts:
        sdir = f"shard_{start // cfg.shard_size:05d}"
        if sdir not in by_dir or not _shard_ok(folder, by_dir[sdir], keys, verify=True):
            raise RuntimeError(f"shard {folder / sdir} is missing or does not match its checksum after the split "
                               "extraction; rerun it (finished shards are kept).")
        shards.append(_with_stat(folder, by_dir[sdir], keys))
    manifest.update(shards=shards, complete=True)
    atomic_write_json(folder / "manifest.json", manifest)
    for f in folder.glob("manifest.rank*.json"):
        f.unlink()


def extract_image_features(clip, images, ids: list, name: str, cfg: FeatureConfig, source_id: str = "",
                           progress: bool = True, split: bool = False) -> FeatureStore:
    """Cache the features of ``images`` (uint8 [N, H, W, 3] or a list of image paths) under ``name``.

    ``source_id`` says where the images come from (a synthesis manifest checksum, a split spec); together
    with ``ids`` it identifies the image set in the manifest. ``split``: under ``accelerate launch`` /
    ``torchrun``, called by every process at once, each encodes its share of the shards."""
    def encode(a, b):
        with torch.inference_mode():
            f = clip.encode_images(clip.pixels(images[a:b]))
        return {"global": f.global_, "tokens": f.tokens, "patches": f.patches}
    return _extract(name, list(ids), source_id, clip_fingerprint(clip), IMAGE_KEYS, len(images), encode, cfg,
                    progress, "images", split)


def extract_attention(clip, images, ids: list, name: str, cfg: FeatureConfig, source_id: str = "",
                      progress: bool = True) -> FeatureStore:
    """Cache ``attn`` [1 + N, 1 + N] per image: the last ViT block's head-averaged attention (token 0 = CLS;
    ``ClipBackbone.encode_images_with_attention``), for MacCap's sub-region aggregation."""
    def encode(a, b):
        with torch.inference_mode():
            return {"attn": clip.encode_images_with_attention(clip.pixels(images[a:b]))[1]}
    return _extract(name, list(ids), source_id, clip_fingerprint(clip), ATTENTION_KEYS, len(images), encode, cfg,
                    progress, "attention")


def extract_text_features(clip, texts: list, ids: list, name: str, cfg: FeatureConfig,
                          progress: bool = True) -> FeatureStore:
    """Cache the CLIP text embeddings ``text`` [D] of ``texts`` under ``name``."""
    texts = list(texts)

    def encode(a, b):
        with torch.inference_mode():
            return {"text": clip.encode_texts(texts[a:b])}
    return _extract(name, list(ids), stable_hash(texts), clip_fingerprint(clip), TEXT_KEYS, len(texts), encode,
                    cfg, progress, "texts")
