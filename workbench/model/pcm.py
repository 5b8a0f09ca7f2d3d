"""Patch-wise cross-modal feature mix-up (PCM), as pure batched tensor functions.

Following PCM-Net (Eq. 1-3) and its official behaviour:

1. salient concepts: ``softmax_c(cos(g_I, c) / T)`` over the concept bank, top-K; concepts whose
   probability is not above ``concept_threshold`` are masked out (official ``THRES``, 0 by default);
2. affinity ``A[b, j, k] = cos(v'_j, c_k)`` between head-mapped patches ``v'`` and the K concepts;
3. textual patch map ``v^t_j = sum_k softmax_k(A[j, k] / tau) c_k``;
4. selection of the patches to mix, either
   * ``"pair"`` (official ``REPLACE_TYPE='top'``): the top-M (patch, concept) pairs by affinity A (the
     official code ranks ``softmax over all pairs(A / tau)``, the same order in exact arithmetic; ranking A
     itself keeps it when a small tau underflows the softmax to zeros); a patch is selected when any of its
     pairs is, so at most M patches are (fewer when two pairs share a patch), or
   * ``"patch"``: the M patches with the highest ``max_k A[j, k]``: exactly M patches;
5. training: the selected visual patches are *replaced* by their textual features;
   inference (real images): all visual patches are kept and the selected textual patches are
   *appended* (``N + M`` tokens), each with token type 1 and the position of the patch it came from,
   plus a validity mask for the slots the ``"pair"`` rule leaves empty.

Shapes: B images, N patches, D joint CLIP width, C concepts in the bank, K salient concepts, M mixed.
The functions work on any feature width for the mixing step (``mix_*`` take the tensors to mix).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..config import PCMConfig


@dataclass
class Concepts:
    index: torch.Tensor        # [B, K] long: rows of the concept bank
    prob: torch.Tensor         # [B, K]: softmax probability over the whole bank
    mask: torch.Tensor         # [B, K] bool: prob > threshold
    embed: torch.Tensor        # [B, K, D]: the (unnormalised) concept embeddings, zeroed where masked


@dataclass
class PCMResult:
    concepts: Concepts
    affinity: torch.Tensor     # [B, N, K] cosine between head-mapped patches and concepts (Eq. 2)
    weights: torch.Tensor      # [B, N, K] softmax_k(A / tau) (Eq. 3); rows sum to 1
    textual: torch.Tensor      # [B, N, D] textual patch map (Eq. 3)
    selected: torch.Tensor     # [B, N] bool: the patches mixed (replaced in training, appended at inference)
    order: torch.Tensor        # [B, M] long: selected patch indices, most related first (-1 = empty slot)

    @property
    def grid(self) -> int:
        """Side of the (square) patch grid: sqrt(N)."""
        return int(round(self.affinity.shape[1] ** 0.5))


def check_temperature(name: str, value) -> None:
    """A softmax temperature must be a finite number > 0 (tau = 0 divides by zero; tau < 0 inverts the order)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0 (e.g. 0.01, PCM-Net's default); a softmax "
                         "temperature of 0 divides by zero and a negative one inverts the ranking.")


def salient_concepts(global_: torch.Tensor, bank: torch.Tensor, k: int, temperature: float = 0.01,
                     threshold: float = 0.0) -> Concepts:
    """Eq. 1: global [B, D] vs bank [C, D] -> the top-K concepts per image."""
    check_temperature("temperature", temperature)
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the bank size {bank.shape[0]}; lower K or add concepts.")
    sims = F.normalize(global_.float(), dim=-1) @ F.normalize(bank.float(), dim=-1).T     # [B, C]
    prob, index = torch.softmax(sims / temperature, dim=-1).topk(k, dim=-1)                 # [B, K]
    mask = prob > threshold
    embed = bank.float()[index] * mask.unsqueeze(-1)                                        # [B, K, D]
    return Concepts(index, prob, mask, embed)


def patch_affinity(patches: torch.Tensor, concept_embed: torch.Tensor) -> torch.Tensor:
    """Eq. 2: patches [B, N, D], concepts [B, K, D] -> cosine affinity [B, N, K] (0 for zeroed concepts)."""
    p = patches.float() / (patches.float().norm(dim=-1, keepdim=True) + 1e-9)
    c = concept_embed / (concept_embed.norm(dim=-1, keepdim=True) + 1e-9)
    return torch.einsum("bnd,bkd->bnk", p, c)


def textual_patches(affinity: torch.Tensor, concept_embed: torch.Tensor, tau: float) -> tuple:
    """Eq. 3: weights softmax_k(A / tau) [B, N, K] and textual features [B, N, D]."""
    check_temperature("tau", tau)
    weights = torch.softmax(affinity / tau, dim=-1)
    return weights, torch.einsum("bnk,bkd->bnd", weights, concept_embed)


