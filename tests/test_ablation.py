"""Run identities: a saved ablation row or training checkpoint is reused only for the same data and configs."""
import sys
from dataclasses import replace
from pathlib import Path

import torch

from workbench.ablation import row_key
from workbench.config import AblationConfig, CaptionerConfig, PCMConfig, TrainConfig
from workbench.training import CaptionSet, train_captioner

sys.path.insert(0, str(Path(__file__).parent))
from train_job import build  # noqa: E402


def test_caption_set_identity_follows_the_pairs():
    _, _, train, _ = build()
    same = CaptionSet(train.store, list(train.rows), list(train.captions), train.cos.clone())
    assert same.identity() == train.identity()
    assert replace(train, captions=["x"] + train.captions[1:]).identity() != train.identity()
    assert replace(train, cos=train.cos + 0.01).identity() != train.identity()      # other synthetic images


def test_row_key_changes_with_the_data():
    cfg = AblationConfig.preset("tiny")
    args = (cfg, TrainConfig.preset("tiny"), CaptionerConfig.preset("tiny"), PCMConfig.preset("tiny"), "pcm-net")
    assert row_key(*args, "data-a") == row_key(*args, "data-a") != row_key(*args, "data-b")


def test_training_never_resumes_a_run_on_other_data(tmp_path, capsys):
    model, vocab, train, val = build()
    cfg = replace(TrainConfig.preset("tiny"), epochs=1, batch_size=4, checkpoint_every=2, run_dir=str(tmp_path))
    part = train_captioner(model, vocab, train, val, cfg, "job", progress=False, stop_after=4)
    assert len(part["loss"]) == 4
    other = replace(train, cos=torch.rand(len(train.captions), generator=torch.Generator().manual_seed(9)))
    model, *_ = build()
    hist = train_captioner(model, vocab, other, val, cfg, "job", progress=False, stop_after=2)
    assert len(hist["loss"]) == 2 and "another run" in capsys.readouterr().out
    model, *_ = build()
    hist = train_captioner(model, vocab, other, val, cfg, "job", progress=False, stop_after=1)
    assert len(hist["loss"]) == 3                                     # same data again: resumed at step 2
