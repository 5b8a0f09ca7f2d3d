"""Plot functions: each takes plain results and returns a matplotlib Figure; ``show`` saves and displays it.

No function here touches pyplot. Figures are ``matplotlib.figure.Figure`` objects with their own Agg canvas,
so they never enter pyplot's global figure list: a widget callback can draw one on any kernel thread
without the inline backend's ``flush_figures`` displaying (and closing) it half-drawn (ipykernel 7 runs
widget messages on subshell threads). A figure shows itself when it is a cell's last value (``_repr_png_``).

Legibility at the size JupyterLab shows a figure in a 1280 px window: every figure is at most
``MAX_WIDTH_IN`` inches wide at ``DPI`` (so it is shown unscaled) and no text is smaller than ``MIN_FONT``
points (``tests/test_plots.py`` checks both, and that tick labels do not overlap).

Figures are written under ``runs/figures`` (or ``$WORKBENCH_RUN_DIR/figures`` in the main job).
"""
from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from ..utils.paths import figures_dir

DPI = 96              # CSS pixels per inch: a 9 pt font is 12 px on screen
MAX_WIDTH_IN = 8.5    # 816 px (+ the crop's pad): a notebook's output area is 829 px in a 1280 px JupyterLab
                      # window with the file browser open
MIN_FONT = 9.0        # points, at that size
FONT = 10.0           # body text: ticks, labels, legends, annotations
TITLE = 11.0
PAD_IN = 0.02         # the padding bbox_inches="tight" keeps around the content


class WorkbenchFigure(Figure):
    """A Figure outside pyplot with its own Agg canvas; it renders itself as PNG in a notebook."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dpi", DPI)
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def to_png(self) -> bytes:
        """The PNG bytes of this figure (deterministic for the same figure)."""
        return png_bytes(self)

    def _repr_png_(self) -> bytes:
        return self.to_png()


def subplots(nrows: int = 1, ncols: int = 1, figsize=(6.0, 3.5), **kwargs):
    """pyplot.subplots without pyplot: (WorkbenchFigure, axes)."""
    if figsize[0] > MAX_WIDTH_IN:
        raise ValueError(f"figsize={figsize} is wider than MAX_WIDTH_IN={MAX_WIDTH_IN}; JupyterLab would shrink "
                         "it and its text; use more rows.")
    fig = WorkbenchFigure(figsize=figsize, layout=kwargs.pop("layout", "constrained"))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def finish(fig: Figure) -> Figure:
    """Raise any text below ``MIN_FONT`` (tick labels included) to it."""
    for ax in fig.axes:
        ax.tick_params(labelsize=max(FONT, MIN_FONT))
    for t in fig.findobj(Text):
        if t.get_fontsize() < MIN_FONT:
            t.set_fontsize(MIN_FONT)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """PNG bytes of any Figure at its own dpi, cropped to its content (``PAD_IN`` around it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=PAD_IN, facecolor="white")
    return buf.getvalue()


