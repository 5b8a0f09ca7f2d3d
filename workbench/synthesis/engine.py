"""Resumable, sharded text-to-image synthesis of a caption corpus, for any diffusers pipeline.

Layout of ``out_dir``::

    settings.json                 model id + settings (a resume must use the same ones) and the scorer
    shard-00000/000000042.png     one image per caption, written atomically (temp file + rename)
    shard-00000.jsonl             that shard's manifest, one line per finished caption (append + fsync)
    manifest.jsonl                the consolidated manifest, rewritten atomically when the run completes

A manifest record holds: caption_id, caption, seed, model_id, settings_hash, file, sha256, and with a
scorer clip_cos, clip_score (the CXE weight) and scorer (``"<clip profile>/<model name>/<hash>"``; the
full identity, with the CLIP's pretrained tag and weights fingerprint, is ``settings.json["scorer"]``). The
scorer is the CLIP of ``cfg.clip_profile`` (``paper_fast`` and ``paper_b32``: ViT-B/32). Caption ``i``
always gets seed ``caption_seed(cfg.seed, caption_id)``, so a rerun reproduces it. Killed at any point, a
rerun verifies every recorded file (exists, checksum), regenerates what is missing or corrupt and
completes the set exactly once per caption; recorded images scored by another scorer (another CLIP, other
weights or another CLIPScore w) are re-scored, never mixed.

Scaling out: under ``accelerate launch`` each process owns the shards ``k`` with
``k % num_processes == process_index``; the main process consolidates at the end.

    workbench synthesize --preset sandbox --split train --n 2000
    accelerate launch -m workbench.synthesis.engine --preset paper_b32 --captions data/mscoco/karpathy/dataset_coco.json

``--captions`` takes any caption corpus ``data.load_caption_corpus`` reads: a ``.txt`` file (one caption per
line), a JSON list of strings or of ``{id, caption}``, COCO-format annotations (``captions_train2014.json``),
a Karpathy list (MacCap style) or a Karpathy ``dataset_coco.json`` / ``dataset_flickr30k.json``, whose
``--splits`` default to the training text, ``train restval``. Anything else is refused with the formats.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..config import Profile, SynthesisConfig, resolve
from ..evaluation.clipscore import W, clipscore
from ..utils.device import ProcessState
from ..utils.io import atomic_write, atomic_write_json, sha256_file, stable_hash, weights_fingerprint
from ..utils.paths import repo_path

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def caption_seed(base_seed: int, caption_id: str) -> int:
    """Deterministic per-caption seed (independent of batch composition and process count)."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}:{caption_id}".encode()).digest()[:4], "little")


def load_pipeline(cfg: SynthesisConfig, device: str | torch.device = "auto"):
    """``DiffusionPipeline.from_pretrained`` for a local folder or a hub id, with a clear offline error."""
    from diffusers import DiffusionPipeline

    from ..utils.device import resolve_device
    local = repo_path(cfg.model_id)
    source = str(local) if local.is_dir() else cfg.model_id
    dev = resolve_device(device)
    dtype = _DTYPES[cfg.dtype] if dev.type == "cuda" else torch.float32
    try:
        pipe = DiffusionPipeline.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as err:
        raise OSError(
            f"Could not load the text-to-image pipeline model_id={cfg.model_id!r}: {err}\n"
            f"It is neither a local folder (looked at {local}) nor in the local Hugging Face cache. Run once on "
            f"a connected machine: python -c \"from diffusers import DiffusionPipeline; "
            f"DiffusionPipeline.from_pretrained('{cfg.model_id}')\", or save a pipeline with "
            f"save_pretrained and set SynthesisConfig.model_id to that folder.") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def scorer_identity(scorer, cfg: SynthesisConfig) -> Optional[dict]:
    """Who scores the pairs, recorded in ``settings.json``: the ClipConfig preset the scorer was built from
    (``cfg.clip_profile`` when it matches, else the preset that matches, else ``"custom"``), its open_clip model
    name and pretrained tag or path, a fingerprint of its weights, and the CLIPScore weight w; None without one."""
    if scorer is None:
        return None
    from ..config import ClipConfig, Profile
    ccfg = getattr(scorer, "cfg", None)
    names = [cfg.clip_profile] + [p for p in ClipConfig.presets() if p != cfg.clip_profile]
    profile = next((p for p in names if Profile(p).clip == ccfg), "custom")
    return {"clip_profile": profile, "model_name": getattr(ccfg, "model_name", type(scorer).__name__),
            "pretrained": getattr(ccfg, "pretrained", None),
            "weights": weights_fingerprint(getattr(scorer, "model", scorer)), "clipscore_w": W}


