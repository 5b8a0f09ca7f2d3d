"""The modality gap of a CLIP model: measurements behind notebook 01.

All functions take L2-normalised features: images ``img`` [N, D] and their paired captions ``txt``
[N, D] (row i of each is a pair), and return plain floats/arrays so the notebook only plots.

* ``cosine_distributions``: paired vs unpaired image-text cosines.
* ``centroid_gap``: the gap vector (image centroid - text centroid) and its length.
* ``linear_separability``: held-out accuracy of a logistic regression telling images from texts.
* ``subregion_analysis``: MacCap's observation that sub-region features can sit closer to the caption.
* ``difference_gaussian``: per-dimension image-text differences and the fitted zero-mean Gaussian,
  the noise scale CapDec (variance 0.016) and MacCap inject during text-only training.
* ``mean_shift``: Unsupervised-ClipCap's correction, image - mean(image) + mean(text).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _check_pairs(img: torch.Tensor, txt: torch.Tensor) -> None:
    if img.ndim != 2 or img.shape != txt.shape:
        raise ValueError(f"img and txt must both be [N, D] with the same shape; got {tuple(img.shape)} "
                         f"and {tuple(txt.shape)}.")


def cosine_distributions(img: torch.Tensor, txt: torch.Tensor) -> dict:
    """Paired cosines (diagonal, [N]) and unpaired cosines (all off-diagonal, [N*(N-1)])."""
    _check_pairs(img, txt)
    sim = img @ txt.T
    n = sim.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    paired, unpaired = sim.diagonal().numpy(), sim[off].numpy()
    return {"paired": paired, "unpaired": unpaired, "paired_mean": float(paired.mean()),
            "unpaired_mean": float(unpaired.mean()),
            "image_image_mean": float((img @ img.T)[off].mean()), "text_text_mean": float((txt @ txt.T)[off].mean())}


def own_caption_wins(dist: dict) -> float:
    """Share of (image, other caption) comparisons in which the image's own caption is the closer one: the
    retrieval AUC of ``cosine_distributions``' output. It says whether captions match their own images better in
    a CLIP whose cosines all sit in a narrow band, where the mean margin is small (the sandbox CLIP's 0.02, a real
    CLIP's about 0.15) whatever the ranking."""
    paired = np.asarray(dist["paired"])
    n = len(paired)
    if n < 2:
        raise ValueError(f"dist holds {n} pair(s); own_caption_wins needs at least 2 images.")
    return float((paired[:, None] > np.asarray(dist["unpaired"]).reshape(n, n - 1)).mean())


def centroid_gap(img: torch.Tensor, txt: torch.Tensor) -> dict:
    """Gap vector = mean(image) - mean(text) [D]; its L2 norm is the centroid distance."""
    gap = img.mean(0) - txt.mean(0)
    return {"gap": gap, "centroid_distance": float(gap.norm()),
            "gap_cos_to_image_centroid": float(F.cosine_similarity(gap, img.mean(0), dim=0))}


def linear_separability(img: torch.Tensor, txt: torch.Tensor, seed: int = 0) -> dict:
    """Held-out accuracy of a linear probe (standardised features + logistic regression) telling the two sets
    apart (50/50 split). Standardising matters: in a tight cone the differences are small in absolute terms
    and an unscaled, L2-regularised probe underfits them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x = torch.cat([img, txt]).numpy()
    y = np.r_[np.zeros(len(img)), np.ones(len(txt))]
    idx = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[idx[:half]], y[idx[:half]])
    return {"accuracy": float(clf.score(x[idx[half:]], y[idx[half:]])), "n_test": len(x) - half}


def subregion_features(patches: torch.Tensor, grid: int, windows=(2, 4)) -> torch.Tensor:
    """Mean-pool head-mapped patches [N, g*g, D] over every w x w window (stride 1): [N, R, D], normalised."""
    n, p, d = patches.shape
    if p != grid * grid:
        raise ValueError(f"patches hold {p} tokens, which is not grid*grid for grid={grid}.")
    x = patches.transpose(1, 2).reshape(n, d, grid, grid)
    regions = [F.avg_pool2d(x, w, stride=1).flatten(2) for w in windows if w <= grid]
    return F.normalize(torch.cat(regions, dim=2).transpose(1, 2), dim=-1)


def subregion_analysis(img: torch.Tensor, patches: torch.Tensor, txt: torch.Tensor, grid: int,
                       windows=(2, 4), top: int = 4, weight: float = 1.0) -> dict:
    """MacCap's analysis.

    * ``share_subregion_closer``: share of pairs where some sub-region feature is closer to the caption
      than the global feature (an oracle max over regions).
    * ``global_sim`` vs ``global_plus_subregion_sim``: mean caption cosine of the global feature and of
      ``normalise(global + weight * region)`` averaged over the ``top`` regions most similar to the
      global feature (chosen without looking at the caption, as at inference).
    """
    _check_pairs(img, txt)
    regions = subregion_features(patches, grid, windows)                    # [N, R, D]
    g_sim = (img * txt).sum(-1)                                              # [N]
    r_sim = torch.einsum("nrd,nd->nr", regions, txt)                         # [N, R]
    k = min(top, regions.shape[1])
    pick = torch.einsum("nrd,nd->nr", regions, img).topk(k, dim=1).indices   # [N, k]
    chosen = torch.gather(regions, 1, pick[..., None].expand(-1, -1, regions.shape[-1]))
    mixed = F.normalize(img[:, None] + weight * chosen, dim=-1)              # [N, k, D]
    mixed_sim = torch.einsum("nkd,nd->nk", mixed, txt).mean(1)
    return {"share_subregion_closer": float((r_sim.max(1).values > g_sim).float().mean()),
            "global_sim": float(g_sim.mean()), "global_plus_subregion_sim": float(mixed_sim.mean()),
            "best_region_sim": float(r_sim.max(1).values.mean()), "n_regions": int(regions.shape[1])}


def difference_gaussian(img: torch.Tensor, txt: torch.Tensor, capdec_variance: float = 0.016) -> dict:
    """Per-dimension paired differences (image - text), flattened, and the zero-mean Gaussian fitted to them.

    The maximum-likelihood sigma of a zero-mean Gaussian is sqrt(mean(d^2)). CapDec injects
    N(0, variance=0.016), i.e. sigma = sqrt(0.016) ~= 0.126.
    """
    _check_pairs(img, txt)
    d = (img - txt).flatten().numpy()
    sigma = float(np.sqrt(np.mean(d ** 2)))
    return {"diffs": d, "sigma": sigma, "variance": sigma ** 2, "mean": float(d.mean()),
            "capdec_variance": capdec_variance, "capdec_sigma": math.sqrt(capdec_variance),
            "sigma_ratio_to_capdec": sigma / math.sqrt(capdec_variance)}


def mean_shift(img: torch.Tensor, txt: torch.Tensor) -> dict:
    """Unsupervised-ClipCap: shift images by mean(text) - mean(image), renormalise; paired cosine before/after."""
    _check_pairs(img, txt)
    shifted = F.normalize(img - img.mean(0) + txt.mean(0), dim=-1)
    before, after = (img * txt).sum(-1), (shifted * txt).sum(-1)
    return {"shifted": shifted, "paired_before": float(before.mean()), "paired_after": float(after.mean()),
            "centroid_distance_after": float((shifted.mean(0) - txt.mean(0)).norm()),
            "retrieval_top1_before": _top1(img, txt), "retrieval_top1_after": _top1(shifted, txt)}


def _top1(img: torch.Tensor, txt: torch.Tensor) -> float:
    """Image-to-text retrieval accuracy (is the paired caption the nearest?)."""
    return float(((img @ txt.T).argmax(1) == torch.arange(len(img))).float().mean())


def umap_embedding(img: torch.Tensor, txt: torch.Tensor, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP of images and texts together: [2N, 2] (first N rows are images)."""
    import umap
    x = torch.cat([img, txt]).numpy()
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed, metric="cosine")
    return reducer.fit_transform(x)


