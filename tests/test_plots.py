"""Every figure is legible at the size JupyterLab shows it and never goes through pyplot.

The contract (``workbench.viz.plots``): at most MAX_WIDTH_IN inches wide at DPI (shown unscaled in a 1280 px
window), no visible text under MIN_FONT points, no two tick labels of an axis overlapping."""
import itertools

import matplotlib
import numpy as np
import pytest
import torch

from workbench.model import pcm
from workbench.viz import pcm_inspect, plots


def _texts(fig):
    renderer = fig.canvas.get_renderer()
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_visible() and t.get_text().strip() and t.get_window_extent(renderer).width > 0:
            out.append(t)
    return out, renderer


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1


def check_legible(fig):
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == [], "a plot function must not create pyplot figures"
    assert isinstance(fig, plots.WorkbenchFigure)
    assert fig.get_figwidth() <= plots.MAX_WIDTH_IN + 1e-6 and fig.dpi == plots.DPI
    fig.canvas.draw()
    texts, renderer = _texts(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < plots.MIN_FONT]
    assert not small, f"text below {plots.MIN_FONT} pt: {small[:5]}"
    for ax in fig.axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text().strip()]
            for a, b in itertools.combinations(boxes, 2):
                assert not _overlap(a, b), f"overlapping tick labels on {ax.get_title()!r}"
    png = fig.to_png()
    from PIL import Image
    import io
    width = Image.open(io.BytesIO(png)).size[0]
    assert width <= (plots.MAX_WIDTH_IN + 2 * plots.PAD_IN) * plots.DPI + 1, f"the saved figure is {width} px wide: something spills out"
    return png


rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
LONG = "an illustration of a small orange diamond on the left of two little orange stars on a grey background"
ROWS = [{"model": m, "CIDEr": c, "CIDEr_std": 0.05, "Bleu_4": 0.3, "METEOR": 0.25, "ROUGE_L": 0.5}
        for m, c in (("text-only", 0.97), ("base", 1.08), ("+mixup", 0.97), ("+cxe", 1.09), ("pcm-net", 0.98),
                     ("oracle", 1.40))]
