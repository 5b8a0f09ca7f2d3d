"""Contrastive pretraining on the tiny preset: it learns, checkpoints, and resumes on the same trajectory."""
from dataclasses import replace

import pytest
import torch

from workbench.config import PretrainConfig
from workbench.backbones.sandbox_clip import batch_indices, pretrain, write_weights


def test_batches_depend_only_on_seed_and_step():
    cfg = PretrainConfig.preset("tiny")
    a, b = batch_indices(cfg, 3, 64, 5), batch_indices(cfg, 3, 64, 5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(batch_indices(cfg, 4, 64, 5)[0], a[0])


def test_interrupted_run_resumes_identically(tmp_path):
    base = replace(PretrainConfig.preset("tiny"), run_dir=str(tmp_path / "a"), steps=6)
    whole = pretrain(base, fresh=True, progress=False)
    resumed_cfg = replace(base, run_dir=str(tmp_path / "b"))
    pretrain(resumed_cfg, fresh=True, progress=False, stop_after=4)     # interrupted after 4 steps
    resumed = pretrain(resumed_cfg, progress=False)                      # picks up at step 4
    assert len(resumed.losses) == 6
    assert resumed.losses == whole.losses
    for (k, v), (_, w) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(v, w), k


def test_a_stop_chosen_on_a_longer_schedule_is_that_schedules_run(tmp_path):
    """``steps`` < ``schedule_steps`` stops one cosine schedule early: the same trajectory as the whole schedule up to
    the stop, and the same run (a later stop resumes it). A checkpoint past the stop is refused, not truncated."""
    import pytest
    whole = pretrain(replace(PretrainConfig.preset("tiny"), run_dir=str(tmp_path / "a"), steps=6), fresh=True,
                     progress=False)
    early_cfg = replace(PretrainConfig.preset("tiny"), run_dir=str(tmp_path / "b"), steps=4, schedule_steps=6)
    early = pretrain(early_cfg, fresh=True, progress=False)
    assert early.losses == whole.losses[:4]
    later = pretrain(replace(early_cfg, steps=6), progress=False)          # resumes the early stop's checkpoint
    assert later.losses == whole.losses
    with pytest.raises(ValueError, match="past steps=4"):
        pretrain(early_cfg, progress=False)
    with pytest.raises(ValueError, match="schedule_steps"):
        PretrainConfig(steps=100, schedule_steps=50)


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, monkeypatch, other_captions):
    """The run is keyed on its data too: after the world's captions change, the same config starts afresh
    instead of resuming (or skipping, when finished) a run made on the old world."""
    import workbench.backbones.sandbox_clip as P
    cfg = replace(PretrainConfig.preset("tiny"), run_dir=str(tmp_path / "a"), steps=3)
    first = pretrain(cfg, fresh=True, progress=False)
    monkeypatch.setattr(P, "load_sandbox_split", other_captions(P.load_sandbox_split))
    again = pretrain(cfg, progress=False)                    # not fresh: only the data differs
    assert len(again.losses) == 3 and again.losses != first.losses


def test_loss_decreases_and_weights_are_written(tmp_path):
    cfg = replace(PretrainConfig.preset("tiny"), steps=30, warmup_steps=3, run_dir=str(tmp_path / "r"),
                  out_weights=str(tmp_path / "w.safetensors"))
    clip = pretrain(cfg, fresh=True, progress=False)
    assert sum(clip.losses[-5:]) < sum(clip.losses[:5])
    out = write_weights(clip, cfg, report={"note": "test"}, preset="tiny")
    import json
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["bytes"] == out.stat().st_size and len(manifest["sha256"]) == 64
    assert manifest["pretrain_config"]["steps"] == 30


def test_fixed_logit_scale_stays_fixed_and_the_gap_is_traced(tmp_path):
    cfg = replace(PretrainConfig.preset("tiny"), steps=4, logit_scale=100.0, monitor_every=2,
                  run_dir=str(tmp_path / "r"))
    clip = pretrain(cfg, fresh=True, progress=False, stop_after=2)
    assert float(clip.model.logit_scale.exp()) == pytest.approx(100.0) and not clip.model.logit_scale.requires_grad
    resumed = pretrain(cfg, progress=False)                                 # the trace survives a resume
    assert float(resumed.model.logit_scale.exp()) == pytest.approx(100.0)
    assert [t["step"] for t in resumed.trace] == [2, 4]
    assert {"paired_cos", "centroid_distance", "separability", "shape_acc"} <= set(resumed.trace[0])