def gap_summary(img: torch.Tensor, txt: torch.Tensor, seed: int = 0) -> dict:
    """The calibration numbers of a CLIP's gap on paired [N, D] features (compare with ``REAL_CLIP``)."""
    dist = cosine_distributions(img, txt)
    fit = difference_gaussian(img, txt)
    return {"paired_cos": dist["paired_mean"], "unpaired_cos": dist["unpaired_mean"],
            "image_image_cos": dist["image_image_mean"], "text_text_cos": dist["text_text_mean"],
            "centroid_distance": centroid_gap(img, txt)["centroid_distance"],
            "separability": linear_separability(img, txt, seed=seed)["accuracy"],
            "sigma_per_dim": fit["sigma"], "sigma_times_sqrt_d": fit["sigma"] * math.sqrt(img.shape[1]),
            "paired_cos_after_mean_shift": mean_shift(img, txt)["paired_after"], "n": len(img),
            **geometry(img, txt)}


def geometry(img: torch.Tensor, txt: torch.Tensor) -> dict:
    """The CLIP geometry the carry-over rules depend on: the spread of paired cosines (std, min, max) and the
    paired-unpaired margin (mean paired minus mean unpaired cosine)."""
    dist = cosine_distributions(img, txt)
    paired = dist["paired"]
    return {"paired_cos_std": float(paired.std()), "paired_cos_min": float(paired.min()),
            "paired_cos_max": float(paired.max()), "paired_unpaired_margin": dist["paired_mean"] - dist["unpaired_mean"]}


