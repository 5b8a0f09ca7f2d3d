"""PCM inspection: object-patch labels, hit rates, the render function and the widget around it."""
from dataclasses import replace

import matplotlib
import numpy as np
import pytest
import torch

from workbench.model import pcm
from workbench.viz import pcm_inspect, widgets
from workbench.features.concepts import ConceptBank
from workbench.config import FeatureConfig, PCMConfig, WorldConfig
from workbench.sandbox.splits import load_sandbox_split
from workbench.features.cache import extract_image_features


@pytest.fixture(scope="module")
def renders():
    world = WorldConfig.preset("tiny")
    return world, load_sandbox_split(world, "test", n=12)


def test_caption_colours_and_labels(renders):
    world, d = renders
    assert pcm_inspect.caption_colours("a violet star next to two red discs") == {"purple", "red"}
    # annotators state a colour usually, not always: the labels are read on the captions that name one
    keep = [i for i, c in enumerate(d.first_captions()) if pcm_inspect.caption_colours(c)]
    assert len(keep) >= 6, d.first_captions()
    caps, scenes, images = [d.first_captions()[i] for i in keep], [d.scenes[i] for i in keep], d.images[keep]
    true = np.stack([pcm_inspect.true_object_patches(s, c, world, 8) for s, c in zip(scenes, caps)])
    colour = np.stack([pcm_inspect.colour_object_patches(im, c, 8) for im, c in zip(images, caps)])
    assert true.shape == (len(keep), 64) and true.any(1).all()   # every colour a caption names is on a visible thing
    # the colour proxy (all a synthetic image has) is informative, not exact: places and props share the named
    # colours (grass, sea, a red ball), so it over-labels; it must still find most named things and be far
    # more precise than the base rate (world v7, 216 val renders naming a colour: recall 0.83, precision 0.41
    # against a base rate of 0.11)
    tp, base = (colour & true).sum(), true.mean()
    assert tp / true.sum() >= 0.7 and tp / colour.sum() >= 2 * base, (tp, true.sum(), colour.sum(), base)
    # a caption naming no colour has no object patches
    assert not pcm_inspect.colour_object_patches(d.images[0], "an empty scene", 8).any()


def test_hit_rates_counts():
    selected = torch.tensor([[True, True, False, False], [False, False, True, False]])
    labels = np.array([[True, False, False, False], [False, False, True, True]])
    r = pcm_inspect.hit_rates(selected, labels)
    assert r["pcm"] == pytest.approx(2 / 3)                       # 1 of 2 + 1 of 1
    assert r["random_expected"] == pytest.approx((2 * 0.25 + 1 * 0.5) / 3)
    assert r["n_selected"] == 3
    with pytest.raises(ValueError, match="labels"):
        pcm_inspect.hit_rates(selected, labels[:, :3])


@pytest.fixture(scope="module")
def cached(tiny_clip, renders, tmp_path_factory):
    _, d = renders
    cfg = replace(FeatureConfig.preset("tiny"), root=str(tmp_path_factory.mktemp("feat")))
    store = extract_image_features(tiny_clip, d.images, [s.scene_id for s in d.scenes], "r", cfg, progress=False)
    words = ["circle", "star", "heart", "square"]
    bank = ConceptBank(words, [1] * 4, torch.nn.functional.normalize(tiny_clip.text_features(words), dim=-1))
    return d, store, bank


def test_render_and_widget_drive_the_same_function(cached):
    matplotlib.use("Agg")
    d, store, bank = cached
    caps = d.first_captions()
    fig, res = widgets.render_pcm_view(d.images, caps, store, bank, 2, k=3, m=4, tau=0.05, mode="inference",
                                       selection="patch")
    assert res.selected.sum() == 4
    titles = [a.get_title() for a in fig.axes]
    assert sum(t.startswith("cos(patch") for t in titles) == 3    # one affinity map per concept
    assert any("entropy" in t for t in titles) and any("top concept" in t for t in titles)
    with pytest.raises(ValueError, match="index=99"):
        widgets.render_pcm_view(d.images, caps, store, bank, 99, k=2, m=2, tau=0.1, mode="train")
    panel = widgets.pcm_inspector(d.images, caps, store, bank, PCMConfig.preset("tiny"))
    panel.controls["k"].value = 2
    panel.controls["mode"].value = "inference"
    assert panel.state["values"]["k"] == 2 and panel.state["values"]["mode"] == "inference"
    assert panel.state["result"].concepts.index.shape == (1, 2)   # redrawn with the new K
    assert panel.image.value == widgets.render_pcm_png(d.images, caps, store, bank, base=PCMConfig.preset("tiny"),
                                                       **panel.state["values"])
    with pytest.raises(ValueError, match="mode"):
        pcm_inspect.render_pcm(d.images[0], res, 0, bank.words, mode="eval")


def test_hit_report_on_cached_features(cached, renders):
    world, _ = renders
    d, store, bank = cached
    rep = pcm_inspect.hit_report(store, d.images, d.first_captions(), bank, PCMConfig.preset("tiny"), d.scenes, world)
    assert set(rep) == {"colour_labels", "true_labels", "label_agreement"}
    assert 0 <= rep["true_labels"]["pcm"] <= 1 and rep["true_labels"]["n_images"] == 12
    direct = pcm.pcm(store.all("global"), store.all("patches"), bank.embeddings, PCMConfig.preset("tiny"))
    assert torch.equal(pcm_inspect.run_pcm(store, range(12), bank, PCMConfig.preset("tiny")).selected, direct.selected)
