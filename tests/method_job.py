"""A registered non-PCM method (DeCap: the captioner on noise-free caption embeddings) trained through
``Method.fit`` on a tiny sandbox experiment, for test_data_parallel.py; alone or under a launcher:

    python tests/method_job.py <exp_dir> <out_dir> <batch_size> <epochs>
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/method_job.py <exp_dir> <out_dir> ...

The experiment is prepared under ``<exp_dir>`` (run the job once alone first: a launched job then finds every
cache complete and only reads). Dropout is off, so a run depends only on which items each step sees. Each
process writes ``<out_dir>/rank<r>.json`` (its history) and ``<out_dir>/weights<r>.pt`` (its final weights).
"""
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from workbench import methods
from workbench.backbones.clip import load_clip
from workbench.config import AblationConfig, CaptionerConfig, ClipConfig, DiffusionConfig, PCMConfig, TrainConfig
from workbench.backbones.sandbox_sd import build_untrained_pipeline
from workbench.experiments.experiment import prepare_sandbox

if __name__ == "__main__":
    exp_dir, out, batch_size, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rank = int(os.environ.get("RANK", 0))
    torch.manual_seed(0)
    clip = load_clip(ClipConfig.preset("tiny"), device="cpu")
    pipe = build_untrained_pipeline(DiffusionConfig.preset("tiny"), clip, exp_dir / "tok")
    cfg = replace(AblationConfig.preset("tiny"), n_train=24, n_val=4, n_test=4, n_test_unseen=2,
                  out_dir=str(exp_dir / "abl"))
    exp = prepare_sandbox(cfg, clip, pipe=pipe, progress=False)
    method = methods.get("decap", "tiny")
    model = method.build(exp, replace(CaptionerConfig.preset("tiny"), dropout=0.0), PCMConfig.preset("tiny"), 0)
    tcfg = replace(method.train_config(TrainConfig.preset("tiny")), epochs=epochs, batch_size=batch_size,
                   run_dir=str(out / "runs"))
    hist = method.fit(model, exp, tcfg, "decap-s0", progress=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"history": hist, "world": int(os.environ.get("WORLD_SIZE", 1))}))
    torch.save(model.state_dict(), out / f"weights{rank}.pt")
