"""Plot functions: each takes plain results and returns a matplotlib Figure; ``save`` writes it.

Figures are written under ``runs/figures`` (or ``$WORKBENCH_RUN_DIR/figures`` in the main job).
"""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np

from .paths import figures_dir


def save(fig, name: str):
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def image_grid(images: np.ndarray, titles=None, cols: int = 8, scale: float = 1.6, fontsize: float = 6):
    """Show uint8 [B, H, W, 3] images in a grid, optional titles (wrapped to the cell width)."""
    import textwrap
    n = len(images)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * scale, rows * scale * (1.5 if titles else 1.0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(images[i])
        if titles:
            ax.set_title("\n".join(textwrap.wrap(titles[i], int(22 * scale / 1.6 * 6 / fontsize))), fontsize=fontsize)
    fig.tight_layout()
    return fig


def cosine_histograms(dist: dict):
    """Paired vs unpaired image-text cosine distributions."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(min(dist["unpaired"].min(), dist["paired"].min()), max(dist["paired"].max(), 0.01), 60)
    ax.hist(dist["unpaired"], bins=bins, density=True, alpha=0.6, label=f"unpaired (mean {dist['unpaired_mean']:.3f})")
    ax.hist(dist["paired"], bins=bins, density=True, alpha=0.6, label=f"paired (mean {dist['paired_mean']:.3f})")
    ax.set_xlabel("cosine(image, text)")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title("Image-text cosine similarity")
    return fig


def difference_histogram(fit: dict):
    """Per-dimension image - text differences with the fitted zero-mean Gaussian and CapDec's noise."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    d = fit["diffs"]
    lim = np.percentile(np.abs(d), 99.5)
    xs = np.linspace(-lim, lim, 400)
    ax.hist(d, bins=120, range=(-lim, lim), density=True, alpha=0.6, label="image - text, per dimension")
    for sigma, label, style in ((fit["sigma"], f"fitted N(0, σ={fit['sigma']:.3f})", "-"),
                                (fit["capdec_sigma"], f"CapDec N(0, σ²={fit['capdec_variance']})", "--")):
        ax.plot(xs, np.exp(-xs ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi)), style, label=label)
    ax.set_xlabel("difference")
    ax.legend(fontsize=8)
    ax.set_title("Per-dimension modality difference")
    return fig


