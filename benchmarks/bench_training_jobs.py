"""Benchmark: sandbox captioner training throughput, one process with every core vs one process per core
(what ``python -m workbench.experiments.runner --jobs 2`` does), measured in one run (by hand, on a quiet machine).

    .venv/bin/python benchmarks/bench_training_jobs.py [--steps 60] [--jobs 2]

Each worker trains a randomly initialised PCM-Net captioner of the sandbox preset on random features of the
sandbox CLIP's shapes (64 patches, width 96, D 128), batch 64, for ``--steps`` steps. (a) runs ``jobs`` such
trainings one after another with all cores each; (b) runs them at once with ``cores / jobs`` threads each. The
ratio (a) / (b) is the ablation's speed-up from ``--jobs``.
"""
import argparse
import os
import subprocess
import sys
import time

WORKER = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, PCMConfig
from workbench.model.losses import caption_loss
torch.manual_seed(0)
model = Captioner(CaptionerConfig.preset("sandbox"), 400, 128, 96, 64, PCMConfig.preset("sandbox"),
                  torch.randn(18, 128)).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
g, t, p = torch.randn(64, 128), torch.randn(64, 64, 96), torch.randn(64, 64, 128)
words = torch.randint(4, 400, (64, 14))
for _ in range(int(sys.argv[2])):
    logits = model(words[:, :-1], g, t, p, mode="train")
    loss = caption_loss(logits, words[:, 1:], 0, None, 0.1)
    opt.zero_grad(); loss.backward(); opt.step()
"""


def run(threads: int, steps: int, n: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(steps)], env=env) for _ in range(n)]
    for p in procs:
        p.wait()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    seq = sum(run(cores, args.steps, 1) for _ in range(args.jobs))
    par = run(max(1, cores // args.jobs), args.steps, args.jobs)
    print(f"{args.jobs} trainings of {args.steps} steps: one after another with {cores} threads {seq:.1f} s; "
          f"at once with {max(1, cores // args.jobs)} thread(s) each {par:.1f} s; speed-up {seq / par:.2f}x")


if __name__ == "__main__":
    main()
