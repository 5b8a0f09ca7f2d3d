"""Run identities: a saved ablation row or training checkpoint is reused only for the same data and configs."""
import sys
from dataclasses import replace
from pathlib import Path

import torch

from workbench.experiments.runner import row_key
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


def test_row_key_covers_only_what_the_run_uses():
    """A val selection of the noise leaves CapDec's rows (its own noise) valid, moves PCM-Net's; CXE's w keys only
    rows with CXE on; PCM's config only rows with the mix-up."""
    from dataclasses import replace as rep

    from workbench import methods
    cfg, t, c, p = (AblationConfig.preset("tiny"), TrainConfig.preset("tiny"), CaptionerConfig.preset("tiny"),
                    PCMConfig.preset("tiny"))
    key = lambda name, **kw: row_key(cfg, methods.get(name).train_config(kw.get("t", t)), kw.get("c", c),  # noqa
                                     kw.get("p", p), methods.get(name), "d")
    noisier = rep(c, noise_variance=c.noise_variance * 2)
    assert key("capdec", c=noisier) == key("capdec") and key("base", c=noisier) != key("base")
    other_w = rep(t, cxe_w=t.cxe_w + 1)
    assert key("base", t=other_w) == key("base") and key("+cxe", t=other_w) != key("+cxe")
    other_m = rep(p, m=p.m + 1)
    assert key("+cxe", p=other_m) == key("+cxe") and key("pcm-net", p=other_m) != key("pcm-net")


def test_worker_processes_refuse_a_clip_they_would_not_load(tiny_exp, tiny_clip, sandbox_clip):
    """``--jobs`` workers load the config's CLIP from its weights: a random-weight CLIP (tiny) cannot be rebuilt
    in another process, and a CLIP other than the config's would score other features."""
    import pytest

    from workbench.experiments.runner import run_ablation
    with pytest.raises(ValueError, match="worker processes load the tiny profile's CLIP from its weights"):
        run_ablation(tiny_exp.cfg, tiny_clip, tiny_exp, progress=False, jobs=2)
    with pytest.raises(ValueError, match="worker processes load the tiny profile's CLIP"):
        run_ablation(tiny_exp.cfg, sandbox_clip, tiny_exp, progress=False, jobs=2)


def test_the_faithfulness_sweep_passes_jobs_to_each_points_runs(tiny_exp, monkeypatch):
    """``workbench ablation --sweep --jobs 2``: each point's runs go to the worker processes."""
    from workbench.experiments import calibrate, runner
    from workbench.synthesis import engine
    seen = []
    monkeypatch.setattr(engine, "load_pipeline", lambda cfg: "pipe")
    monkeypatch.setattr(calibrate, "sweep", lambda pipe, clip, base, world, strengths, split, n, progress=True: {
        s: {"synthetic": {"overall": s}, "real": {"overall": 1.0}} for s in strengths})
    monkeypatch.setattr(runner, "prepare_sandbox", lambda point, clip, pipe=None, progress=True: point)
    monkeypatch.setattr(runner, "run_ablation", lambda point, clip, data, progress=True, jobs=1: seen.append(
        (point.layout_strength, jobs)) or [{"model": m, "CIDEr": 0.5} for m in point.variants])
    cfg = replace(tiny_exp.cfg, sweep_strengths=(0.5, 1.0))
    res = runner.run_sweep(cfg, None, progress=False, jobs=2)
    assert seen == [(0.5, 2), (1.0, 2)] and {r["strength"] for r in res["rows"]} == {0.5, 1.0}


def test_block_summary_names_each_blocks_best_and_whether_it_leads_beyond_the_stds():
    from workbench.experiments.runner import block_summary
    row = lambda b, m, c, s, n=3: {"block": b, "method": m, "CIDEr": c, "CIDEr_std": s, "seeds": n}  # noqa: E731
    board = [row("text only", "capdec", 38.6, 0.3), row("text only", "decap", 44.5, 1.1),
             row("synthetic images", "base", 58.8, 6.1), row("synthetic images", "+cxe", 59.2, 5.3),
             row("reference", "oracle", 66.7, 10.8)]
    lines = block_summary(board).splitlines()
    assert len(lines) == 2 + 3 and lines[2].startswith("| text only | 2 | decap 44.5 ± 1.1 | capdec 38.6 ± 0.3 |")
    assert "+5.9 over capdec (beyond the stds)" in lines[2]
    assert "+0.4 over base (within the stds)" in lines[3] and "one method" in lines[4]
    one = block_summary([row("text only", "a", 2.0, float("nan"), 1), row("text only", "b", 1.0, float("nan"), 1)])
    assert "(one seed)" in one


