"""Pure feature operations shared by the seed methods (batched, device-agnostic, seeded by an explicit
``torch.Generator`` where random).

* ``noise_injection``     CapDec / MacCap: normalise, add N(0, v I), renormalise
* ``support_projection``  DeCap / SynTIC Eq. 3: a softmax(cos / tau)-weighted mix of a normalised memory
* ``mean_alignment``      Unsupervised-ClipCap / "Mind the Gap": shift one modality's mean onto the other's
* ``rotation_alignment``  Unsupervised-ClipCap §5: map principal directions of images onto those of texts
* ``ot_barycentric``      Unsupervised-ClipCap §5: optimal transport (uniform marginals), barycentric map
* ``caption_cosine``      MacCap's rerank / CMSA's CLIP reward: cos(image, CLIP text embedding of a caption)
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def noise_injection(x: torch.Tensor, variance: float, renormalize: bool = True,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """x [B, D] -> normalise(normalise(x) + N(0, variance I)) (CapDec's ``noise_injection``; ``renormalize=False``
    leaves the noisy vector unnormalised). The expected cosine to the clean vector is ~1 / sqrt(1 + D variance)."""
    if variance < 0:
        raise ValueError(f"variance={variance} must be >= 0 (a per-dimension variance, e.g. CapDec's 0.016).")
    x = F.normalize(x.float(), dim=-1)
    if variance > 0:
        noise = torch.randn(x.shape, generator=generator, device=x.device if generator is None else "cpu")
        x = x + noise.to(x.device) * variance ** 0.5
    return F.normalize(x, dim=-1) if renormalize else x


def support_projection(query: torch.Tensor, memory: torch.Tensor, tau: float, exclude=None,
                       chunk: int = 4096) -> torch.Tensor:
    """query [B, D], memory [M, D] -> renormalised sum_j softmax_j(cos(q, m_j) / tau) m_j  [B, D].

    ``memory`` is L2-normalised here. ``exclude``: None, a LongTensor [B] (memory row i is left out for query
    i: leave-one-out) or a bool mask [B, M] (True = left out). tau -> 0 gives the nearest memory entry."""
    if tau <= 0:
        raise ValueError(f"tau={tau} must be > 0 (e.g. CLIP's 1/100); use a small value for nearest neighbour.")
    q = F.normalize(query.float(), dim=-1)
    mem = F.normalize(memory.float(), dim=-1)
    out = []
    for s in range(0, len(q), chunk):
        sims = q[s:s + chunk] @ mem.T                                            # [b, M]
        if exclude is not None:
            if exclude.dtype == torch.bool:
                mask = exclude[s:s + chunk]
            else:
                mask = torch.zeros_like(sims, dtype=torch.bool)
                mask[torch.arange(len(sims)), exclude[s:s + chunk]] = True
            sims = sims.masked_fill(mask, float("-inf"))
        out.append(torch.softmax(sims / tau, dim=-1) @ mem)
    return F.normalize(torch.cat(out), dim=-1)


def modality_means(images: torch.Tensor, texts: torch.Tensor) -> tuple:
    """Means of the normalised features of two *unpaired* sets: (mean image [D], mean text [D])."""
    return F.normalize(images.float(), dim=-1).mean(0), F.normalize(texts.float(), dim=-1).mean(0)


def mean_alignment(x: torch.Tensor, mean_from: torch.Tensor, mean_to: torch.Tensor) -> torch.Tensor:
    """x [B, D] -> normalise(normalise(x) - mean_from + mean_to): the image mean moved onto the text mean."""
    return F.normalize(F.normalize(x.float(), dim=-1) - mean_from + mean_to, dim=-1)


def rotation_alignment(img_fit: torch.Tensor, txt_fit: torch.Tensor) -> tuple:
    """Fit on unpaired sets: principal directions V_I, V_T (SVD of the centred, normalised features, signs chosen
    so that <v_I^k, v_T^k> >= 0). Returns (R [D, D], mean image, mean text); apply with ``apply_rotation``."""
    i = F.normalize(img_fit.float(), dim=-1)
    t = F.normalize(txt_fit.float(), dim=-1)
    mi, mt = i.mean(0), t.mean(0)
    _, _, vi = torch.linalg.svd(i - mi, full_matrices=False)                     # rows: directions
    _, _, vt = torch.linalg.svd(t - mt, full_matrices=False)
    k = min(len(vi), len(vt))
    vi, vt = vi[:k], vt[:k]
    sign = torch.sign((vi * vt).sum(-1))
    sign[sign == 0] = 1
    return vi.T @ (vt * sign[:, None]), mi, mt


def apply_rotation(x: torch.Tensor, rotation: tuple) -> torch.Tensor:
    """x [B, D] -> normalise((normalise(x) - mean image) R + mean text)."""
    r, mi, mt = rotation
    return F.normalize((F.normalize(x.float(), dim=-1) - mi) @ r + mt, dim=-1)


def ot_barycentric(x: torch.Tensor, targets: torch.Tensor, reg: float = 0.05, iters: int = 200) -> torch.Tensor:
    """Entropic optimal transport between x [B, D] and targets [M, D] (uniform marginals, squared L2 cost on
    normalised features; Sinkhorn), then the barycentric map x_i -> B * sum_j T_ij t_j, renormalised."""
    a = F.normalize(x.float(), dim=-1)
    b = F.normalize(targets.float(), dim=-1)
    cost = torch.cdist(a, b) ** 2
    log_k = -cost / reg
    log_u = torch.zeros(len(a))
    log_v = torch.zeros(len(b))
    log_mu, log_nu = -torch.log(torch.tensor(float(len(a)))), -torch.log(torch.tensor(float(len(b))))
    for _ in range(iters):
        log_u = log_mu - torch.logsumexp(log_k + log_v[None, :], dim=1)
        log_v = log_nu - torch.logsumexp(log_k + log_u[:, None], dim=0)
    plan = torch.exp(log_u[:, None] + log_k + log_v[None, :])                    # [B, M], rows sum to 1/B
    return F.normalize(len(a) * plan @ b, dim=-1)


@torch.no_grad()
def caption_cosine(clip, image_global: torch.Tensor, captions: list, batch_size: int = 1024) -> torch.Tensor:
    """image_global [B, D], ``captions`` [B] (one per image) -> cos(image, CLIP text embedding) [B]."""
    if len(captions) != len(image_global):
        raise ValueError(f"captions has {len(captions)} entries for {len(image_global)} images; one per image.")
    text = clip.text_features([c or "." for c in captions], batch_size=batch_size)
    return F.cosine_similarity(image_global.float().cpu(), text.float(), dim=-1)