def save(fig, name: str):
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and return the path."""
    path = figures_dir() / f"{name}.png"
    return save_to(fig, path)


def save_to(fig, path):
    """Save ``fig`` at an explicit path (a run's own folder), atomically."""
    from pathlib import Path
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(png_bytes(fig))
    tmp.replace(path)
    return path


def show(fig, name: str | None = None):
    """Save ``fig`` under ``name`` (when given) and display it in the notebook."""
    from IPython.display import display
    if name:
        save(fig, name)
    display(fig)


def fmt(v) -> str:
    """A value as a person reads it: integers without decimals, large numbers with one, small with three."""
    v = float(v)
    if not np.isfinite(v):
        return "n/a"
    if v.is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def wrap_text(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(str(text), max(width, 8))) or " "


def image_grid(images: np.ndarray, titles=None, cols: int = 8, scale: float = 1.6, fontsize: float = FONT):
    """Show uint8 [B, H, W, 3] images in a grid, optional titles wrapped to the cell width."""
    n = len(images)
    cols = max(1, min(cols, n, 6 if titles else 10))          # titled cells need ~1.4 in to stay readable
    rows = int(np.ceil(n / cols))
    scale = min(scale, MAX_WIDTH_IN / cols)
    fontsize = max(fontsize, MIN_FONT)
    chars = int(scale * 72 / (0.62 * fontsize))                 # characters per line at this font size
    lines = max((len(textwrap.wrap(t, chars)) for t in titles), default=0) if titles else 0
    fig, axes = subplots(rows, cols, figsize=(cols * scale, rows * (scale + lines * fontsize * 1.3 / 72)),
                         squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(images[i])
        if titles:
            ax.set_title(wrap_text(titles[i], chars), fontsize=fontsize)
    return finish(fig)


def cosine_histograms(dist: dict):
    """Paired vs unpaired image-text cosine distributions."""
    fig, ax = subplots(figsize=(6.5, 3.6))
    bins = np.linspace(min(dist["unpaired"].min(), dist["paired"].min()), max(dist["paired"].max(), 0.01), 60)
    ax.hist(dist["unpaired"], bins=bins, density=True, alpha=0.6, label=f"unpaired (mean {dist['unpaired_mean']:.3f})")
    ax.hist(dist["paired"], bins=bins, density=True, alpha=0.6, label=f"paired (mean {dist['paired_mean']:.3f})")
    ax.set_xlabel("cosine(image, text)", fontsize=FONT)
    ax.set_ylabel("density", fontsize=FONT)
    ax.legend(fontsize=FONT)
    ax.set_title("Image-text cosine similarity", fontsize=TITLE)
    return finish(fig)


def difference_histogram(fit: dict):
    """Per-dimension image - text differences with the fitted zero-mean Gaussian and CapDec's noise."""
    fig, ax = subplots(figsize=(6.5, 3.6))
    d = fit["diffs"]
    lim = np.percentile(np.abs(d), 99.5)
    xs = np.linspace(-lim, lim, 400)
    ax.hist(d, bins=120, range=(-lim, lim), density=True, alpha=0.6, label="image - text, per dimension")
    for sigma, label, style in ((fit["sigma"], f"fitted N(0, σ={fit['sigma']:.3f})", "-"),
                                (fit["capdec_sigma"], f"CapDec N(0, σ²={fit['capdec_variance']})", "--")):
        ax.plot(xs, np.exp(-xs ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi)), style, label=label)
    ax.set_xlabel("difference", fontsize=FONT)
    ax.set_ylabel("density", fontsize=FONT)
    ax.legend(fontsize=FONT)
    ax.set_title("Per-dimension modality difference", fontsize=TITLE)
    return finish(fig)


def mean_shift_bars(shift: dict, before_label="raw", after_label="mean-shifted"):
    """Paired cosine and retrieval accuracy before/after Unsupervised-ClipCap's mean shift."""
    fig, axes = subplots(1, 2, figsize=(7.5, 3.2))
    for ax, key, title in ((axes[0], "paired", "mean paired cosine"), (axes[1], "retrieval_top1", "image→text top-1")):
        vals = [shift[f"{key}_before"], shift[f"{key}_after"]]
        ax.bar([before_label, after_label], vals, color=["C0", "C1"])
        for i, v in enumerate(vals):
            ax.text(i, v, fmt(v), ha="center", va="bottom", fontsize=FONT)
        ax.set_ylim(0, 1.12)
        ax.set_title(title, fontsize=TITLE)
    return finish(fig)


def umap_scatter(points: np.ndarray, n_images: int):
    """UMAP points: the first ``n_images`` rows are images, the rest texts."""
    fig, ax = subplots(figsize=(5.5, 5.0))
    ax.scatter(*points[:n_images].T, s=6, alpha=0.6, label="images")
    ax.scatter(*points[n_images:].T, s=6, alpha=0.6, label="captions")
    ax.legend(fontsize=FONT)
    ax.set_title("UMAP of CLIP embeddings", fontsize=TITLE)
    ax.set_xticks([])
    ax.set_yticks([])
    return finish(fig)


def bar_pair(values: dict, title: str, ylabel: str = ""):
    """Horizontal bars of named values, each labelled with its value (integers as integers).

    ``ylabel`` names the quantity (the x axis, since the bars are horizontal)."""
    names, vals = [str(k) for k in values], [float(v) for v in values.values()]
    fig, ax = subplots(figsize=(7.0, 0.9 + 0.3 * len(names)))
    ys = np.arange(len(names))
    ax.barh(ys, vals, color="C0")
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    hi = max([v for v in vals if np.isfinite(v)] + [0.0])
    for y, v in zip(ys, vals):
        ax.text(v + 0.01 * (hi or 1), y, fmt(v), va="center", fontsize=FONT)
    ax.set_xlim(0, (hi or 1) * 1.18)
    ax.set_xlabel(ylabel, fontsize=FONT)
    ax.set_title(title, fontsize=TITLE)
    return finish(fig)


def synthesis_gallery(captions, synthetic: np.ndarray, real: np.ndarray, n: int = 6, scale: float = 1.5):
    """Rows: caption | synthetic image | real rendering of the same scene."""
    n = min(n, len(captions))
    ratios = [1.8, 1, 1]
    width = min(scale * sum(ratios) + 0.3, MAX_WIDTH_IN)
    chars = int(width * ratios[0] / sum(ratios) * 72 / (0.62 * FONT))
    fig, axes = subplots(n, 3, figsize=(width, n * scale + 0.3), squeeze=False, gridspec_kw={"width_ratios": ratios})
    for i in range(n):
        axes[i, 0].text(0, 0.5, wrap_text(captions[i], chars), va="center", fontsize=FONT)
        axes[i, 1].imshow(synthetic[i])
        axes[i, 2].imshow(real[i])
        for ax in axes[i]:
            ax.axis("off")
    axes[0, 1].set_title("synthetic", fontsize=TITLE)
    axes[0, 2].set_title("real render", fontsize=TITLE)
    return finish(fig)


def score_histograms(values: dict, xlabel: str, title: str):
    """Overlaid density histograms of named 1-D arrays, with their means in the legend."""
    fig, ax = subplots(figsize=(6.5, 3.6))
    lo = min(float(np.min(v)) for v in values.values())
    hi = max(float(np.max(v)) for v in values.values())
    bins = np.linspace(lo, hi, 40)
    for name, v in values.items():
        ax.hist(v, bins=bins, density=True, alpha=0.55, label=f"{name} (mean {np.mean(v):.3f})")
    ax.set_xlabel(xlabel, fontsize=FONT)
    ax.set_ylabel("density", fontsize=FONT)
    ax.set_title(title, fontsize=TITLE)
    ax.legend(fontsize=FONT)
    return finish(fig)


def training_curves(history: dict, title: str = "captioner training"):
    """Training loss per step (smoothed) and val CIDEr per epoch."""
    loss = np.asarray(history["loss"], float)
    fig, (a, b) = subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.6))
    a.plot(loss, color="0.7", lw=0.8, label="loss per step")
    if len(loss) >= 20:
        k = max(len(loss) // 50, 5)
        a.plot(np.arange(k - 1, len(loss)), np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
    a.set_xlabel("step", fontsize=FONT)
    a.set_ylabel("cross-entropy", fontsize=FONT)
    a.set_title(wrap_text(title, 50), fontsize=TITLE)
    a.legend(fontsize=FONT)
    steps, cider = history.get("epoch_step", []), np.asarray(history.get("val_cider", []), float) * 100
    b.plot(steps, cider, "o-")
    for x, y in zip(steps, cider):
        b.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=FONT)
    b.set_xlabel("step", fontsize=FONT)
    b.set_ylabel("val CIDEr (x100)", fontsize=FONT)
    b.set_title("validation (picks the checkpoint)", fontsize=TITLE)
    b.set_xlim(0, max(len(loss), max(steps, default=0)) + 1)
    return finish(fig)


def learning_curves(histories: dict, budget: int | None = None, title: str = "learning curves (val CIDEr)"):
    """Val CIDEr per epoch of several runs ``{name: history}``, with the chosen epoch budget as a line."""
    fig, ax = subplots(1, 1, figsize=(MAX_WIDTH_IN, 3.8))
    for name, h in histories.items():
        cider = np.asarray(h["val_cider"], float) * 100
        ax.plot(np.arange(1, len(cider) + 1), cider, "o-", ms=3, label=name)
    if budget is not None:
        ax.axvline(budget, color="0.4", ls="--", lw=1)
        ax.annotate(f"budget: {budget} epochs", (budget, ax.get_ylim()[0]), textcoords="offset points",
                    xytext=(4, 6), fontsize=FONT)
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("val CIDEr (x100)", fontsize=FONT)
    ax.set_title(wrap_text(title, 80), fontsize=TITLE)
    ax.legend(fontsize=FONT, ncol=2)
    return finish(fig)


def rl_curves(history: dict, title: str = "CMSA stage 2: self-critical RL"):
    """Rewards per RL step (sample means, smoothed: total, CLIP, fluency) and val CIDEr per RL epoch, with the
    stage-1 checkpoint's val CIDEr as a dashed line."""
    fig, (a, b) = subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.6))
    for key, label in (("reward", "reward"), ("reward_clip", "CLIP-S"), ("reward_fluency", "fluency (D)")):
        y = np.asarray(history.get(key, []), float)
        if len(y) and np.any(y):
            k = max(1, min(10, len(y) // 5))
            a.plot(np.arange(k - 1, len(y)), np.convolve(y, np.ones(k) / k, mode="valid"), label=label)
    a.set_xlabel("RL step", fontsize=FONT)
    a.set_ylabel("mean reward of the samples", fontsize=FONT)
    a.set_title(wrap_text(title, 50), fontsize=TITLE)
    a.legend(fontsize=FONT)
    steps, cider = history.get("epoch_step", []), np.asarray(history.get("val_cider", []), float) * 100
    b.plot(steps, cider, "o-", label="RL epochs")
    init = history.get("init_val_cider")
    if init:
        b.axhline(100 * max(init), ls="--", color="0.4", label="stage 1 (best)")
    b.set_xlabel("RL step", fontsize=FONT)
    b.set_ylabel("val CIDEr (x100)", fontsize=FONT)
    b.set_title("validation (picks the checkpoint)", fontsize=TITLE)
    b.legend(fontsize=FONT)
    return finish(fig)


def ablation_bars(agg_rows: list, metrics=("CIDEr", "Bleu_4", "METEOR", "ROUGE_L"), group_key: str = "model"):
    """Horizontal bars (mean ± std over seeds, x100) of each metric per model, one panel per metric."""
    names = [str(r[group_key]) for r in agg_rows]
    cols = 2 if len(metrics) > 1 else 1
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = subplots(rows, cols, figsize=(MAX_WIDTH_IN, rows * (0.8 + 0.32 * len(names))), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    colours = [f"C{i % 10}" for i in range(len(names))]
    ys = np.arange(len(names))
    for ax, m in zip(axes.flat, metrics):
        vals = np.array([r.get(m, np.nan) * 100 for r in agg_rows], float)
        errs = np.array([r.get(m + "_std", 0.0) * 100 for r in agg_rows], float)
        ax.barh(ys, vals, xerr=errs, capsize=3, color=colours)
        ax.set_yticks(ys, names)
        ax.invert_yaxis()
        top = np.nanmax(vals + errs) if np.isfinite(vals).any() else 1.0
        for y, v, e in zip(ys, vals, errs):
            ax.text(v + e + 0.03 * top, y, f"{v:.1f}" + (f" ± {e:.1f}" if e else ""), va="center", fontsize=FONT)
        ax.set_xlim(0, top * 1.35)
        ax.set_title(f"{m} (x100, mean ± std over seeds)", fontsize=TITLE)
    return finish(fig)


def caption_gallery(images: np.ndarray, columns: dict, n: int = 6, scale: float = 1.6):
    """Images with several captions each, two images per row (image | its captions): ``columns`` maps a
    label ("ref", "base", ...) to a list of captions."""
    n = min(n, len(images))
    per_row = 2 if n > 1 else 1
    rows = int(np.ceil(n / per_row))
    width = MAX_WIDTH_IN if per_row == 2 else 5.5
    chars = int(width / per_row * 2.2 / 3.2 * 72 / (0.62 * FONT))      # the text column, in characters
    texts = ["\n".join(wrap_text(f"{k}: {v[i]}", chars) for k, v in columns.items()) for i in range(n)]
    line_in = FONT * 1.25 / 72
    heights = [max(scale, max(t.count("\n") + 1 for t in texts[r * per_row:(r + 1) * per_row]) * line_in + 0.15)
               for r in range(rows)]
    fig, axes = subplots(rows, 2 * per_row, figsize=(width, sum(heights) + 0.2), squeeze=False,
                         gridspec_kw={"width_ratios": [1, 2.2] * per_row, "height_ratios": heights})
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, per_row)
        axes[r, 2 * c].imshow(images[i])
        axes[r, 2 * c + 1].text(0, 0.5, texts[i], va="center", fontsize=FONT)
    return finish(fig)


def faithfulness_sweep(rows: list, references: dict, real_faithfulness: float | None = None,
                       x_key: str = "faithfulness_overall", metric: str = "CIDEr"):
    """Test ``metric`` of each variant against the measured (val) faithfulness of its synthetic images, with
    the text-only and oracle models as horizontal lines and the real renders' faithfulness as a vertical one."""
    fig, ax = subplots(figsize=(8.0, 4.6))
    for i, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        pts = sorted((r[x_key], r[metric] * 100, r["strength"]) for r in rows if r["model"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i % 10}", label=name)
        if i == 0:
            for x, y, s in pts:
                ax.annotate("T2I" if s >= 1 else f"s={s:g}", (x, y), textcoords="offset points", xytext=(0, -15),
                            ha="center", fontsize=FONT, color="0.3")
    for j, (name, val) in enumerate(sorted(references.items())):
        ax.axhline(val * 100, ls="--", color=("0.2", "0.55")[j % 2], label=f"{name} (same size and seed)")
    if real_faithfulness is not None:
        ax.axvline(real_faithfulness, ls=":", color="0.5", label="real renders' faithfulness")
    ax.set_xlabel("faithfulness of the training images (GenEval-like overall, val)", fontsize=FONT)
    ax.set_ylabel(f"test {metric} (x100)", fontsize=FONT)
    ax.legend(fontsize=FONT, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("captioning quality vs faithfulness of the synthetic images", fontsize=TITLE)
    return finish(fig)


def faithfulness_profile(profiles: dict, categories=None, title: str = "faithfulness profile (GenEval-like)"):
    """Grouped horizontal bars: one group per category, one bar per image set (``{name: {category: rate}}``),
    each bar labelled with its value."""
    names = list(profiles)
    categories = list(categories or next(iter(profiles.values())).keys())
    fig, ax = subplots(figsize=(8.0, 1.2 + 0.3 * len(categories) * len(names)))
    h = 0.8 / len(names)
    for j, name in enumerate(names):
        ys = np.arange(len(categories)) + j * h
        vals = [profiles[name].get(c, np.nan) for c in categories]
        ax.barh(ys, vals, height=h, color=f"C{j % 10}", label=name)
        for y, v in zip(ys, vals):
            if np.isfinite(v):
                ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=FONT)
    ax.set_yticks(np.arange(len(categories)) + 0.4 - h / 2, [c.replace("_", " ") for c in categories])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("share of images that pass", fontsize=FONT)
    fig.legend(fontsize=FONT, loc="outside lower center", ncol=min(3, len(names)))
    ax.set_title(title, fontsize=TITLE)
    return finish(fig)


def leaderboard_bars(board: list, metric: str = "CIDEr", title: str = "sandbox leaderboard"):
    """Horizontal bars (mean ± std over seeds) of ``metric`` per method, coloured by table block (with a key);
    ``board`` is ``ablation.leaderboard`` output (values already x100)."""
    from matplotlib.patches import Patch

    from ..evaluation.metrics import mean_std
    names = [r["method"] for r in board]
    blocks = list(dict.fromkeys(r["block"] for r in board))
    colour = {b: f"C{i}" for i, b in enumerate(blocks)}
    fig, ax = subplots(figsize=(MAX_WIDTH_IN, 1.2 + 0.32 * len(names)))
    ys = np.arange(len(names))
    vals = np.array([r[metric] for r in board], float)
    errs = np.array([r.get(metric + "_std", 0.0) for r in board], float)
    ax.barh(ys, vals, xerr=errs, capsize=3, color=[colour[r["block"]] for r in board])
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    top = np.nanmax(vals + errs) if np.isfinite(vals).any() else 1.0
    for y, v, e, r in zip(ys, vals, errs, board):
        ax.text(v + e + 0.02 * top, y, f"{mean_std(v, e, r['seeds'])} ({r['seeds']})", va="center", fontsize=FONT)
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel(f"test {metric} (x100, mean ± std over seeds; seeds in brackets)", fontsize=FONT)
    fig.legend(handles=[Patch(color=colour[b], label=b) for b in blocks], fontsize=FONT, loc="outside lower center",
               ncol=len(blocks))
    ax.set_title(title, fontsize=TITLE)
    return finish(fig)
