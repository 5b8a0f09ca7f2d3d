"""Property tests of the patch-wise cross-modal mix-up (PCM) and a hand-computed example of Eq. 1-3."""
import math

import pytest
import torch

from workbench.model import pcm
from workbench.config import PCMConfig


def _batch(b=3, n=16, d=8, c=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, n, d, generator=g), torch.randn(c, d, generator=g)


def test_hand_computed_example():
    # D = 2; bank: c0 = (1, 0), c1 = (0, 1), c2 = (-1, 0); image global (1, 1); two patches.
    bank = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    glob = torch.tensor([[1.0, 1.0]])
    patches = torch.tensor([[[3.0, 0.0], [1.0, 1.0]]])
    cfg = PCMConfig(k=2, m=1, tau=0.5, concept_temperature=1.0, selection="patch")
    r = pcm.pcm(glob, patches, bank, cfg)
    # Eq. 1: cosines (0.7071, 0.7071, -0.7071) -> softmax; the two tied top concepts are c0, c1
    e = [math.exp(x) for x in (0.5 ** 0.5, 0.5 ** 0.5, -(0.5 ** 0.5))]
    assert sorted(r.concepts.index[0].tolist()) == [0, 1]
    assert torch.allclose(r.concepts.prob[0], torch.tensor([e[0] / sum(e)] * 2), atol=1e-6)
    # Eq. 2: patch 0 = (3, 0): cos with c0 = 1, with c1 = 0; patch 1 = (1, 1): 0.7071 with both
    order = r.concepts.index[0].tolist()
    a = {0: [1.0, 0.0], 1: [0.5 ** 0.5, 0.5 ** 0.5]}
    for j in (0, 1):
        for slot, c in enumerate(order):
            assert r.affinity[0, j, slot].item() == pytest.approx(a[j][c], abs=1e-6)
    # Eq. 3: patch 0 weights softmax((1, 0) / 0.5) = (e^2, 1) / (e^2 + 1); v^t = w0 * (1, 0) + w1 * (0, 2)
    w0 = math.exp(2) / (math.exp(2) + 1)
    vt = torch.tensor([w0 * 1.0, (1 - w0) * 2.0])
    assert torch.allclose(r.textual[0, 0], vt, atol=1e-6)
    assert torch.allclose(r.textual[0, 1], torch.tensor([0.5, 1.0]), atol=1e-6)    # equal weights
    # selection: the patch with the highest affinity (patch 0, cos 1) is the one mixed
    assert r.selected[0].tolist() == [True, False] and r.order[0].tolist() == [0]


def test_softmax_weights_sum_to_one_and_sizes_match_config():
    g, p, bank = _batch()
    for rule in ("pair", "patch"):
        cfg = PCMConfig(k=4, m=5, tau=0.1, selection=rule)
        r = pcm.pcm(g, p, bank, cfg)
        assert torch.allclose(r.weights.sum(-1), torch.ones(3, 16), atol=1e-5)
        assert r.concepts.index.shape == (3, 4) and r.affinity.shape == (3, 16, 4)
        assert r.order.shape == (3, 5)
        n_sel = r.selected.sum(-1)
        if rule == "patch":
            assert (n_sel == 5).all()
        else:      # M (patch, concept) pairs -> at most M distinct patches, at least one
            assert ((n_sel >= 1) & (n_sel <= 5)).all()
            assert ((r.order >= 0).sum(-1) == n_sel).all()


def test_pair_rule_picks_the_top_pairs():
    g, p, bank = _batch(b=1, n=6, c=5)
    r = pcm.pcm(g, p, bank, PCMConfig(k=3, m=2, selection="pair"))
    flat = r.affinity[0].flatten()
    top_pairs = flat.topk(2).indices // 3
    assert set(top_pairs.tolist()) == set(torch.nonzero(r.selected[0]).flatten().tolist())


def test_m_zero_leaves_visual_patches_untouched():
    g, p, bank = _batch()
    r = pcm.pcm(g, p, bank, PCMConfig(k=3, m=0))
    out = pcm.apply(p, r, "train")
    assert torch.equal(out["tokens"], p) and out["token_type"].sum() == 0
    inf = pcm.apply(p, r, "inference")
    assert inf["tokens"].shape == p.shape and torch.equal(inf["tokens"], p)


def test_train_mode_keeps_shape_and_replaces_exactly_the_selected():
    g, p, bank = _batch()
    r = pcm.pcm(g, p, bank, PCMConfig(k=3, m=4, selection="patch"))
    out = pcm.apply(p, r, "train")
    assert out["tokens"].shape == p.shape
    sel = r.selected.unsqueeze(-1)
    assert torch.equal(out["tokens"][~sel.expand_as(p)], p[~sel.expand_as(p)])
    assert torch.allclose(out["tokens"][sel.expand_as(p)], r.textual[sel.expand_as(p)])
    assert torch.equal(out["token_type"], r.selected.long())


def test_inference_mode_appends_m_tokens_with_type_and_position():
    g, p, bank = _batch()
    for rule in ("pair", "patch"):
        r = pcm.pcm(g, p, bank, PCMConfig(k=3, m=4, selection=rule))
        out = pcm.apply(p, r, "inference")
        assert out["tokens"].shape == (3, 16 + 4, 8)
        assert torch.equal(out["tokens"][:, :16], p)                      # all visual patches kept
        assert (out["token_type"][:, :16] == 0).all() and (out["token_type"][:, 16:] == 1).all()
        for i in range(3):
            for slot in range(4):
                j = r.order[i, slot].item()
                if j < 0:
                    assert not out["valid"][i, 16 + slot]
                    continue
                assert out["valid"][i, 16 + slot] and out["positions"][i, 16 + slot] == j
                assert torch.allclose(out["tokens"][i, 16 + slot], r.textual[i, j])


def test_batched_equals_per_item():
    g, p, bank = _batch(b=4)
    for rule in ("pair", "patch"):
        cfg = PCMConfig(k=3, m=5, selection=rule)
        full = pcm.pcm(g, p, bank, cfg)
        for i in range(4):
            one = pcm.pcm(g[i:i + 1], p[i:i + 1], bank, cfg)
            assert torch.equal(one.concepts.index, full.concepts.index[i:i + 1])
            assert torch.allclose(one.textual, full.textual[i:i + 1], atol=1e-6)
            assert torch.equal(one.selected, full.selected[i:i + 1])
            assert torch.equal(one.order, full.order[i:i + 1])


def test_threshold_masks_weak_concepts():
    g, p, bank = _batch()
    r = pcm.pcm(g, p, bank, PCMConfig(k=3, m=2, concept_temperature=1.0, concept_threshold=0.999))
    assert not r.concepts.mask.any() and r.concepts.embed.abs().sum() == 0


def test_bad_arguments_are_named():
    g, p, bank = _batch()
    with pytest.raises(ValueError, match="k=11"):
        pcm.salient_concepts(g, bank, k=11)
    with pytest.raises(ValueError, match="m=17"):
        pcm.select_patches(torch.rand(1, 16, 2), torch.ones(1, 2, dtype=torch.bool), m=17)
    with pytest.raises(ValueError, match="head-mapped"):
        pcm.pcm(g, torch.randn(3, 16, 5), bank, PCMConfig())
    with pytest.raises(ValueError, match="selection"):
        PCMConfig(selection="random")
    with pytest.raises(ValueError, match="mode"):
        pcm.apply(p, pcm.pcm(g, p, bank, PCMConfig(k=2, m=1)), "eval")
