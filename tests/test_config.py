"""Configs, presets, the smoke and profile switches."""
import pytest

from workbench import config as C


def test_every_stage_has_its_presets():
    for cls in (C.WorldConfig, C.ClipConfig, C.GapConfig):
        for name in C.PRESETS:
            assert isinstance(cls.preset(name), cls)
    assert C.PretrainConfig.preset("tiny").steps < C.PretrainConfig.preset("sandbox").steps


def test_preset_overrides_and_errors():
    assert C.GapConfig.preset("sandbox", n_pairs=77).n_pairs == 77
    with pytest.raises(TypeError, match="unknown overrides.*n_pair"):
        C.GapConfig.preset("sandbox", n_pair=77)
    with pytest.raises(ValueError, match="'paper_b16' is not one of"):
        C.ClipConfig.preset("paper_b16")
    with pytest.raises(ValueError, match=r"n_pairs=2 is outside the allowed range \[8, inf\]"):
        C.GapConfig(n_pairs=2)
    with pytest.raises(ValueError, match="precision='fp8'"):
        C.ClipConfig(precision="fp8")


def test_smoke_switch(monkeypatch):
    monkeypatch.delenv("WORKBENCH_SMOKE", raising=False)
    assert not C.smoke() and C.scaled(100, 5) == 100
    monkeypatch.setenv("WORKBENCH_SMOKE", "1")
    assert C.smoke() and C.scaled(100, 5) == 5


def test_scale_switch(monkeypatch):
    monkeypatch.delenv("WORKBENCH_SMOKE", raising=False)
    monkeypatch.setenv("WORKBENCH_SCALE", "quick")
    assert C.scale() == "quick" and C.scaled(100, 5, 20) == 20 and C.scaled(100, 5) == 100
    quick = C.AblationConfig.preset("sandbox")
    assert (quick.n_train, quick.seeds, quick.out_dir) == (1000, (0,), "runs/ablation/sandbox-quick")
    t = C.TrainConfig.preset("sandbox")
    steps = t.epochs * quick.n_train // t.batch_size
    assert t.warmup_steps / steps == pytest.approx(300 / (24 * 4000 // 64), abs=0.01)   # a fifth of the run, as full
    assert "1,000 training captions" in C.scale_note()
    monkeypatch.setenv("WORKBENCH_SMOKE", "1")                      # the smoke switch wins
    assert C.scale() == "smoke" and C.scaled(100, 5, 20) == 5
    monkeypatch.delenv("WORKBENCH_SMOKE")
    monkeypatch.setenv("WORKBENCH_SCALE", "fast")
    with pytest.raises(ValueError, match="WORKBENCH_SCALE='fast'"):
        C.scale()
    monkeypatch.delenv("WORKBENCH_SCALE")
    assert C.scale() == "full" and C.AblationConfig.preset("sandbox").n_train == 4000


def test_main_job_plan_reads_the_measured_times(monkeypatch, tmp_path):
    from workbench.experiments import notebooks
    monkeypatch.setattr(notebooks, "runs_dir", lambda: tmp_path)
    paths = notebooks.notebook_paths(["01", "02"])
    assert "not measured yet" in notebooks.plan(paths, "full")
    assert "about 21 s" in notebooks.plan(paths, "quick")                     # the README's measured times
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "timings-quick.json").write_text('{"01_modality_gap.ipynb": 50, "02_synthesis.ipynb": 240}')
    text = notebooks.plan(paths, "quick")                                     # this machine's last run wins
    assert "about 50 s" in text and "about 4 min" in text and "total" in text and "about 5 min" in text
    with pytest.raises(ValueError, match="scale='huge'"):
        notebooks.run(["01"], "huge")


def test_profile_switch(monkeypatch):
    monkeypatch.delenv("WORKBENCH_PROFILE", raising=False)
    assert C.profile() == "sandbox"
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper_l14")
    assert C.profile() == "paper_l14"
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper")
    with pytest.raises(ValueError, match="WORKBENCH_PROFILE='paper'"):
        C.profile()


def test_the_profile_is_resolved_in_one_place(monkeypatch):
    monkeypatch.delenv("WORKBENCH_PROFILE", raising=False)
    assert C.resolve().name == "sandbox"
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper_l14")
    assert C.resolve().name == "paper_l14" and C.resolve("tiny").name == "tiny"     # a command's flag wins
    from workbench.experiments import study
    assert study.open(clip=object()).stages.name == "paper_l14"                   # the notebooks' door reads it
    with pytest.raises(ValueError, match="profile='paper_b16' is not one of"):
        C.Profile("paper_b16")


def test_a_profile_gives_every_stage_its_preset_and_its_overrides():
    from dataclasses import replace
    from workbench.config.stages import STAGES, stage_class
    P = C.Profile("sandbox", (("train.epochs", 3), ("pcm.k", 5)))
    for name in STAGES:
        cls = stage_class(name)
        if "sandbox" in cls.presets():
            want = cls.preset("sandbox")
            if name in ("train", "pcm"):
                want = replace(want, **({"epochs": 3} if name == "train" else {"k": 5}))
            assert P.stage(name) == want, name
    assert P.train.epochs == 3 and P.pcm.k == 5 and C.Profile("sandbox").train.epochs != 3
    assert C.Profile("paper_l14").clip.model_name == "ViT-L-14" and C.Profile("paper_b32").pipeline.profile == "paper_b32"
    with pytest.raises(ValueError, match="has no field 'kk'"):
        C.Profile("sandbox", (("pcm.kk", 3),))


def test_the_runners_read_their_stages_off_one_profile():
    abl = C.AblationConfig.preset("tiny")
    assert abl.profile == "tiny" and abl.stages.captioner == C.CaptionerConfig.preset("tiny")
    assert C.AblationConfig(profile="paper_b32", overrides=(("captioner.width", 64),)).stages.captioner.width == 64
    with pytest.raises(ValueError, match="profile='sandbox2' is not one of"):
        C.AblationConfig(profile="sandbox2")
    cfg = C.PipelineConfig.preset("paper_b32", overrides=(("train.epochs", 2),))
    assert cfg.stages.train.epochs == 2 and cfg.stages.name == "paper_b32"
    old = {**cfg.to_dict()}
    old["stages"] = old.pop("profile")                     # a run state written before the field was renamed
    assert C.PipelineConfig.from_dict(old) == cfg


def test_stage_presets_are_not_resolved_again_outside_the_config_package():
    """The issue's bar: profile names are resolved in ``config/`` (``Profile``), not by ``X.preset(...)`` calls
    spread over the package; the frozen LM's size (``PrefixLMConfig``) is a method option, not a stage."""
    import re
    from pathlib import Path
    root = Path(C.__file__).parents[1]
    calls = [f"{p.relative_to(root)}: {line.strip()}" for p in root.rglob("*.py")
             if "config" not in p.relative_to(root).parts
             for line in p.read_text().splitlines()
             if re.search(r"\b(?!PrefixLMConfig)\w+Config\.preset\(", line) and "raise" not in line
             and "f\"  " not in line]
    assert calls == [], calls
