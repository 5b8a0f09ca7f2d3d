"""A tiny SCST job (CMSA's stage 2) for test_data_parallel.py, run alone or under a launcher:

    python tests/rl_job.py <out_dir> <batch_size> <epochs>
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/rl_job.py <out_dir> ...

The train_job captioner (dropout off) on 48 random "unpaired images"; the reward is a fixed function of the
caption (its share of the word "red"), the fluency reward a discriminator on the train_job captions. Each process
writes ``<out_dir>/rank<r>.json`` (the image indices of every batch, a checksum of the weights before each step, the files it wrote, its history) and
``<out_dir>/weights<r>.pt`` (and the weights it started from, ``start<r>.pt``); the run is ``<out_dir>/runs/rl``.
"""
import json
import os
import sys
from pathlib import Path

import torch

import workbench.utils.checkpoint
import workbench.methods.rl
from workbench.methods.rl import RLConfig, train_scst

from dp_job import deterministic_model, log_writes
from train_job import build

if __name__ == "__main__":
    out, batch_size, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rank = int(os.environ.get("RANK", 0))
    writes = []
    log_writes(out / "runs" / "rl", writes)
    workbench.methods.rl.atomic_write = workbench.training.atomic_write          # the logged writers
    workbench.methods.rl.atomic_write_json = workbench.training.atomic_write_json
    model, vocab, train, val = build()
    model = deterministic_model(model, vocab)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / f"start{rank}.pt")
    arrays, seen, sums = train.store.arrays, [], []

    def inputs(idx):                      # called once a step, before the step: the batch and the weights then
        seen.append([int(i) for i in idx])
        sums.append(float(sum(p.detach().double().sum() for p in model.parameters())))
        idx = torch.as_tensor(idx)
        return arrays["global"][idx], arrays["tokens"][idx], arrays["patches"][idx], arrays["global"][idx]

    def reward(image, captions):
        return torch.tensor([c.split().count("red") / max(1, len(c.split())) for c in captions])

    corpus = vocab.encode_batch(train.captions)[:, 1:]
    cfg = RLConfig(epochs=epochs, batch_size=batch_size, samples=2, lr=1e-3, beam_size=1, disc_width=16,
                   disc_layers=1, run_dir=str(out / "runs"))
    hist = train_scst(model, vocab, inputs, 48, corpus, reward, val, cfg, "rl", "job", progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps({"seen": seen, "sums": sums, "writes": writes, "history": hist,
                                                       "world": int(os.environ.get("WORLD_SIZE", 1))}))
    torch.save(model.state_dict(), out / f"weights{rank}.pt")