CASES = {
    "image_grid": lambda: plots.image_grid(IMAGES, [LONG] * 8, cols=8),
    "cosine_histograms": lambda: plots.cosine_histograms(
        {"paired": rng.normal(0.4, 0.05, 100), "unpaired": rng.normal(0.36, 0.05, 100), "paired_mean": 0.4,
         "unpaired_mean": 0.36}),
    "difference_histogram": lambda: plots.difference_histogram(
        {"diffs": rng.normal(0, 0.1, 1000), "sigma": 0.1, "capdec_sigma": 0.126, "capdec_variance": 0.016}),
    "mean_shift_bars": lambda: plots.mean_shift_bars(
        {"paired_before": 0.41, "paired_after": 0.96, "retrieval_top1_before": 0.3, "retrieval_top1_after": 0.5}),
    "umap_scatter": lambda: plots.umap_scatter(rng.normal(size=(40, 2)), 20),
    "bar_pair (18 nouns)": lambda: plots.bar_pair({f"checkerboard{i}": 424 - 20 * i for i in range(18)},
                                                  "most frequent nouns", "count"),
    "synthesis_gallery": lambda: plots.synthesis_gallery([LONG] * 4, IMAGES[:4], IMAGES[4:], n=4),
    "score_histograms": lambda: plots.score_histograms({"a": rng.normal(size=50), "b": rng.normal(size=50)},
                                                       "cos", "CLIP"),
    "training_curves": lambda: plots.training_curves({"loss": list(np.linspace(5, 2, 120)), "epoch_step": [60, 120],
                                                      "val_cider": [0.5, 0.8]}),
    "rl_curves": lambda: plots.rl_curves({"reward": list(np.linspace(0.5, 1.0, 40)), "reward_clip": [0.8] * 40,
                                          "reward_fluency": [0.3] * 40, "epoch_step": [20, 40],
                                          "val_cider": [0.5, 0.6], "init_val_cider": [0.4, 0.55]}),
    "learning_curves": lambda: plots.learning_curves(
        {m: {"val_cider": list(np.linspace(0.1, 1.5, 32) ** 0.5)} for m in ("oracle", "base", "capdec", "decap")},
        budget=20),
    "ablation_bars": lambda: plots.ablation_bars(ROWS),
    "caption_gallery": lambda: plots.caption_gallery(IMAGES, {"ref": [LONG] * 8, "base": [LONG] * 8}, n=6),
    "faithfulness_sweep": lambda: plots.faithfulness_sweep(
        [{"model": m, "strength": s, "faithfulness_overall": f, "CIDEr": c} for m in ("base", "pcm-net")
         for s, f, c in ((0.1, 0.47, 0.84), (1.0, 0.12, 0.66))], {"text-only": 0.6, "oracle": 0.87}, 0.8),
    "leaderboard_bars": lambda: plots.leaderboard_bars(
        [{"method": m, "block": b, "CIDEr": c, "CIDEr_std": 2.0, "seeds": 3}
         for m, b, c in (("capdec", "text only", 97.0), ("decap", "text only", 90.0), ("syntic", "synthetic images", 99.0),
                         ("oracle", "reference", 140.0))]),
    "faithfulness_profile": lambda: plots.faithfulness_profile(
        {"real": {"single_object": 0.88, "colour": 0.88}, "synthetic": {"single_object": 0.7, "colour": 0.6}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_plot_is_legible_and_outside_pyplot(name):
    check_legible(CASES[name]())


def _pcm_result(k=3, n=64, d=16, m=24, tau=0.01, rule="pair"):
    g = torch.Generator().manual_seed(0)
    from workbench.config import PCMConfig
    cfg = PCMConfig(k=k, m=m, tau=tau, concept_temperature=0.01, concept_threshold=0.0, selection=rule)
    return pcm.pcm(torch.randn(1, d, generator=g), torch.randn(1, n, d, generator=g), torch.randn(8, d, generator=g), cfg)


def test_render_pcm_is_legible_and_explains_a_short_selection():
    res = _pcm_result(m=24)
    words = [f"concept{i}" for i in range(8)]
    img = np.zeros((64, 64, 3), np.uint8)
    fig = pcm_inspect.render_pcm(img, res, 0, words, "train", LONG, np.zeros(64, bool), m=24, tau=0.01, rule="pair")
    check_legible(fig)
    n_sel = int(res.selected.sum())
    title = fig._suptitle.get_text()
    assert n_sel < 24 and f"only {n_sel} distinct patches" in title     # the pair rule explains itself
    assert "background" in "".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))   # full caption
    assert pcm_inspect.selection_note(_pcm_result(m=4, rule="patch"), 0, 4, "patch") == ""


def test_tau_changes_what_the_inspector_shows():
    words = [f"c{i}" for i in range(8)]
    img = np.zeros((64, 64, 3), np.uint8)
    sharp, flat = _pcm_result(tau=0.001), _pcm_result(tau=1.0)
    e_sharp, e_flat = pcm_inspect.weight_entropy(sharp, 0), pcm_inspect.weight_entropy(flat, 0)
    assert e_sharp.mean() < 0.2 < 0.9 < e_flat.mean() <= 1.0       # one concept vs an even mix
    a = pcm_inspect.render_pcm(img, sharp, 0, words, m=24, tau=0.001, rule="pair").to_png()
    b = pcm_inspect.render_pcm(img, flat, 0, words, m=24, tau=1.0, rule="pair").to_png()
    assert a != b


def test_fmt_prints_counts_as_integers():
    assert plots.fmt(424.0) == "424" and plots.fmt(np.int64(12000)) == "12,000"
    assert plots.fmt(0.4123) == "0.412" and plots.fmt(97.25) == "97.2" and plots.fmt(float("nan")) == "n/a"


def test_too_wide_a_figure_is_refused():
    with pytest.raises(ValueError, match="figsize"):
        plots.subplots(figsize=(14, 3))
