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


def test_profile_switch(monkeypatch):
    monkeypatch.delenv("WORKBENCH_PROFILE", raising=False)
    assert C.profile() == "sandbox"
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper_l14")
    assert C.profile() == "paper_l14"
    monkeypatch.setenv("WORKBENCH_PROFILE", "paper")
    with pytest.raises(ValueError, match="WORKBENCH_PROFILE='paper'"):
        C.profile()
