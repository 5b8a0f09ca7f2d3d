"""Benchmark: synthesis engine vs a bare pipeline call, and batched vs batch-1 (run by hand).

    .venv/bin/python benchmarks/bench_synthesis.py [--n 64] [--batch 32] [--preset sandbox]

The engine adds per-caption generators, atomic PNG writes, checksums and manifest lines; the target is
engine/bare throughput >= 0.9. Prints images/s and ratios measured in one run.
"""
import argparse
import shutil
import tempfile
import time

import torch

from workbench.config import SynthesisConfig
from workbench.synthesis.engine import SynthesisEngine, load_pipeline, sandbox_captions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--preset", default="sandbox")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    cfg = SynthesisConfig.preset(args.preset, batch_size=args.batch, out_dir=tmp)
    pipe = load_pipeline(cfg)
    captions, ids, _ = sandbox_captions("train", args.n)
    kw = dict(num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, height=cfg.height, width=cfg.width,
              output_type="np")
    pipe(captions[:2], **kw)                                                   # warm-up

    t0 = time.perf_counter()
    for i in range(0, args.n, args.batch):
        pipe(captions[i:i + args.batch], generator=torch.Generator().manual_seed(i), **kw)
    bare = args.n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    SynthesisEngine(pipe, cfg).run(captions, ids, progress=False)
    engine = args.n / (time.perf_counter() - t0)

    m = min(args.n, 16)
    t0 = time.perf_counter()
    for i in range(m):
        pipe(captions[i:i + 1], generator=torch.Generator().manual_seed(i), **kw)
    single = m / (time.perf_counter() - t0)
    shutil.rmtree(tmp)
    print(f"preset {args.preset}: {cfg.steps} steps, {cfg.height}px, batch {args.batch}, device {pipe.device}")
    print(f"bare pipeline {bare:.2f} img/s | engine {engine:.2f} img/s | engine/bare = {engine / bare:.2f}")
    print(f"batch-1 {single:.2f} img/s | batched/batch-1 = {bare / single:.1f}x")


if __name__ == "__main__":
    main()