def select_patches(affinity: torch.Tensor, concept_mask: torch.Tensor, m: int, rule: str = "pair") -> tuple:
    """Which patches to mix: ``selected`` [B, N] bool and ``order`` [B, M] (indices, -1 = empty slot)."""
    b, n, k = affinity.shape
    if not 0 <= m <= n:
        raise ValueError(f"m={m} must be between 0 and the number of patches {n}.")
    selected = torch.zeros(b, n, dtype=torch.bool, device=affinity.device)
    order = torch.full((b, m), -1, dtype=torch.long, device=affinity.device)
    if m == 0:
        return selected, order
    masked = affinity * concept_mask.unsqueeze(1)                                           # [B, N, K]
    if rule == "patch":
        score, idx = masked.max(dim=-1).values.topk(m, dim=-1)                              # [B, M]
        return selected.scatter(1, idx, True), idx
    if rule != "pair":
        raise ValueError(f"rule={rule!r} is not one of ('pair', 'patch').")
    # ranked on A itself: the official softmax over all pairs (A / tau) has the same order in exact arithmetic but
    # underflows to ties at small tau (then topk returns arbitrary patches)
    _, pair_idx = masked.reshape(b, -1).topk(m, dim=-1)                                     # [B, M] over N*K
    patch_idx = pair_idx // k                                                               # rank order
    selected = selected.scatter(1, patch_idx, True)
    for i in range(b):                  # first occurrence of each patch, most related first; -1 pads
        seen = list(dict.fromkeys(patch_idx[i].tolist()))
        order[i, :len(seen)] = torch.tensor(seen, device=affinity.device)
    return selected, order


def pcm(global_: torch.Tensor, patches: torch.Tensor, bank: torch.Tensor, cfg: PCMConfig) -> PCMResult:
    """Everything PCM computes for a batch: global [B, D], head-mapped patches [B, N, D], bank [C, D]."""
    if patches.shape[-1] != bank.shape[-1] or global_.shape[-1] != bank.shape[-1]:
        raise ValueError(f"global_ {tuple(global_.shape)}, patches {tuple(patches.shape)} and bank "
                         f"{tuple(bank.shape)} must share the joint width D; pass head-mapped patches.")
    concepts = salient_concepts(global_, bank, cfg.k, cfg.concept_temperature, cfg.concept_threshold)
    affinity = patch_affinity(patches, concepts.embed)
    weights, textual = textual_patches(affinity, concepts.embed, cfg.tau)
    selected, order = select_patches(affinity, concepts.mask, cfg.m, cfg.selection)
    return PCMResult(concepts, affinity, weights, textual, selected, order)


def mix_train(visual: torch.Tensor, textual: torch.Tensor, selected: torch.Tensor) -> tuple:
    """Training mix-up: visual [B, N, W] with selected patches replaced by textual [B, N, W].

    Returns (tokens [B, N, W], token_type [B, N] long: 1 where replaced)."""
    sel = selected.unsqueeze(-1)
    return torch.where(sel, textual, visual), selected.long()


def mix_inference(visual: torch.Tensor, textual: torch.Tensor, order: torch.Tensor) -> tuple:
    """Inference mix-up: keep all N visual patches and append the M textual ones named by ``order``.

    Returns tokens [B, N + M, W], token_type [B, N + M] (0 visual, 1 textual), positions [B, N + M]
    (an appended patch carries its source patch's position) and valid [B, N + M] bool (False for the
    empty slots of the pair rule: mask them out of attention)."""
    b, n, w = visual.shape
    valid_tail = order >= 0                                                                  # [B, M]
    src = order.clamp(min=0)
    tail = textual.gather(1, src.unsqueeze(-1).expand(-1, -1, w)) * valid_tail.unsqueeze(-1)
    tokens = torch.cat([visual, tail], dim=1)
    base = torch.arange(n, device=visual.device).expand(b, n)
    positions = torch.cat([base, src], dim=1)
    token_type = torch.cat([torch.zeros_like(base), torch.ones_like(src)], dim=1)
    valid = torch.cat([torch.ones_like(base, dtype=torch.bool), valid_tail], dim=1)
    return tokens, token_type, positions, valid


def apply(visual: torch.Tensor, result: PCMResult, mode: str, textual: Optional[torch.Tensor] = None) -> dict:
    """Mix ``visual`` [B, N, W] with ``textual`` (default: the result's own [B, N, D]) in ``mode``
    ``"train"`` (replace) or ``"inference"`` (append); returns a dict of tokens and their side inputs."""
    textual = result.textual if textual is None else textual
    if mode == "train":
        tokens, token_type = mix_train(visual, textual, result.selected)
        n = visual.shape[1]
        return {"tokens": tokens, "token_type": token_type,
                "positions": torch.arange(n, device=visual.device).expand(visual.shape[0], n),
                "valid": torch.ones(visual.shape[:2], dtype=torch.bool, device=visual.device)}
    if mode == "inference":
        tokens, token_type, positions, valid = mix_inference(visual, textual, result.order)
        return {"tokens": tokens, "token_type": token_type, "positions": positions, "valid": valid}
    raise ValueError(f"mode={mode!r} is not one of ('train', 'inference').")
