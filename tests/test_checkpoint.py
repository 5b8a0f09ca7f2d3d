"""The shared checkpoint of the resumable loops, and the diffusion stage loop's resume."""
from dataclasses import replace

import pytest
import torch

from workbench.utils.checkpoint import Checkpoint
from workbench.config import DiffusionConfig


def test_checkpoint_round_trip_and_refuses_another_run(tmp_path, capsys):
    ck = Checkpoint(tmp_path / "run" / "last.pt", "key-a")
    assert ck.load() is None
    ck.save(step=3, losses=[1.0, 0.5])
    assert ck.load() == {"step": 3, "losses": [1.0, 0.5], "key": "key-a"}
    assert ck.load(fresh=True) is None
    assert Checkpoint(ck.path, "key-b").load() is None
    assert "another run" in capsys.readouterr().out
    torch.save({"step": 7, "config_hash": "old"}, tmp_path / "old.pt")      # checkpoints written before the key rename
    assert Checkpoint(tmp_path / "old.pt", "old").load()["step"] == 7
    assert not list((tmp_path / "run").glob("*.tmp*"))                     # atomic: no temp file left behind


class _Killed(Exception):
    pass


def _run(cfg, run_dir, kill_at=None):
    from workbench.backbones.sandbox_sd import _adamw, _checkpointed_loop
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = _adamw(model.parameters(), 0.1)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    calls = []

    def step_fn(step):
        calls.append(step)
        if step == kill_at:
            raise _Killed()
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, 32, (8,), generator=g)
        return (model(x[idx]) - x[idx].sum(1, keepdim=True)).pow(2).mean()
    return _checkpointed_loop("toy", cfg, cfg.unet_steps, run_dir, [model], opt, step_fn, progress=False), model, calls


def test_diffusion_stage_loop_resumes_on_the_same_trajectory(tmp_path):
    cfg = replace(DiffusionConfig.preset("tiny"), unet_steps=8, checkpoint_every=2, warmup_steps=2)
    whole, m1, _ = _run(cfg, tmp_path / "a")
    with pytest.raises(_Killed):
        _run(cfg, tmp_path / "b", kill_at=5)                               # dies after the step-4 checkpoint
    resumed, m2, calls = _run(cfg, tmp_path / "b")
    assert calls == [4, 5, 6, 7]                                           # picked up at the last checkpoint
    assert resumed == pytest.approx(whole, abs=1e-7) and len(resumed) == 8
    assert torch.allclose(m1.weight, m2.weight)
