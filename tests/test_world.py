"""The sandbox world: determinism, split disjointness, vocabulary, captions and geometry."""
import numpy as np
import pytest

from workbench.config import WorldConfig
from workbench.sandbox import (ALL_TEMPLATES, BACKGROUNDS, COLOURS, HELD_OUT_PAIRS, RELATIONS, SHAPES, SIZES,
                               make_scene, make_split, reference_captions, render_scene)
from workbench.sandbox.captions import COLOUR_WORDS, SHAPE_WORDS

CFG = WorldConfig.preset("sandbox")


def test_vocabulary_sizes():
    assert len(SHAPES) >= 8 and len(COLOURS) >= 8 and len(SIZES) == 2 and len(BACKGROUNDS) >= 4
    assert set(RELATIONS) == {"left of", "right of", "above", "below", "next to"}
    assert len(set(ALL_TEMPLATES)) >= 40


def test_same_seed_same_scene_and_image():
    a, b = make_scene(CFG, "train", 17), make_scene(CFG, "train", 17)
    assert a == b
    assert np.array_equal(render_scene(a, CFG), render_scene(b, CFG))
    assert reference_captions(a) == reference_captions(b)
    other_seed = make_scene(WorldConfig(seed=1), "train", 17)
    assert other_seed.fingerprint() != a.fingerprint()


def test_splits_are_disjoint_by_scene():
    prints = {s: {x.fingerprint() for x in make_split(CFG, s, 400)} for s in ("train", "val", "test", "test_unseen")}
    names = list(prints)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not prints[a] & prints[b], f"{a} and {b} share scenes"


def test_object_counts_and_counting_phrases():
    scenes = make_split(CFG, "train", 300)
    counts = {s.n_objects for s in scenes}
    assert counts == {1, 2, 3, 4}
    for s in scenes:
        assert sum(g.count for g in s.groups) == s.n_objects
    multi = [s for s in scenes if any(g.count >= 2 for g in s.groups)]
    assert multi, "some scenes hold several objects of one kind"
    caps = " ".join(c for s in multi for c in reference_captions(s))
    assert any(w in caps for w in ("two ", "three ", "four ", "a pair of "))


def test_held_out_pairs_only_in_unseen_split():
    for split in ("train", "val", "test"):
        assert not any(s.pairs() & HELD_OUT_PAIRS for s in make_split(CFG, split, 300))
    unseen = make_split(CFG, "test_unseen", 100)
    assert all(s.pairs() & HELD_OUT_PAIRS for s in unseen)
    assert len(HELD_OUT_PAIRS) == len(COLOURS)            # one per colour ...
    assert {sh for _, sh in HELD_OUT_PAIRS} == set(SHAPES)  # ... and one per shape


def test_relations_hold_geometrically():
    for s in make_split(CFG, "train", 300):
        if s.relation is None:
            assert len(s.groups) == 1
            continue
        a = [o for o in s.objects if o.group == 0]
        b = [o for o in s.objects if o.group == 1]
        ax, ay = np.mean([o.x for o in a]), np.mean([o.y for o in a])
        bx, by = np.mean([o.x for o in b]), np.mean([o.y for o in b])
        if s.relation == "left of":
            assert max(o.x for o in a) < min(o.x for o in b)
        elif s.relation == "right of":
            assert min(o.x for o in a) > max(o.x for o in b)
        elif s.relation == "above":
            assert max(o.y for o in a) < min(o.y for o in b)   # y grows downwards
        elif s.relation == "below":
            assert min(o.y for o in a) > max(o.y for o in b)
        else:
            assert abs(ax - bx) > abs(ay - by) * 0.3


def test_five_distinct_references_that_name_the_objects():
    minor_omitted = 0
    for s in make_split(CFG, "val", 200):
        caps = reference_captions(s)
        assert len(caps) == 5 and len(set(caps)) == 5
        for c in caps:
            main = s.groups[:2]
            for g in main:
                assert any(w in c for w in COLOUR_WORDS[g.colour]), (c, g)
                assert any(w in c for w in SHAPE_WORDS[g.shape]), (c, g)
        if len(s.groups) == 3:
            g = s.groups[2]
            minor_omitted += sum(not any(w in c for w in SHAPE_WORDS[g.shape]) or
                                 not any(w in c for w in COLOUR_WORDS[g.colour]) for c in caps)
    assert minor_omitted > 0, "some references leave out the minor object"


def test_references_vary_like_annotators():
    caps = [c for s in make_split(CFG, "val", 100) for c in reference_captions(s)]
    joined = " ".join(caps)
    for synonym in ("disc", "big", "beside", "rhombus"):
        assert synonym in joined
    with_bg = sum("background" in c or "backdrop" in c for c in caps)
    assert 0.05 < with_bg / len(caps) < 0.8


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="split"):
        make_scene(CFG, "training", 0)
    with pytest.raises(ValueError, match="n_objects"):
        make_scene(CFG, "train", 0, n_objects=7)
    with pytest.raises(ValueError, match="max_objects"):
        WorldConfig(max_objects=9)
