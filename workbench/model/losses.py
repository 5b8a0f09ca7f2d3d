"""Caption losses: (label-smoothed) cross-entropy and PCM-Net's CLIP-weighted cross-entropy (CXE).

CXE (Eq. 11) weights each sentence's token losses by ``min(1, w * cos(g_I, g_S))`` (cos clipped at 0),
the CLIP similarity of the synthetic image and its caption, stored by the synthesis engine. With every
weight 1 it is exactly the plain (label-smoothed) cross-entropy, averaged over the non-pad tokens.

The official code also multiplies by a focal-style ``(1 - p_target)^gamma`` term (``GAMMA`` in its loss,
not in the paper); it is here as ``focal_gamma`` (default 0 = off), applied per token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cxe_weights(cos: torch.Tensor, w: float) -> torch.Tensor:
    """[B] sentence weights min(1, w * max(cos, 0))."""
    return (w * cos.float().clamp(min=0)).clamp(max=1.0)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, pad: int, weights: torch.Tensor | None = None,
                 label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> torch.Tensor:
    """logits [B, L, V], targets [B, L] (pad = ignored), weights [B] or None -> mean over non-pad tokens."""
    b, length, v = logits.shape
    token = F.cross_entropy(logits.reshape(-1, v).float(), targets.reshape(-1), ignore_index=pad,
                            label_smoothing=label_smoothing, reduction="none").view(b, length)
    if focal_gamma > 0:
        p = torch.softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        token = token * (1 - p).pow(focal_gamma)
    if weights is not None:
        token = token * weights.view(b, 1).to(token.dtype)
    mask = (targets != pad).to(token.dtype)
    return (token * mask).sum() / mask.sum().clamp(min=1)
