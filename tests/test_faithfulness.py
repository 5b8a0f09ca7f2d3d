"""Layout-guided synthesis (caption parser, sketches, img2img path) and the GenEval-like faithfulness profile."""
import numpy as np
import pytest
import torch

from workbench.synthesis import faithfulness as fa
from workbench.config import SynthesisConfig, WorldConfig
from workbench.sandbox import make_scene, make_split, reference_captions
from workbench.sandbox.captions import INVERSE, VAGUE_COUNT_WORDS
from workbench.sandbox.layout import parse_caption, layout, render_sketch, sketch_caption
from workbench.sandbox.render import RGB
from workbench.sandbox.world import Group, Scene


def test_parser_reads_every_reference_of_val_scenes():
    """What each reference says (colour where stated, thing, exact count), the stated relation and the place,
    from the words alone, on 1,000 captions."""
    for s in make_split(WorldConfig.preset("sandbox"), "val", 200):
        truth = {(g.colour, g.shape, g.count) for g in s.groups}
        kinds = {g.shape for g in s.groups}
        for c in reference_captions(s):
            p = parse_caption(c)
            for g in p.groups:
                assert g.shape in kinds, (c, g)
                if g.colour is not None and not any(w in c for w in VAGUE_COUNT_WORDS):
                    assert (g.colour, g.shape, g.count) in truth, (c, g, truth)
            if p.place is not None:
                assert p.place == s.background, c
            if p.relation is not None and not (p.groups[0].shape == p.groups[1].shape and p.groups[0].colour is None):
                first = (p.groups[0].colour, p.groups[0].shape)
                a = s.groups[0]
                want = s.relation if first[1] == a.shape and first[0] in (None, a.colour) else INVERSE[s.relation]
                assert p.relation == want, c


def test_parser_cases_and_errors():
    p = parse_caption("A pair of big violet striped buses placed beneath an orange kitten on the sand")
    assert [(g.colour, g.shape, g.size, g.count, g.pattern) for g in p.groups] == [
        ("purple", "bus", "large", 2, "striped"), ("orange", "cat", None, 1, None)]
    assert p.relation == "below" and p.place == "beach"
    q = parse_caption("a red cat and a table")
    assert q.relation is None and q.place is None and q.groups[1].colour is None
    with pytest.raises(ValueError, match="caption='a man on a couch'"):
        parse_caption("a man on a couch")


def test_layout_realises_the_relation_and_sketch_draws_it():
    objs = layout(parse_caption("a large red car to the left of a small blue tree"), seed=3)
    assert [(o.colour, o.shape, o.size) for o in objs] == [("red", "car", "large"), ("blue", "tree", "small")]
    assert objs[0].x < objs[1].x
    img = render_sketch(objs, 64).astype(int)
    assert img.shape == (64, 64, 3)
    red = (np.abs(img - RGB["red"]).sum(-1) < 10)
    blue = (np.abs(img - RGB["blue"]).sum(-1) < 10)
    grey = (np.abs(img - 128).sum(-1) < 6)
    assert red.sum() > 80 and blue.sum() > 20 and grey.mean() > 0.6
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()       # red left of blue, in pixels
    np.testing.assert_array_equal(sketch_caption("a red cat", 5), sketch_caption("a red cat", 5))
    park = sketch_caption("a red cat in a park", 5).astype(int)          # the named place is drawn
    assert (np.abs(park - 128).sum(-1) < 6).mean() < 0.1


def _scene(groups, relation=None):
    return Scene("t-0", "test", tuple(groups), (), "park", relation, 0)


def test_contrast_captions_hand_cases():
    one = _scene([Group("cat", "red", "small", 1)])
    truth, alts = fa.contrasts("single_object", one)
    assert truth == "a photo of a red cat" and len(alts) == 15 and "a photo of a red dog" in alts
    assert len(fa.contrasts("colour", one)[1]) == 22 and "a photo of an orange cat" in fa.contrasts("colour", one)[1]
    three = _scene([Group("bus", "blue", "large", 3)])
    truth, alts = fa.contrasts("counting", three)
    assert truth == "a photo of three blue buses"
    assert {"a photo of two blue buses", "a photo of four blue buses"} <= set(alts)
    two = _scene([Group("cat", "red", "small", 1), Group("tree", "blue", "small", 1)], "above")
    assert fa.contrasts("position", two) == ("a photo of a red cat above a blue tree",
                                             ["a photo of a red cat below a blue tree"])
    assert fa.contrasts("colour_attribution", two)[1] == ["a photo of a blue cat and a red tree"]
    truth, alts = fa.contrasts("two_objects", two)
    assert "a photo of a red cat" in alts and "a photo of a blue tree" in alts and len(alts) == 2 + 15 + 15


