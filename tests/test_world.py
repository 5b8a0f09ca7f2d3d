"""The sandbox world: determinism, split disjointness, vocabulary, captions and geometry."""
import numpy as np
import pytest

from workbench.config import WorldConfig
from workbench.sandbox import (ALL_TEMPLATES, BACKGROUNDS, COLOURS, HELD_OUT_PAIRS, RELATIONS, SHAPES, SIZES,
                               make_scene, make_split, reference_captions, render_scene)
from workbench.sandbox.captions import _SHAPE_FORMS, _SHAPE_RE, PLACE_WORDS, SHAPE_WORDS
from workbench.sandbox.world import SUPERCATEGORY

CFG = WorldConfig.preset("sandbox")


def test_vocabulary_sizes():
    assert len(SHAPES) == 16 and len(COLOURS) >= 8 and len(SIZES) == 2 and len(BACKGROUNDS) >= 5
    assert set(RELATIONS) == {"left of", "right of", "above", "below", "next to"}
    assert len(set(ALL_TEMPLATES)) >= 40
    assert set(SUPERCATEGORY) == set(SHAPES) and set(SHAPE_WORDS) == set(SHAPES)


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
    scenes = make_split(CFG, "train", 400)
    counts = {s.n_objects for s in scenes}
    assert counts == set(range(1, CFG.max_objects + 1))
    assert {len(s.groups) for s in scenes} == {1, 2, 3, 4}
    for s in scenes:
        assert sum(g.count for g in s.groups) == s.n_objects
        assert all(1 <= g.count <= 3 for g in s.groups)
    multi = [s for s in scenes if any(g.count >= 2 for g in s.groups)]
    assert multi, "some scenes hold several objects of one kind"
    caps = " ".join(c for s in multi for c in reference_captions(s))
    assert any(w in caps for w in ("two ", "three ", "a pair of "))
    assert any(w in caps for w in ("some ", "a few ", "several "))      # vague counts too


def test_held_out_pairs_only_in_unseen_split():
    for split in ("train", "val", "test"):
        assert not any(s.pairs() & HELD_OUT_PAIRS for s in make_split(CFG, split, 300))
    unseen = make_split(CFG, "test_unseen", 100)
    assert all(s.pairs() & HELD_OUT_PAIRS for s in unseen)
    assert len(HELD_OUT_PAIRS) == len(SHAPES)             # one per category ...
    assert {sh for _, sh in HELD_OUT_PAIRS} == set(SHAPES)
    per_colour = {c: sum(c == k for k, _ in HELD_OUT_PAIRS) for c in COLOURS}
    assert set(per_colour.values()) == {2}                 # ... and two per colour


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


def _names(caption: str, g) -> bool:
    return any(_SHAPE_FORMS[m.group(1)][0] == g.shape for m in _SHAPE_RE.finditer(caption))


def test_five_distinct_references_that_each_say_part_of_the_scene():
    main_named, distractor_named, n_main, n_distractor, complete = 0, 0, 0, 0, 0
    for s in make_split(CFG, "val", 300):
        caps = reference_captions(s)
        assert len(caps) == 5 and len(set(caps)) == 5
        for c in caps:
            assert any(_names(c, g) for g in s.groups), c          # every reference names a thing in the scene
            n_main += 1
            main_named += _names(c, s.groups[0])
            for g in s.groups[2:]:
                n_distractor += 1
                distractor_named += _names(c, g)
            complete += all(_names(c, g) for g in s.groups)
    assert main_named / n_main > 0.8                                # the main object nearly always ...
    assert 0.1 < distractor_named / n_distractor < 0.5              # ... distractors rarely
    assert complete / n_main < 0.6                                  # most references leave something out


def test_references_vary_like_annotators():
    caps = [c for s in make_split(CFG, "val", 100) for c in reference_captions(s)]
    joined = " ".join(caps)
    for synonym in ("kitten", "big", "beside", "airplane", "violet"):
        assert synonym in joined
    with_place = sum(any(w in c for ws in PLACE_WORDS.values() for w in ws) for c in caps)
    assert 0.2 < with_place / len(caps) < 0.8


