"""The val sweeps that re-select a paper's val-chosen settings on the sandbox."""
import pytest

from workbench import methods
from workbench.experiments import selection
from workbench.config import carryover as R


def test_sweeps_cover_the_carried_value_and_the_papers_budget():
    noise = selection.sweep_specs("noise")
    carried = R.noise_variance(R.sandbox_backbone())
    assert any(s["multiple"] == 1.0 and s["noise_variance"] == pytest.approx(carried) for _, s in noise)
    assert len(noise) == len(R.NOISE_MULTIPLES)
    fo = selection.sweep_specs("fo")
    assert fo[0][1] == {"fo_lr": 1e-5, "fo_epochs": 1}                       # the paper's lr is a point
    w = selection.sweep_specs("cxe_w")
    assert [s["cxe_w"] for _, s in w] == list(R.CXE_W_GRID)
    low = selection.lowest_carried_cosine(4000)
    assert 0.20 < low < 0.23                                                  # ~3.7 stds below 0.330
    for spec, s in w:                                                         # all-ones weights: +mixup's run
        assert (spec == "+mixup") == (s["cxe_w"] * low >= 1)
    for spec, setting in noise + fo + [x for x in w if x[0] != "+mixup"]:     # every spec builds its method
        m = methods.get(spec)
        for k, v in setting.items():
            if k != "multiple":
                assert getattr(m.config, k) == pytest.approx(v)
    with pytest.raises(ValueError, match="not one of"):
        selection.sweep_specs("lr")


def test_markdown_report():
    report = {"fo": {"choice": {"fo_lr": 0.01, "fo_epochs": 5},
                     "table": [{"fo_lr": 1e-5, "fo_epochs": 1, "spec": "a", "val_CIDEr": 1.6, "test_CIDEr": 1.5},
                               {"fo_lr": 0.01, "fo_epochs": 5, "spec": "b", "val_CIDEr": 1.7, "test_CIDEr": 1.5}]}}
    md = selection.markdown(report)
    assert "picked on val: fo_lr = 0.01, fo_epochs = 5" in md and "| 1e-05 | 1 | 160.0 | 150.0 |" in md