def test_a_longer_budget_continues_a_shorter_run(tmp_path, capsys):
    """A learning curve at E + k epochs continues the finished E-epoch run of the same key beside it and ends as
    the uninterrupted E + k run does (same losses, val curve and best); another budget's run with other data or
    another seed is not taken."""
    def run(folder, epochs, seed=0):
        model, vocab, train, val = build()
        cfg = replace(TrainConfig.preset("tiny"), epochs=epochs, batch_size=4, checkpoint_every=2, seed=seed,
                      run_dir=str(folder))
        return train_captioner(model, vocab, train, val, cfg, "job[a=1]", progress=False), model   # a glob-like name
    short, _ = run(tmp_path / "runs-e2", 2)
    run(tmp_path / "runs-e1", 1, seed=5)                 # another seed: another run, never continued
    capsys.readouterr()
    longer, model = run(tmp_path / "runs-e3", 3)
    said = capsys.readouterr().out
    assert "continuing" in said and "runs-e2" in said, said
    fresh, fresh_model = run(tmp_path / "other" / "runs", 3)   # nothing beside it: trained from scratch
    assert len(short["loss"]) == 2 * len(longer["loss"]) // 3
    assert longer["loss"][:len(short["loss"])] == short["loss"]
    assert longer["loss"] == fresh["loss"] and longer["val_cider"] == fresh["val_cider"]
    for a, b in zip(model.state_dict().values(), fresh_model.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "runs-e2" / "job[a=1]" / "last.pt").exists()      # the shorter run is left as it was
    # a shorter budget never takes a longer run's checkpoint
    capsys.readouterr()
    run(tmp_path / "runs-e1b", 1)
    assert "continuing" not in capsys.readouterr().out


def test_workers_never_train_one_run_folder_twice_at_once():
    """MacCap's inference rows share ``maccap``'s trained model, CMSA's rows stage 1: while a worker trains it,
    the scheduler starts the next run with another model instead, and holds the sharing rows until it is free."""
    from workbench.experiments.runner import next_launch, train_key
    assert train_key("maccap-s4", 0) == train_key("maccap", 0) != train_key("maccap", 1)
    pending = [train_key(name, 0) for name in ("maccap-s4", "maccap-cls", "capdec")]
    assert next_launch(pending, [train_key("maccap", 0)]) == 2
    assert next_launch(pending, [train_key("maccap", 1)]) == 0
    assert next_launch(pending[:2], [train_key("maccap", 0)]) is None
    assert next_launch([], []) is None
    assert train_key("cmsa", 0) & train_key("cmsa-init", 0)                 # CMSA's rows share stage 1
    assert next_launch([train_key("cmsa-no-clip", 0), train_key("capdec", 0)], [train_key("cmsa-init", 0)]) == 1


def test_the_worker_pool_holds_a_shared_model_until_its_training_ends(monkeypatch, tmp_path):
    """``_run_workers`` with 2 workers on [maccap, maccap-s4, capdec]: capdec starts beside maccap, maccap-s4 only
    after maccap's worker has ended (fake worker processes: each ends on its second poll)."""
    import subprocess
    from workbench.experiments import runner
    events = []

    class Worker:
        def __init__(self, args, **kw):
            self.name, self.polls, self.returncode = Path(args[4]).stem, 0, None
            events.append(("start", self.name))

        def poll(self):
            self.polls += 1
            if self.polls >= 2 and self.returncode is None:
                self.returncode = 0
                events.append(("end", self.name))
            return self.returncode

    monkeypatch.setattr(runner, "_missing", lambda *a: [("maccap", 0), ("maccap-s4", 0), ("capdec", 0)])
    monkeypatch.setattr(subprocess, "Popen", Worker)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    cfg = replace(AblationConfig.preset("tiny"), out_dir=str(tmp_path))
    runner._run_workers(cfg, None, 2, None, None, progress=False)
    assert events[:2] == [("start", "maccap-s0"), ("start", "capdec-s0")]
    assert events.index(("start", "maccap-s4-s0")) > events.index(("end", "maccap-s0"))
    assert sorted(e for e in events if e[0] == "end") == [("end", "capdec-s0"), ("end", "maccap-s0"),
                                                           ("end", "maccap-s4-s0")]