def token_closer_share(img: torch.Tensor, patches: torch.Tensor, txt: torch.Tensor) -> dict:
    """MacCap's premise measured its way: the share of images one of whose last-layer patch tokens (head-mapped,
    each a sub-region) is closer to the caption than the global feature (MacCap: 33% on MSCOCO val, ViT-B/32).
    img [N, D], patches [N, n, D], txt [N, D], all normalised."""
    _check_pairs(img, txt)
    tok = F.normalize(patches.float(), dim=-1) @ txt.unsqueeze(-1)                   # [N, n, 1]
    best = tok.squeeze(-1).max(dim=1).values
    glob = (img * txt).sum(-1)
    return {"share_token_closer": float((best > glob).float().mean()), "mean_best_token_cos": float(best.mean()),
            "mean_global_cos": float(glob.mean())}


# Published reference values of real CLIPs that the sandbox CLIP is calibrated against: paired cosine of
# ViT-B/32 on MSCOCO val (MacCap Table 1: mean 0.330, min 0.228, max 0.446), centroid distance ("Mind the Gap",
# Liang et al. 2022), OpenAI CLIP's final logit scale, and the per-dimension std of paired image - text
# differences those imply for unit vectors, sqrt((2 - 2 cos) / D) (CapDec's noise std 0.1265 is ~2.4 times it).
_B32_PAIRED = 0.330
REAL_CLIP = {"paired_cos": 0.3, "centroid_distance": 0.82, "separability": 1.0,
             "paired_cos_b32_mscoco": _B32_PAIRED, "paired_cos_min": 0.228, "paired_cos_max": 0.446,
             "sigma_per_dim": math.sqrt((2 - 2 * _B32_PAIRED) / 512),
             "sigma_times_sqrt_d": math.sqrt(2 - 2 * _B32_PAIRED), "share_token_closer": 0.33,
             "capdec_noise_sigma": math.sqrt(0.016), "logit_scale": 100.0}


def encode_pairs(clip, images, captions, progress: bool = True) -> dict:
    """Normalised features of image-caption pairs: ``img`` [N, D], ``patches`` [N, n, D], ``txt`` [N, D]."""
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions; they must pair up.")
    f = clip.image_features(images, progress=progress)
    return {"img": F.normalize(f.global_.float(), dim=-1), "patches": F.normalize(f.patches.float(), dim=-1),
            "txt": F.normalize(clip.text_features(captions, progress=progress).float(), dim=-1),
            "grid": clip.cfg.pool_grid or clip.grid}
