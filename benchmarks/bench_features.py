"""Benchmark: reading a batch of cached CLIP features vs encoding the images again (run by hand).

    .venv/bin/python benchmarks/bench_features.py [--n 2048] [--batch 256] [--model sandbox|paper_b32]

Builds a feature cache of ``n`` sandbox val renders (in a temp folder), then times random batches read
from the memory-mapped cache against encoding the same images, and prints the ratio from one run.
``--model paper_b32`` uses an untrained ViT-B/32 of the real size (224 px, 7x7 patches), as a paper-scale
stand-in that needs no download.
"""
import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from workbench.backbones.clip import load_clip
from workbench.config import ClipConfig, FeatureConfig, WorldConfig
from workbench.sandbox.splits import load_sandbox_split
from workbench.features.cache import extract_image_features


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="sandbox", choices=["sandbox", "paper_b32"])
    args = ap.parse_args()
    clip_cfg = ClipConfig.preset("sandbox") if args.model == "sandbox" else ClipConfig(model_name="ViT-B-32", pretrained=None)
    clip = load_clip(clip_cfg)
    images = load_sandbox_split(WorldConfig.preset("sandbox"), "val", n=min(args.n, 1000)).images
    images = np.concatenate([images] * int(np.ceil(args.n / len(images))))[:args.n]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(FeatureConfig.preset("sandbox"), root=tmp, shard_size=1024)
        t0 = time.perf_counter()
        store = extract_image_features(clip, images, [str(i) for i in range(args.n)], "bench", cfg, progress=False)
        build = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        batches = [np.sort(rng.choice(args.n, args.batch, replace=False)) for _ in range(args.repeats)]
        store.get(batches[0])                                          # warm the page cache once
        t0 = time.perf_counter()
        for b in batches:
            store.get(b)
        read = (time.perf_counter() - t0) / args.repeats
        clip.image_features(images[:8])                                # warm-up
        t0 = time.perf_counter()
        for b in batches:
            clip.image_features(images[b], batch_size=args.batch)
        encode = (time.perf_counter() - t0) / args.repeats
    print(f"model {args.model}, device {clip.device}, torch threads {torch.get_num_threads()}, cache of {args.n} "
          f"images built in {build:.1f} s")
    print(f"batch of {args.batch}: cached read {read * 1e3:.1f} ms, encode {encode * 1e3:.1f} ms; "
          f"cached is {encode / read:.0f}x faster")


if __name__ == "__main__":
    main()
