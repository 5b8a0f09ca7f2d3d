"""Modality-gap measurements on features with a known, planted gap."""
import math

import torch
import torch.nn.functional as F

from workbench.backbones import gap


def _planted(n=200, d=32, shift=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g)
    offset = torch.zeros(d)
    offset[0] = shift * base.norm(dim=1).mean()
    img = F.normalize(base + offset + 0.3 * torch.randn(n, d, generator=g), dim=-1)
    txt = F.normalize(base - offset + 0.3 * torch.randn(n, d, generator=g), dim=-1)
    return img, txt


def test_cosine_distributions_sizes_and_order():
    img, txt = _planted()
    d = gap.cosine_distributions(img, txt)
    assert d["paired"].shape == (200,) and d["unpaired"].shape == (200 * 199,)
    assert d["paired_mean"] > d["unpaired_mean"]


def test_gap_measures_on_planted_gap():
    img, txt = _planted()
    cg = gap.centroid_gap(img, txt)
    assert cg["centroid_distance"] > 0.5
    assert cg["gap"][0] > 0.5                                   # the planted direction
    assert gap.linear_separability(img, txt)["accuracy"] > 0.95
    same, _ = _planted(shift=0.0)
    assert gap.centroid_gap(same, same)["centroid_distance"] == 0.0
    assert gap.linear_separability(same, same)["accuracy"] < 0.7


def test_mean_shift_closes_the_centroid_gap():
    img, txt = _planted()
    s = gap.mean_shift(img, txt)
    assert s["paired_after"] > s["paired_before"]
    assert s["centroid_distance_after"] < 0.05 * gap.centroid_gap(img, txt)["centroid_distance"]


def test_difference_gaussian_recovers_sigma():
    g = torch.Generator().manual_seed(1)
    txt = torch.randn(500, 64, generator=g)
    img = txt + 0.05 * torch.randn(500, 64, generator=g)
    fit = gap.difference_gaussian(img, txt)
    assert abs(fit["sigma"] - 0.05) < 0.002
    assert math.isclose(fit["capdec_sigma"], math.sqrt(0.016))


def test_subregion_features_and_analysis():
    n, g, d = 4, 4, 8
    patches = F.normalize(torch.randn(n, g * g, d), dim=-1)
    regions = gap.subregion_features(patches, g, windows=(2, 4))
    assert regions.shape == (n, 9 + 1, d)
    whole = F.normalize(patches.mean(1), dim=-1)
    assert torch.allclose(regions[:, -1], whole, atol=1e-6)     # the 4x4 window is the whole grid
    # captions equal to a region: that region beats the global feature
    img = F.normalize(torch.randn(n, d), dim=-1)
    res = gap.subregion_analysis(img, patches, regions[:, 0], g, windows=(2, 4), top=2)
    assert res["share_subregion_closer"] == 1.0
    assert res["n_regions"] == 10


def test_shape_mismatch_is_reported():
    import pytest
    with pytest.raises(ValueError, match="same shape"):
        gap.cosine_distributions(torch.zeros(3, 4), torch.zeros(2, 4))


def test_own_caption_wins_is_the_retrieval_auc():
    import pytest
    from workbench.backbones.gap import cosine_distributions, own_caption_wins
    img = torch.eye(3)
    txt = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.9, 0.0, 0.1]])     # caption 2 sits closer to image 0
    d = cosine_distributions(img, txt)
    # image 0: own 1.0 vs 0, 0.9 -> 2/2; image 1: own 1 vs 0, 0 -> 2/2; image 2: own 0.1 vs 0, 0 -> 2/2
    assert own_caption_wins(d) == 1.0
    d2 = cosine_distributions(img, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))   # 0 and 1 swapped
    # image 0: own 0 vs 1, 0 -> 0/2 wins (ties lose); image 1 likewise; image 2: 2/2 -> 2/6
    assert abs(own_caption_wins(d2) - 2 / 6) < 1e-9
    with pytest.raises(ValueError, match="at least 2"):
        own_caption_wins(cosine_distributions(img[:1], txt[:1]))