def pipeline_fingerprint(pipe) -> str:
    """The identity of a text-to-image pipeline's weights (UNet or transformer, VAE, text encoder): the folders of
    images the workbench derives carry it, so another model's images land beside, never among, these."""
    return weights_fingerprint(*(getattr(pipe, n, None) for n in ("unet", "transformer", "vae", "text_encoder")))


class SynthesisEngine:
    """Synthesises one image per caption into ``cfg.out_dir``; ``scorer`` (a ClipBackbone) adds CLIPScores."""

    def __init__(self, pipe, cfg: SynthesisConfig, scorer=None):
        self.pipe, self.cfg, self.scorer = pipe, cfg, scorer
        self._layout_pipe = None                          # built on first use from the pipe's components
        self.out = repo_path(cfg.out_dir)
        # the weights are part of the settings: a retrained model under the same model_id makes new images
        self.weights = pipeline_fingerprint(pipe)
        self.settings_hash = stable_hash({**cfg.settings(), "weights": self.weights})
        self.scorer_info = scorer_identity(scorer, cfg)
        self.scorer_id = None if scorer is None else (f"{self.scorer_info['clip_profile']}/"
                                                      f"{self.scorer_info['model_name']}/{stable_hash(self.scorer_info)}")

    # ------------------------------------------------------------------ manifest
    def _shard_of(self, index: int) -> int:
        return index // self.cfg.shard_size

    def _read_shard(self, shard: int) -> dict:
        """Valid records of one shard, keyed by caption id (the last valid line wins; torn lines skipped)."""
        path = self.out / f"shard-{shard:05d}.jsonl"
        records = {}
        if not path.exists():
            return records
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue                                     # a line torn by a kill
            f = self.out / rec["file"]
            if rec.get("settings_hash") == self.settings_hash and f.is_file() and sha256_file(f) == rec["sha256"]:
                records[rec["caption_id"]] = rec
            else:
                records.pop(rec["caption_id"], None)
        return records

    def _check_settings(self) -> None:
        """Refuse other image settings; record the run's current scorer (images scored by another are re-scored)."""
        path = self.out / "settings.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("settings_hash") != self.settings_hash:
                raise ValueError(f"out_dir={str(self.out)!r} holds images made with other settings or model weights "
                                 f"({old.get('settings')}, weights {old.get('weights')}); use a new out_dir, the "
                                 f"same settings ({self.cfg.settings()}, weights {self.weights}), or delete the folder.")
            if self.scorer_info is not None and old.get("scorer") != self.scorer_info:
                atomic_write_json(path, {**old, "scorer": self.scorer_info})
        else:
            atomic_write_json(path, {"settings": self.cfg.settings(), "weights": self.weights,
                                     "settings_hash": self.settings_hash, "scorer": self.scorer_info})

    # ------------------------------------------------------------------ generation
    def generate(self, captions: list, seeds: list) -> np.ndarray:
        """uint8 [B, H, W, 3] images for ``captions`` with one CPU generator per caption."""
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs = {} if self.cfg.negative_prompt is None else {"negative_prompt": [self.cfg.negative_prompt] * len(captions)}
        kwargs.update(num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance, generator=gens,
                      output_type="np")
        s = self.cfg.layout_strength
        if s is not None:
            if self.cfg.height != self.cfg.width:
                raise ValueError(f"layout-guided synthesis draws square sketches; height={self.cfg.height} and "
                                 f"width={self.cfg.width} must be equal.")
            if self._layout_pipe is None:
                from ..backbones.layout_pipeline import LayoutSketchPipeline
                self._layout_pipe = LayoutSketchPipeline(**self.pipe.components, requires_safety_checker=False)
                self._layout_pipe.set_progress_bar_config(disable=True)
            out = self._layout_pipe(list(captions), strength=s, sketch_seeds=seeds, size=self.cfg.height, **kwargs)
        else:
            out = self.pipe(list(captions), height=self.cfg.height, width=self.cfg.width, **kwargs)
        return (np.clip(out.images, 0, 1) * 255).round().astype(np.uint8)

    def clip_scores(self, images: np.ndarray, captions: list) -> np.ndarray:
        """Cosine between CLIP image and caption embeddings, [B]."""
        from ..backbones.zeroshot import pair_cosines
        return pair_cosines(self.scorer, images, captions)

    def _write(self, index: int, caption_id: str, caption: str, seed: int, image: np.ndarray, cos) -> dict:
        rel = f"shard-{self._shard_of(index):05d}/{index:09d}.png"
        atomic_write(self.out / rel, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
        rec = {"caption_id": caption_id, "index": index, "caption": caption, "seed": seed,
               "model_id": self.cfg.model_id, "settings_hash": self.settings_hash, "file": rel,
               "sha256": sha256_file(self.out / rel)}
        return self._append(index, self._scored(rec, cos))

    def _scored(self, rec: dict, cos) -> dict:
        """``rec`` with this run's CLIP cosine, CLIPScore (the CXE weight) and scorer id (unchanged without a score)."""
        if cos is None:
            return rec
        return {**rec, "clip_cos": float(cos), "clip_score": clipscore(float(cos)),
                "scorer": self.scorer_id}

    def _append(self, index: int, rec: dict) -> dict:
        with open(self.out / f"shard-{self._shard_of(index):05d}.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return rec

    def _rescore(self, done: dict, ids: list, indices: list, progress: bool) -> None:
        """Re-score recorded images whose score is not this scorer's (appends their updated records)."""
        from tqdm.auto import tqdm
        was = sorted({str(done[ids[i]].get("scorer")) for i in indices})
        print(f"re-scoring {len(indices)} recorded images with {self.scorer_id} (scored before by {was[:3]})")
        for b in tqdm(range(0, len(indices), self.cfg.batch_size), desc="re-score", disable=not progress):
            batch = indices[b:b + self.cfg.batch_size]
            recs = [done[ids[i]] for i in batch]
            cos = self.clip_scores(load_images(self.out, recs), [r["caption"] for r in recs])
            for i, r, c in zip(batch, recs, cos):
                done[ids[i]] = self._append(i, self._scored(r, c))

    def run(self, captions: list, caption_ids: Optional[list] = None, progress: bool = True,
            process_index: Optional[int] = None, num_processes: Optional[int] = None) -> list:
        """Make sure every caption has a valid image; returns the consolidated manifest records.

        Processes split the shards: by default the ``accelerate`` state decides (``accelerate launch``); after
        the barrier the main process writes the manifest and every process returns all the records (so the
        features, the training set and every cache key that follows are the same on every process).
        ``process_index``/``num_processes`` split by hand (e.g. one job per node): without a shared barrier, the
        process that finishes last consolidates the manifest; the others return their own records.
        """
        from tqdm.auto import tqdm
        ids = [str(i) for i in (caption_ids or range(len(captions)))]
        if len(ids) != len(captions) or len(set(ids)) != len(ids):
            raise ValueError(f"caption_ids must be unique and one per caption; got {len(ids)} ids "
                             f"({len(set(ids))} unique) for {len(captions)} captions.")
        state = ProcessState(process_index, num_processes)
        self.out.mkdir(parents=True, exist_ok=True)
        if state.is_main_process or state.manual:
            self._check_settings()
        state.wait_for_everyone()
        n_shards = (len(ids) + self.cfg.shard_size - 1) // self.cfg.shard_size
        mine = [s for s in range(n_shards) if s % state.num_processes == state.process_index]
        done = {}
        for s in mine:
            done.update(self._read_shard(s))
        current = dict(zip(ids, captions))          # an id whose caption changed (another world) is drawn again
        done = {k: r for k, r in done.items() if current.get(k, r.get("caption")) == r.get("caption")}
        todo = [i for i in range(len(ids)) if self._shard_of(i) in mine and ids[i] not in done]
        stale = [i for i in range(len(ids)) if self.scorer is not None and self._shard_of(i) in mine
                 and ids[i] in done and done[ids[i]].get("scorer") != self.scorer_id]
        if stale:
            self._rescore(done, ids, stale, progress)
        t0, made = time.time(), 0
        bar = tqdm(total=len(todo), desc=f"synthesise [{state.process_index}]", disable=not progress)
        for b in range(0, len(todo), self.cfg.batch_size):
            batch = todo[b:b + self.cfg.batch_size]
            seeds = [caption_seed(self.cfg.seed, ids[i]) for i in batch]
            caps = [captions[i] for i in batch]
            images = self.generate(caps, seeds)
            cos = self.clip_scores(images, caps) if self.scorer is not None else [None] * len(batch)
            for i, s, img, c in zip(batch, seeds, images, cos):
                done[ids[i]] = self._write(i, ids[i], captions[i], s, img, c)
            made += len(batch)
            bar.update(len(batch))
            bar.set_postfix(img_s=f"{made / (time.time() - t0):.2f}")
        bar.close()
        if todo:
            print(f"synthesised {made} images in {time.time() - t0:.1f} s ({made / (time.time() - t0):.2f} images/s); "
                  f"{len(ids) - len(todo)} were already done")
        state.wait_for_everyone()
        if state.manual:
            try:
                return self.consolidate(ids)
            except RuntimeError:
                print("other processes' shards are not finished yet; the last one to finish writes manifest.jsonl")
                return [done[ids[i]] for i in range(len(ids)) if self._shard_of(i) in mine]
        return self.consolidate(ids) if state.is_main_process else self.records(ids)

    def records(self, ids: list) -> list:
        """Every caption's record from the shard manifests, in caption order (nothing written)."""
        n_shards = (len(ids) + self.cfg.shard_size - 1) // self.cfg.shard_size
        recs = {}
        for s in range(n_shards):
            recs.update(self._read_shard(s))
        missing = [i for i in ids if i not in recs]
        if missing:
            raise RuntimeError(f"{len(missing)} captions have no valid image yet (e.g. {missing[:3]}); rerun.")
        return [recs[i] for i in ids]

    def consolidate(self, ids: list) -> list:
        """Merge the shard manifests into ``manifest.jsonl`` (one record per caption, in caption order)."""
        ordered = self.records(ids)
        atomic_write(self.out / "manifest.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in ordered)))
        return ordered


def read_manifest(out_dir: str | Path) -> list:
    """Records of a completed synthesis run (``manifest.jsonl``)."""
    path = repo_path(out_dir) / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the synthesis run in {out_dir} has not completed; rerun it.")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_images(out_dir: str | Path, records: list) -> np.ndarray:
    """uint8 [N, H, W, 3] images of manifest records."""
    root = repo_path(out_dir)
    return np.stack([np.asarray(Image.open(root / r["file"]).convert("RGB")) for r in records])


def sandbox_captions(split: str, n: int, per_scene: int = 5, world=None, n_objects: Optional[int] = None) -> tuple:
    """``(captions, caption_ids, scenes)`` for the first scenes of a sandbox split: ``per_scene`` of each
    scene's references (ids ``"<scene_id>#<k>"``), ``n`` captions in all; ``scenes[i]`` is caption i's scene.
    ``n_objects`` restricts to scenes with that many objects."""
    from ..config import Profile
    from ..sandbox import make_split, reference_captions
    if not 1 <= per_scene <= 5:
        raise ValueError(f"per_scene={per_scene} must be between 1 and 5 (a scene has 5 references).")
    scenes = make_split(world or Profile("sandbox").world, split, (n + per_scene - 1) // per_scene, n_objects)
    rows = [(c, f"{s.scene_id}#{k}", s) for s in scenes for k, c in enumerate(reference_captions(s)[:per_scene])][:n]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


CAPTIONS_HELP = ("caption corpus instead of sandbox captions: a .txt file (one caption per line), a JSON list of "
                 "strings or of {id, caption}, COCO-format annotations, a Karpathy list, or a Karpathy "
                 "dataset_coco.json / dataset_flickr30k.json (see --splits)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Synthesise one image per caption (resumable, sharded).")
    ap.add_argument("--preset", default=None, help="the profile (default: WORKBENCH_PROFILE, else sandbox)")
    ap.add_argument("--model", default=None, help="override model_id (a local folder or a hub id)")
    ap.add_argument("--out", default=None, help="override out_dir")
    ap.add_argument("--split", default="train", help="sandbox split whose captions to synthesise")
    ap.add_argument("--n", type=int, default=1000, help="number of sandbox captions")
    ap.add_argument("--captions", default=None, help=CAPTIONS_HELP)
    ap.add_argument("--splits", nargs="+", default=None,
                    help="Karpathy splits of --captions (train restval val test); dataset_*.json default: train restval")
    ap.add_argument("--clip-profile", default=None,
                    help="override the preset's clip_profile: the ClipConfig preset whose CLIP scores the pairs")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--no-clipscore", action="store_true")
    ap.add_argument("--process-index", type=int, default=None, help="split by hand: this job's index ...")
    ap.add_argument("--num-processes", type=int, default=None, help="... out of this many jobs")
    args = ap.parse_args(argv)
    over = {k: v for k, v in (("model_id", args.model), ("out_dir", args.out), ("steps", args.steps),
                              ("batch_size", args.batch_size), ("clip_profile", args.clip_profile)) if v is not None}
    cfg = replace(resolve(args.preset).synthesis, **over)
    if args.captions:
        from ..corpora.readers import load_caption_corpus
        captions, ids = load_caption_corpus(args.captions, args.splits)
    else:
        captions, ids, _ = sandbox_captions(args.split, args.n)
    scorer = None
    if not args.no_clipscore:
        from ..backbones.clip import load_clip
        scorer = load_clip(Profile(cfg.clip_profile).clip)
    engine = SynthesisEngine(load_pipeline(cfg), cfg, scorer)
    recs = engine.run(captions, ids, process_index=args.process_index, num_processes=args.num_processes)
    print(f"manifest: {engine.out / 'manifest.jsonl'} ({len(recs)} records"
          + (f", scored by {engine.scorer_id})" if scorer is not None else ")"))


if __name__ == "__main__":
    main()

