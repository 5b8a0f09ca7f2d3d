"""Transformer blocks of the captioner, with key/value caches for incremental decoding.

Post-norm blocks, as the official PCM-Net encoder/decoder and ``torch.nn.Transformer*Layer`` defaults:
    encoder  x = LN(x + Drop(SelfAttn(x)));  x = LN(x + Drop(FF(x)))
    decoder  x = LN(x + Drop(CausalSelfAttn(x)));  x = LN(x + Drop(CrossAttn(x, memory)));  x = LN(x + Drop(FF(x)))
Dropout acts on the sub-layer outputs, not on the attention probabilities: that keeps
``F.scaled_dot_product_attention`` on its fused kernels (on CPU, drawing the dropout masks of the
[B, heads, T, T] probabilities took a quarter of a training step). ``Dropout`` draws its mask with
``rand_like`` (same distribution as ``nn.Dropout``): on CPU ``bernoulli_`` took 8.3 ms for a
[64, 65, 128] tensor vs 2.4 ms, a fifth of the sandbox training step.

Incremental decoding: ``DecoderBlock.step`` takes the newest position only and appends its self-attention
keys/values to a cache, so a decoding step costs O(L) instead of re-running the whole prefix (O(L^2)),
and the cross-attention keys/values of the memory are computed once per caption (``memory_kv``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class Dropout(nn.Module):
    """Inverted dropout: zero each element with probability p in training, scale the rest by 1 / (1 - p)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p={p} must be in [0, 1).")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * (torch.rand_like(x) >= self.p).to(x.dtype) * (1.0 / (1.0 - self.p))


class Attention(nn.Module):
    """Multi-head attention with separate query and key/value inputs; width H, ``heads`` heads."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, H] -> [B, heads, L, H / heads]."""
        b, length, h = x.shape
        return x.view(b, length, self.heads, h // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor, contiguous: bool = False) -> tuple:
        """[B, L, H] -> (keys, values), each [B, heads, L, H / heads] (``contiguous`` for keys/values that
        are reused at every decoding step: the matmul path would otherwise copy them each time)."""
        k, v = self.kv(x).chunk(2, dim=-1)
        k, v = self.split(k), self.split(v)
        return (k.contiguous(), v.contiguous()) if contiguous else (k, v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
               causal: bool = False) -> torch.Tensor:
        """queries from x [B, Lq, H] over keys/values [B, heads, Lk, dh]; mask [B, 1, 1, Lk] True = attend."""
        q = self.split(self.q(x))
        if q.shape[2] <= 8 and not causal:              # a few queries (a decoding step): plain matmuls beat
            w = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5   # the fused kernel, which tiles for long queries
            if mask is not None:
                w = w.masked_fill(~mask, float("-inf"))
            y = w.softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.out(y.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    def __init__(self, width: int, hidden: int):
        super().__init__(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))


def attend_mask(pad: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Key padding mask [B, T] (True = ignore) -> SDPA mask [B, 1, 1, T] (True = attend); None when nothing is padded."""
    if pad is None or not bool(pad.any()):
        return None
    return ~pad[:, None, None, :]


class EncoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.attn, self.ff = Attention(width, heads), FeedForward(width, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, T, H], mask [B, 1, 1, T] (True = attend) -> [B, T, H]."""
        x = self.norm1(x + self.drop(self.attn.attend(x, *self.attn.keys_values(x), mask)))
        return self.norm2(x + self.drop(self.ff(x)))


class DecoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.self_attn, self.cross_attn = Attention(width, heads), Attention(width, heads)
        self.ff = FeedForward(width, hidden)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.drop = Dropout(dropout)

    def memory_kv(self, memory: torch.Tensor, contiguous: bool = False) -> tuple:
        """Cross-attention keys/values of the encoder memory [B, T, H] (computed once per caption;
        ``contiguous`` when they are reused at every decoding step)."""
        return self.cross_attn.keys_values(memory, contiguous)

    def _rest(self, x, mem_kv, mem_mask):
        x = self.norm2(x + self.drop(self.cross_attn.attend(x, *mem_kv, mem_mask)))
        return self.norm3(x + self.drop(self.ff(x)))

    def forward(self, x: torch.Tensor, mem_kv: tuple, mem_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Teacher forcing: x [B, L, H] (causal) -> [B, L, H]."""
        x = self.norm1(x + self.drop(self.self_attn.attend(x, *self.self_attn.keys_values(x), causal=True)))
        return self._rest(x, mem_kv, mem_mask)

    def step(self, x: torch.Tensor, cache: dict, mem_kv: tuple, mem_mask: Optional[torch.Tensor],
             group: int = 1) -> torch.Tensor:
        """One new position x [B * group, 1, H]; ``cache`` holds the keys/values [B * group, heads, L, dh] of
        the earlier positions and is extended in place. The memory keys/values [B, heads, T, dh] are shared by
        ``group`` consecutive sequences (the beams of one image), which attend to it as ``group`` queries.
        Equals the last row of ``forward`` on the whole prefix."""
        k, v = self.self_attn.keys_values(x)
        if "k" in cache:
            k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        x = self.norm1(x + self.drop(self.self_attn.attend(x, k, v)))
        x = x.view(-1, group, x.shape[-1])                                          # [B, group, H]
        return self._rest(x, mem_kv, mem_mask).view(-1, 1, x.shape[-1])
