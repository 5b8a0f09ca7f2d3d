"""Annotator agreement: one held-out reference scored against the others."""
import pytest

from workbench.evaluation import annotator_agreement


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
