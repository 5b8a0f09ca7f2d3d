"""Benchmark: batched beam search vs a per-image loop, and training samples/s on cached features (by hand).

    .venv/bin/python benchmarks/bench_captioner.py [--batch 64] [--beam 3] [--preset sandbox]

Uses a randomly initialised captioner of the preset's size on random features of the sandbox CLIP's
shapes (64 patches, width 96, D 128): throughput does not depend on the weights, and decoding always runs
to the maximum length when EOS is never the best token, the slowest case for both paths.
"""
import argparse
import time

import torch

from workbench.model.captioner import Captioner
from workbench.config import CaptionerConfig, PCMConfig
from workbench.model.decoding import beam_search
from workbench.model.losses import caption_loss
from workbench.model.vocab import Vocabulary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--preset", default="sandbox")
    ap.add_argument("--train-steps", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    words = [f"w{i}" for i in range(400)]
    vocab = Vocabulary(words, 20)
    cfg = CaptionerConfig.preset(args.preset)
    model = Captioner(cfg, len(vocab), 128, 96, 64, PCMConfig.preset("sandbox"), torch.randn(20, 128)).eval()
    g, t, p = torch.randn(args.batch, 128), torch.randn(args.batch, 64, 96), torch.randn(args.batch, 64, 128)
    with torch.no_grad():
        mem, pad = model.encode(g, t, p, mode="inference")
        beam_search(model, mem[:2], pad[:2], vocab, 20, args.beam)                 # warm-up
        t0 = time.perf_counter()
        batched = beam_search(model, mem, pad, vocab, 20, args.beam)
        tb = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(args.batch):
            beam_search(model, mem[i:i + 1], pad[i:i + 1], vocab, 20, args.beam)
        tl = time.perf_counter() - t0
    print(f"preset {args.preset}, torch threads {torch.get_num_threads()}, beam {args.beam}, "
          f"{batched.shape[1]} decoding steps")
    print(f"beam search on {args.batch} images: batched {tb:.2f} s ({args.batch / tb:.0f} img/s), per-image loop "
          f"{tl:.2f} s ({args.batch / tl:.1f} img/s); batched is {tl / tb:.1f}x faster")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ids = torch.randint(4, len(vocab), (args.batch, 22))
    ids[:, 0] = vocab.bos
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        loss = caption_loss(model(ids[:, :-1], g, t, p, mode="train"), ids[:, 1:], vocab.pad)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    print(f"training on cached features: {args.train_steps * args.batch / dt:.0f} samples/s "
          f"(batch {args.batch}, PCM mix-up on)")


if __name__ == "__main__":
    main()
