"""Caption-world statistics: recall, nearest-caption retrieval, vocabulary, bounds and the calibration table."""
import pytest
import torch

from workbench.evaluation import caption_stats as cs
from workbench.evaluation.metrics import cider


def test_recall_at_k_hand_case():
    img = torch.eye(3)                                                  # 3 images, 2 captions each
    txt = torch.tensor([[1., 0, 0], [.2, 1, 0],                         # image 0: one right, one pointing at 1
                        [0, 1, 0], [0, .9, .1],                         # image 1: both right
                        [1, 0, .5], [0, 0, 1]])                         # image 2: second right
    r = cs.recall_at_k(img, txt, per_image=2, ks=(1, 2))
    assert r["i2t"] == (100.0, 100.0)                                   # every image's best caption is its own
    # captions 1 (image 0, points at image 1) and 4 (image 2, nearer image 0) miss at rank 1
    assert r["t2i"][0] == pytest.approx(100 * 4 / 6) and r["t2i"][1] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="per_image=3"):
        cs.recall_at_k(img, txt, per_image=3)


def test_clip_retrieval_scores_the_nearest_memory_caption_against_the_kept_references():
    refs = {"a": ["a red cat", "a red cat in a park", "a cat on the grass"],
            "b": ["two blue cars", "blue cars on a road", "two cars"]}
    memory = ["a red cat on the grass", "two blue cars on the road", "a green tree"]
    mem = torch.eye(3)
    img = torch.tensor([[1., .1, 0], [0, 1, .2]])                       # a -> memory 0, b -> memory 1
    _, rest = cs.held_out_split(refs, seed=0)
    want = 100 * cider(rest, {"a": memory[0], "b": memory[1]})
    out = cs.clip_retrieval(img, mem, refs, memory, agreement=50.0)
    assert out["clip_retrieval_cider"] == pytest.approx(want)
    assert out["clip_retrieval_share"] == pytest.approx(want / 50.0)
    with pytest.raises(ValueError, match="pair up"):
        cs.clip_retrieval(img[:1], mem, refs, memory, agreement=50.0)


def test_vocabulary_and_verbatim_share():
    v = cs.vocabulary(["A red cat.", "a blue dog"], {"x": ["a red cat", "a green cat"]})
    assert v["vocabulary"] == 5 and v["verbatim_share"] == 0.5
    with pytest.raises(ValueError, match="memory is empty"):
        cs.vocabulary([], {"x": ["a"]})


def test_real_caption_length_is_the_committed_histograms():
    from workbench.config import carryover as R
    h = R.caption_lengths()["mscoco"]["histogram"]
    mean = sum(int(k) * v for k, v in h.items()) / sum(h.values())
    assert cs.REAL_CAPTION_WORLD["mean_words"]["value"] == round(mean, 1)
    assert cs.vocabulary(["a red cat", "two dogs on the grass"], {"x": ["a cat"]})["mean_words"] == 4.0


def test_random_share_is_the_floor_any_caption_earns():
    places = ["grass", "sofa", "beach"]
    refs = {f"i{k}": [f"a {col} cat on the {places[k % 3]}", f"a small {col} cat on the {places[k % 3]}",
                      f"the {col} kitten", f"a cat on a {places[k % 3]}", f"one {col} cat sitting"]
            for k, col in enumerate(["red", "blue", "green", "white", "pink", "black", "grey", "brown", "gold"])}
    shared = cs.random_share(refs, [v[0] for v in refs.values()], agreement=100.0)        # the world's own words
    apart = cs.random_share(refs, ["two buses near a station", "trees by lakes"], agreement=100.0)
    assert apart["random_cider"] == 0.0 and shared["random_cider"] > 5            # shared words are the floor
    assert shared["random_share"] == pytest.approx(shared["random_cider"] / 100.0)
    with pytest.raises(ValueError, match="memory is empty"):
        cs.random_share(refs, [], agreement=100.0)


def test_within_bounds_reads_each_target():
    real_i2t = cs.REAL_CAPTION_WORLD["recall_i2t"]["value"]
    ok = cs.within_bounds({"clip_retrieval_share": 0.2, "agreement_cider": 90.0,
                           "recall_i2t": tuple(v + 9 for v in real_i2t)})
    assert ok == {"clip_retrieval_share": True, "agreement_cider": True, "recall_i2t": True}
    bad = cs.within_bounds({"clip_retrieval_share": 0.75, "agreement_cider": 205.7,
                            "recall_i2t": tuple(v + 11 for v in real_i2t)})
    assert not any(bad.values())


def test_world_table_holds_every_statistic_beside_its_real_value():
    from workbench.experiments.calibrate import world_table
    rep = {"agreement_cider": 87.1, "clip_retrieval_cider": 15.0, "clip_retrieval_share": 0.17,
           "text_retrieval_share": 0.51, "random_share": 0.05, "vocabulary": 275, "n_memory": 4000, "verbatim_share": 0.01,
           "recall_i2t": (40.0, 70.0, 80.0), "recall_t2i": (20.0, 50.0, 60.0), "n_recall_images": 5000,
           "geometry": {"paired_cos": 0.35, "paired_cos_std": 0.03, "paired_cos_min": 0.2, "paired_cos_max": 0.45,
                        "paired_unpaired_margin": 0.1, "image_image_cos": 0.8, "text_text_cos": 0.85}}
    t = world_table(rep)
    assert "| annotator agreement (CIDEr) | 87.1 | 93.6 |" in t and "MAGIC" in t and "Mind the Gap" in t
    assert t.count("\n") == 15                                          # header, rule, 14 statistics
    assert "| a random training caption (the language's floor), share of agreement | 0.050 | 0.032 |" in t
    rep["pcm_inputs"] = {"eq1_top1_precision": 0.5, "eq1_topk_precision": 0.4, "k": 2, "eq2_map_correlation": 0.9,
                         "eq2_argmax_on_object": 0.3, "eq2_chance": 0.07}
    assert world_table(rep).count("\n") == 17 and "0.300 (0.070)" in world_table(rep)


def test_world_report_measures_every_statistic_on_a_small_sample(tiny_clip):
    from workbench.experiments.calibrate import world_report, world_table
    from workbench.config import WorldConfig
    rep = world_report(tiny_clip, WorldConfig.preset("tiny"), n_agreement=24, n_memory=48, n_recall=24,
                       progress=False)
    assert 0 < rep["agreement_cider"] and 0 <= rep["clip_retrieval_cider"]
    assert rep["clip_retrieval_share"] == pytest.approx(rep["clip_retrieval_cider"] / rep["agreement_cider"])
    assert len(rep["recall_i2t"]) == 3 and rep["n_recall_images"] == 24 and rep["n_memory"] == 48
    assert {"paired_cos", "image_image_cos", "text_text_cos", "paired_cos_std"} <= set(rep["geometry"])
    assert set(rep["within_bounds"]) == {"clip_retrieval_share", "agreement_cider", "recall_i2t", "recall_t2i"}
    assert world_table(rep).count("\n") == 17