def mean_shift_bars(shift: dict, before_label="raw", after_label="mean-shifted"):
    """Paired cosine and retrieval accuracy before/after Unsupervised-ClipCap's mean shift."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    axes[0].bar([before_label, after_label], [shift["paired_before"], shift["paired_after"]], color=["C0", "C1"])
    axes[0].set_title("mean paired cosine")
    axes[1].bar([before_label, after_label], [shift["retrieval_top1_before"], shift["retrieval_top1_after"]],
                color=["C0", "C1"])
    axes[1].set_title("image→text top-1")
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    return fig


def umap_scatter(points: np.ndarray, n_images: int):
    """UMAP points: the first ``n_images`` rows are images, the rest texts."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(*points[:n_images].T, s=5, alpha=0.6, label="images")
    ax.scatter(*points[n_images:].T, s=5, alpha=0.6, label="captions")
    ax.legend()
    ax.set_title("UMAP of CLIP embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def bar_pair(values: dict, title: str, ylabel: str = ""):
    """A small bar chart of named values."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(list(values), list(values.values()), color=[f"C{i}" for i in range(len(values))])
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    for i, v in enumerate(values.values()):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    return fig


def synthesis_gallery(captions, synthetic: np.ndarray, real: np.ndarray, n: int = 6, scale: float = 1.8):
    """Rows: caption | synthetic image | real rendering of the same scene."""
    import textwrap
    n = min(n, len(captions))
    fig, axes = plt.subplots(n, 3, figsize=(3 * scale * 1.4, n * scale), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1, 1]})
    for i in range(n):
        axes[i, 0].text(0, 0.5, "\n".join(textwrap.wrap(captions[i], 34)), va="center", fontsize=8)
        axes[i, 1].imshow(synthetic[i])
        axes[i, 2].imshow(real[i])
        for ax in axes[i]:
            ax.axis("off")
    axes[0, 1].set_title("synthetic", fontsize=9)
    axes[0, 2].set_title("real render", fontsize=9)
    fig.tight_layout()
    return fig


def score_histograms(values: dict, xlabel: str, title: str):
    """Overlaid density histograms of named 1-D arrays, with their means in the legend."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lo = min(float(np.min(v)) for v in values.values())
    hi = max(float(np.max(v)) for v in values.values())
    bins = np.linspace(lo, hi, 40)
    for name, v in values.items():
        ax.hist(v, bins=bins, density=True, alpha=0.55, label=f"{name} (mean {np.mean(v):.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return fig


def training_curves(history: dict, title: str = "captioner training"):
    """Training loss per step (smoothed) and val CIDEr per epoch."""
    loss = np.asarray(history["loss"], float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(loss, color="0.7", lw=0.6, label="loss")
    if len(loss) >= 20:
        k = max(len(loss) // 50, 5)
        a.plot(np.arange(k - 1, len(loss)), np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
    a.set_xlabel("step")
    a.set_title(title, fontsize=9)
    a.legend(fontsize=7)
    b.plot(history.get("epoch_step", []), np.asarray(history.get("val_cider", []), float) * 100, "o-")
    b.set_xlabel("step")
    b.set_ylabel("val CIDEr")
    b.set_title("validation (picks the checkpoint)", fontsize=9)
    fig.tight_layout()
    return fig


def ablation_bars(agg_rows: list, metrics=("CIDEr", "Bleu_4", "METEOR", "ROUGE_L"), group_key: str = "model"):
    """Grouped bars (mean ± std over seeds) of each metric per model."""
    names = [r[group_key] for r in agg_rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
    for ax, m in zip(np.atleast_1d(axes), metrics):
        vals = [r.get(m, np.nan) * 100 for r in agg_rows]
        errs = [r.get(m + "_std", 0.0) * 100 for r in agg_rows]
        ax.bar(range(len(names)), vals, yerr=errs, capsize=3, color=plt.cm.tab10(np.arange(len(names))))
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(m, fontsize=9)
    fig.tight_layout()
    return fig


def caption_gallery(images: np.ndarray, columns: dict, n: int = 6, scale: float = 2.0):
    """Images with several captions each: ``columns`` maps a label ("reference", "base", ...) to a list."""
    import textwrap
    n = min(n, len(images))
    fig, axes = plt.subplots(1, n, figsize=(n * scale, scale * 2.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i])
        ax.axis("off")
        text = "\n".join(f"{k}: " + "\n".join(textwrap.wrap(v[i], 26)) for k, v in columns.items())
        ax.set_title(text, fontsize=5.5, loc="left")
    fig.tight_layout()
    return fig


def save_to(fig, path) -> "Path":
    """Save ``fig`` at an explicit path (a run's own folder)."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def faithfulness_sweep(rows: list, references: dict, real_faithfulness: float | None = None,
                       x_key: str = "faithfulness_overall", metric: str = "CIDEr"):
    """Test ``metric`` of each variant against the measured (val) faithfulness of its synthetic images, with
    the text-only and oracle models as horizontal lines and the real renders' faithfulness as a vertical one."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        pts = sorted((r[x_key], r[metric] * 100, r["strength"]) for r in rows if r["model"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=plt.cm.tab10(i), label=name)
        if i == 0:
            for x, y, s in pts:
                ax.annotate("T2I" if s >= 1 else f"s={s:g}", (x, y), textcoords="offset points", xytext=(0, -14),
                            ha="center", fontsize=9, color="0.3")
    for j, (name, val) in enumerate(sorted(references.items())):
        ax.axhline(val * 100, ls="--", color=("0.2", "0.55")[j % 2], label=f"{name} (same size and seed)")
    if real_faithfulness is not None:
        ax.axvline(real_faithfulness, ls=":", color="0.5", label="real renders' faithfulness")
    ax.set_xlabel("faithfulness of the training images (GenEval-like overall, val)", fontsize=10)
    ax.set_ylabel(f"test {metric} (x100)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=9, loc="best")
    ax.set_title("captioning quality vs faithfulness of the synthetic images", fontsize=11)
    fig.tight_layout()
    return fig


def faithfulness_profile(profiles: dict, categories=None, title: str = "faithfulness profile (GenEval-like)"):
    """Grouped horizontal bars: one group per category, one bar per image set (``{name: {category: rate}}``),
    each bar labelled with its value."""
    names = list(profiles)
    categories = list(categories or next(iter(profiles.values())).keys())
    fig, ax = plt.subplots(figsize=(7.0, 0.5 + 0.32 * len(categories) * len(names)))
    h = 0.8 / len(names)
    for j, name in enumerate(names):
        ys = np.arange(len(categories)) + j * h
        vals = [profiles[name].get(c, np.nan) for c in categories]
        ax.barh(ys, vals, height=h, color=plt.cm.tab10(j), label=name)
        for y, v in zip(ys, vals):
            if np.isfinite(v):
                ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=9)
    ax.set_yticks(np.arange(len(categories)) + 0.4 - h / 2, [c.replace("_", " ") for c in categories], fontsize=10)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("share of images that pass", fontsize=10)
    ax.legend(fontsize=9, loc="lower right")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig
