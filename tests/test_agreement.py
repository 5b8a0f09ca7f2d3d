"""Annotator agreement: one held-out reference scored against the others."""
import pytest

from workbench.evaluation.metrics import annotator_agreement


def test_agreement_is_high_when_annotators_agree_and_low_when_they_do_not():
    same = {i: [f"a {c} dog runs on the grass"] * 5 for i, c in enumerate(("red", "big", "small", "brown", "black",
                                                                            "white", "young", "old"))}
    differ = {i: [f"word{5 * i + j} thing{5 * i + j} stuff{j}" for j in range(5)] for i in range(8)}
    high, low = annotator_agreement(same), annotator_agreement(differ)
    assert high["CIDEr"] > 1.0 > 0.1 > low["CIDEr"]
    assert high["references_per_image"] == 4.0 and high["n_images"] == 8
    assert annotator_agreement(same, n_images=3)["n_images"] == 3


def test_agreement_needs_several_references():
    with pytest.raises(ValueError, match="at least 2"):
        annotator_agreement({0: ["only one"]})


def test_one_seed_shows_no_spread_and_several_show_the_sample_std():
    from workbench.evaluation.metrics import aggregate, mean_std, results_markdown
    assert mean_std(12.34, 0.0, 1) == "12.3" and mean_std(12.34, 0.56, 3) == "12.3 ± 0.6"
    one = results_markdown(aggregate([{"model": "a", "seed": 0, "CIDEr": 0.5}]))
    two = results_markdown(aggregate([{"model": "a", "seed": 0, "CIDEr": 0.5}, {"model": "a", "seed": 1, "CIDEr": 0.7}]))
    assert "| a | 1 | 50.0 |" in one and "±" not in one
    assert "| a | 2 | 60.0 ± 14.1 |" in two