def test_caption_world_is_calibrated_on_a_sample():
    """Annotator agreement within the sandbox's bounds (60-140 CIDEr; MSCOCO 93.6) on 200 test scenes."""
    from workbench.evaluation.caption_stats import BOUNDS, caption_world
    test = make_split(CFG, "test", 200)
    refs = {s.scene_id: reference_captions(s) for s in test}
    memory = [reference_captions(s)[0] for s in make_split(CFG, "train", 800)]
    stats = caption_world(refs, memory)
    lo, hi = BOUNDS["agreement_cider"]
    assert lo <= stats["agreement_cider"] <= hi, stats
    assert stats["text_retrieval_share"] < 0.8 and stats["verbatim_share"] < 0.05, stats


def test_props_are_long_tailed_free_of_objects_and_sometimes_named():
    from workbench.sandbox.layout import parse_caption
    from workbench.sandbox.render import PROP_PARTS
    from workbench.sandbox.world import PROP_RADIUS, PROPS
    scenes = make_split(CFG, "val", 300)
    kinds = [p.kind for s in scenes for p in s.props]
    assert all(1 <= len(s.props) <= 4 for s in scenes) and set(PROP_PARTS) == set(PROPS)
    freq = {k: kinds.count(k) for k in PROPS}
    head, tail = sum(freq[k] for k in PROPS[:10]), sum(freq[k] for k in PROPS[-10:])
    assert head > 2.5 * tail and sum(v > 0 for v in freq.values()) >= 60                      # a long tail
    for s in scenes:
        for p in s.props:
            assert all((p.x - o.x) ** 2 + (p.y - o.y) ** 2 > (PROP_RADIUS + o.radius) ** 2 for o in s.objects)
    named = [sum(p.kind in c for c in reference_captions(s)) for s in scenes for p in s.props]
    assert 0.4 < np.mean(named) / 5 < 0.8                    # each prop named by some annotators, not all
    for s in scenes[:50]:                                    # prop words never read as things
        for c in reference_captions(s):
            assert all(g.shape in {x.shape for x in s.groups} for g in parse_caption(c).groups), c


def test_props_leave_the_rest_of_a_scene_unchanged_and_show_in_the_image():
    from dataclasses import replace
    s = make_scene(CFG, "val", 3)
    bare = replace(s, props=())
    assert s.props and render_scene(s, CFG).astype(int).sum() != render_scene(bare, CFG).astype(int).sum()
    diff = np.abs(render_scene(s, CFG).astype(int) - render_scene(bare, CFG).astype(int)).sum(-1)
    for p in s.props:                                          # the change sits where the props are
        y, x = int(p.y * CFG.image_size), int(p.x * CFG.image_size)
        assert diff[max(0, y - 3):y + 4, max(0, x - 3):x + 4].mean() > 20


def test_layout_reads_and_draws_the_named_props():
    from workbench.sandbox.layout import layout, layout_props, parse_caption, render_sketch
    p = parse_caption("a red cat next to a blue car on a beach, a kite and a teapot nearby")
    assert p.props == ("kite", "teapot") and [g.shape for g in p.groups] == ["cat", "car"]
    objects = layout(p, seed=2)
    props = layout_props(p, objects, 2)
    assert [q.kind for q in props] == ["kite", "teapot"]
    with_props, bare = render_sketch(objects, 64, p.place, props), render_sketch(objects, 64, p.place)
    diff = np.abs(with_props.astype(int) - bare.astype(int)).sum(-1)
    for q in props:
        y, x = int(q.y * 64), int(q.x * 64)
        assert diff[max(0, y - 3):y + 4, max(0, x - 3):x + 4].mean() > 20
    assert parse_caption("a teapot and a red cat").props == ("teapot",)      # "pot" is not read inside "teapot"


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="split"):
        make_scene(CFG, "training", 0)
    with pytest.raises(ValueError, match="n_objects"):
        make_scene(CFG, "train", 0, n_objects=7)
    with pytest.raises(ValueError, match="max_objects"):
        WorldConfig(max_objects=9)
