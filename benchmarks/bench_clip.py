"""Benchmark: sandbox CLIP load time and batched vs per-image feature extraction (run by hand).

    .venv/bin/python benchmarks/bench_clip.py [--n 256]

Prints measured seconds and the batched/per-image throughput ratio from one run.
"""
import argparse
import time

import torch

from workbench.backbones.clip import load_clip
from workbench.config import ClipConfig, WorldConfig
from workbench.sandbox.splits import load_sandbox_split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    t0 = time.perf_counter()
    clip = load_clip(ClipConfig.preset("sandbox"))
    load_s = time.perf_counter() - t0
    images = load_sandbox_split(WorldConfig.preset("sandbox"), "val", n=args.n).images
    clip.image_features(images[:8])                                  # warm-up
    t0 = time.perf_counter()
    clip.image_features(images, batch_size=args.n)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(len(images)):
        clip.image_features(images[i:i + 1])
    single = time.perf_counter() - t0
    print(f"device {clip.device}, torch threads {torch.get_num_threads()}")
    print(f"load sandbox CLIP: {load_s:.2f} s")
    print(f"encode {args.n} images: batched {batched:.2f} s ({args.n / batched:.0f} img/s), "
          f"per-image {single:.2f} s ({args.n / single:.0f} img/s); ratio {single / batched:.1f}x")


if __name__ == "__main__":
    main()
