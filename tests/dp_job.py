"""A tiny deterministic captioner training job for test_data_parallel.py, run alone or under a launcher:

    python tests/dp_job.py <out_dir> <batch_size> <epochs> [stop_after]
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dp_job.py <out_dir> ...

Dropout and the global-feature noise are off, so a run depends only on which items each step sees. With
``stop_after`` the job trains that many steps, then rebuilds the model and resumes from ``last.pt`` on disk.
Each process writes ``<out_dir>/rank<r>.json`` (the item indices of every batch it trained on, the checkpoint
files it wrote, its history) and ``<out_dir>/weights<r>.pt`` (its final weights); the run is ``<out_dir>/runs/job``.
"""
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import workbench.utils.checkpoint
import workbench.training
from workbench.model.captioner import Captioner
from workbench.config import TrainConfig
from workbench.training import CaptionSet, train_captioner

from train_job import build


@dataclass
class LoggedSet(CaptionSet):
    """A CaptionSet that records the item indices of every batch it serves."""
    seen: list = field(default_factory=list)

    def batch(self, idx, vocab, use_patches: bool) -> dict:
        self.seen.append([int(i) for i in idx])
        return super().batch(idx, vocab, use_patches)


def deterministic_model(model, vocab):
    """The train_job model rebuilt with dropout 0 and noise_variance 0 (same seed, same concept bank)."""
    torch.manual_seed(0)
    cfg = replace(model.cfg, dropout=0.0, noise_variance=0.0)
    return Captioner(cfg, len(vocab), 16, 12, 16, model.pcm_cfg, model.bank.clone())


def log_writes(run_dir: Path, writes: list) -> None:
    """Record every atomic write of the training module and the checkpoint (path relative to the run folder)."""
    def logged(fn):
        def wrapper(path, *args, **kwargs):
            writes.append(str(Path(path).relative_to(run_dir)))
            return fn(path, *args, **kwargs)
        return wrapper
    workbench.training.atomic_write = logged(workbench.training.atomic_write)
    workbench.training.atomic_write_json = logged(workbench.training.atomic_write_json)
    workbench.utils.checkpoint.atomic_write = logged(workbench.utils.checkpoint.atomic_write)


if __name__ == "__main__":
    out, batch_size, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    stop_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
    rank = int(os.environ.get("RANK", 0))
    writes = []
    log_writes(out / "runs" / "job", writes)
    model, vocab, train, val = build()
    train = LoggedSet(train.store, train.rows, train.captions, train.cos)
    cfg = replace(TrainConfig.preset("tiny"), epochs=epochs, batch_size=batch_size, checkpoint_every=2,
                  run_dir=str(out / "runs"))
    model = deterministic_model(model, vocab)
    if stop_after is not None:
        part = train_captioner(model, vocab, train, val, cfg, "job", progress=False, stop_after=stop_after)
        assert len(part["loss"]) == stop_after, part
        model = deterministic_model(*build()[:2])          # fresh weights: the rest must come from last.pt
    hist = train_captioner(model, vocab, train, val, cfg, "job", progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps({"seen": train.seen, "writes": writes, "history": hist,
                                                       "world": int(os.environ.get("WORLD_SIZE", 1))}))
    torch.save(model.state_dict(), out / f"weights{rank}.pt")