class _TextClip:
    """A stand-in CLIP: texts embed to fixed random directions; 'images' are given as embeddings."""

    def __init__(self):
        self.table = {}

    def text_features(self, texts):
        rows = []
        for t in texts:
            if t not in self.table:
                g = torch.Generator().manual_seed(len(self.table) + 1)
                self.table[t] = torch.randn(64, generator=g)
            rows.append(self.table[t])
        return torch.stack(rows)

    def image_features(self, images):
        class F:
            global_ = torch.as_tensor(images, dtype=torch.float32)
        return F()


def test_profile_counts_a_pass_only_when_truth_beats_every_change_and_prerequisites_hold():
    clip = _TextClip()
    one = [_scene([Group("cat", "red", "small", 1)]), _scene([Group("dog", "blue", "small", 1)])]
    two = [_scene([Group("dog", "red", "small", 1), Group("tree", "blue", "small", 1)], "left of")] * 2
    emb = lambda t: clip.text_features([t])[0]                                  # noqa: E731
    images = {
        # image 0 is its truth; image 1 looks like a shape swap -> fails single object and (therefore) colour
        "single_object": np.stack([emb("a photo of a red cat"), emb("a photo of a blue tree")]),
        "colour": np.stack([emb("a photo of a red cat"), emb("a photo of a blue tree")]),
        # image 0: right objects, flipped relation -> fails position; image 1: right objects, right relation
        "position": np.stack([emb("a photo of a red dog right of a blue tree") + 2 * emb("a photo of a red dog and a blue tree"),
                              emb("a photo of a red dog left of a blue tree") + 2 * emb("a photo of a red dog and a blue tree")]),
    }
    cats = {"single_object": [(s, "") for s in one], "colour": [(s, "") for s in one],
            "position": [(s, "") for s in two]}
    prof = fa.profile(clip, images, cats)
    assert prof["single_object"]["flags"] == [True, False]
    assert prof["colour"]["flags"] == [True, False]
    assert prof["position"]["flags"] == [False, True]
    r = fa.rates(prof)
    assert r["single_object"] == 0.5 and r["overall"] == pytest.approx(0.5)


def test_category_scenes_have_the_structure_of_their_category():
    cats = fa.category_scenes(WorldConfig.preset("sandbox"), "val", 12)
    assert set(cats) == set(fa.CATEGORIES) and all(len(v) == 12 for v in cats.values())
    for c, items in cats.items():
        for scene, caption in items:
            assert c in fa.category_of(scene)
            assert fa.states(caption, scene, c)                # the prompt says what the category tests
            if c == "position":
                assert parse_caption(caption).relation is not None


def test_choose_strength_prefers_closest_synthetic_setting():
    def rep(single, colour, probe=0.99, cs=(1.0, 2.0)):
        return {"synthetic": {"single_object": single, "colour": colour}, "probe_accuracy": probe,
                "clipscore_synthetic": cs[0], "clipscore_real": cs[1]}
    reports = {0.3: rep(0.97, 0.76, probe=0.90),       # closest, but not measurably synthetic
               0.5: rep(0.90, 0.80), 0.7: rep(0.80, 0.70), 1.0: rep(0.2, 0.6)}
    assert fa.choose_strength(reports) == 0.5
    with pytest.raises(ValueError, match="no strength"):
        fa.choose_strength({0.3: rep(0.97, 0.76, probe=0.5)})


def test_layout_strength_runs_img2img_and_is_part_of_the_settings(tiny_pipeline_dir, tmp_path):
    from workbench.synthesis.engine import SynthesisEngine, load_pipeline
    base = SynthesisConfig.preset("tiny", model_id=str(tiny_pipeline_dir), out_dir=str(tmp_path / "a"))
    pipe = load_pipeline(base, device="cpu")
    caps = ["a red cat left of a blue car", "two green trees in a park"]
    t2i = SynthesisEngine(pipe, base)
    lay = SynthesisEngine(pipe, SynthesisConfig.preset("tiny", model_id=str(tiny_pipeline_dir),
                                                       out_dir=str(tmp_path / "b"), layout_strength=0.5, steps=4))
    assert t2i.settings_hash != lay.settings_hash
    out = lay.generate(caps, [1, 2])
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    recs = lay.run(caps, progress=False)
    assert len(recs) == 2 and all(r["settings_hash"] == lay.settings_hash for r in recs)
    with pytest.raises(ValueError, match="layout_strength"):
        SynthesisConfig.preset("tiny", layout_strength=0.0)
    assert SynthesisConfig.preset("tiny", layout_strength=1.0).layout_strength is None   # 1 = text-to-image
