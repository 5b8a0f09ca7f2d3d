"""The PCM-Net captioner: visual-semantic encoder with inter-layer global interaction + sentence decoder.

Inputs (cached CLIP features, see ``features.py``):
    global_  [B, D]     CLIP image embedding (text embedding for the text-only model), L2-normalised here
    tokens   [B, N, W]  CLIP patch tokens (visual patches)
    patches  [B, N, D]  head-mapped patches (PCM's affinity space), only when mix-up is on
Embedding: global -> Linear(D, H); visual patches -> Linear(W, H); textual patches (PCM) -> Linear(D, H);
mixed by PCM (replace in training, append at inference), + learned position and token-type embeddings.
Encoder (Eq. 6-7): N_e blocks over [global; patches]; the global token of the input and of every block
are concatenated and mapped by a learned matrix (+ LayerNorm) to the final global token.
Decoder: N_d blocks (masked self-attention, cross-attention to the encoder memory, feed-forward), with
key/value caches for incremental decoding (``start`` / ``step`` / ``reorder``; blocks in ``layers.py``).
Training adds CapDec-style Gaussian noise (variance ``noise_variance``) to the normalised global feature.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import pcm as pcm_ops
from ..config import CaptionerConfig, PCMConfig
from .layers import DecoderBlock, Dropout, EncoderBlock, attend_mask


ARCHITECTURE = 2     # bump when the module structure changes: saved ablation rows of older models are not reused


class Captioner(nn.Module):
    def __init__(self, cfg: CaptionerConfig, vocab_size: int, embed_dim: int, token_dim: int, n_patches: int,
                 pcm_cfg: Optional[PCMConfig] = None, concept_bank: Optional[torch.Tensor] = None):
        super().__init__()
        if cfg.mixup and (pcm_cfg is None or concept_bank is None):
            raise ValueError("cfg.mixup=True needs pcm_cfg and concept_bank ([C, D] concept embeddings); "
                             "pass them or set mixup=False.")
        self.cfg, self.pcm_cfg, self.n_patches = cfg, pcm_cfg, n_patches
        h = cfg.width
        self.register_buffer("bank", concept_bank.float() if concept_bank is not None else torch.zeros(0, embed_dim))
        self.g_proj = nn.Linear(embed_dim, h)
        self.v_proj = nn.Linear(token_dim, h)
        self.t_proj = nn.Linear(embed_dim, h)
        self.pos = nn.Parameter(torch.randn(1 + n_patches, h) * 0.02)         # 0 = global, 1.. = patches
        self.token_type = nn.Embedding(2, h) if cfg.token_type else None          # 0 visual, 1 textual
        self.embed_norm = nn.LayerNorm(h)
        self.drop = Dropout(cfg.dropout)

        self.encoder = nn.ModuleList([EncoderBlock(h, cfg.heads, h * cfg.ff_mult, cfg.dropout)
                                      for _ in range(cfg.encoder_layers)])
        self.global_mix = nn.Sequential(nn.Linear(h * (cfg.encoder_layers + 1), h), nn.LayerNorm(h))
        self.word = nn.Embedding(vocab_size, h)
        self.word_pos = nn.Parameter(torch.randn(cfg.max_length + 2, h) * 0.02)
        self.decoder = nn.ModuleList([DecoderBlock(h, cfg.heads, h * cfg.ff_mult, cfg.dropout)
                                      for _ in range(cfg.decoder_layers)])
        self.head = nn.Linear(h, vocab_size)

    # ------------------------------------------------------------------ encoder
    def embed(self, global_: torch.Tensor, tokens: Optional[torch.Tensor] = None,
              patches: Optional[torch.Tensor] = None, mode: str = "train") -> tuple:
        """-> (sequence [B, 1 + T, H], key padding mask [B, 1 + T] True = ignore)."""
        g = F.normalize(global_.float(), dim=-1)
        if self.training and self.cfg.noise_variance > 0:
            g = g + torch.randn_like(g) * self.cfg.noise_variance ** 0.5
        g_emb = self.g_proj(g).unsqueeze(1) + self.pos[0]                         # [B, 1, H]
        b = g.shape[0]
        if not self.cfg.use_patches or tokens is None:
            seq, valid = g_emb, torch.ones(b, 1, dtype=torch.bool, device=g.device)
        else:
            visual = self.v_proj(tokens.float())                                  # [B, N, H]
            if self.cfg.mixup:
                result = pcm_ops.pcm(global_, patches, self.bank, self.pcm_cfg)
                mixed = pcm_ops.apply(visual, result, mode, textual=self.t_proj(result.textual))
            else:
                n = visual.shape[1]
                mixed = {"tokens": visual, "token_type": torch.zeros(b, n, dtype=torch.long, device=g.device),
                         "positions": torch.arange(n, device=g.device).expand(b, n),
                         "valid": torch.ones(b, n, dtype=torch.bool, device=g.device)}
            v = mixed["tokens"] + self.pos[1 + mixed["positions"]]
            if self.token_type is not None:
                v = v + self.token_type(mixed["token_type"])
            seq = torch.cat([g_emb, v], dim=1)
            valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=g.device), mixed["valid"]], dim=1)
        return self.drop(self.embed_norm(seq)), ~valid

    def encode(self, global_, tokens=None, patches=None, mode: str = "train") -> tuple:
        """-> (memory [B, 1 + T, H], memory padding mask [B, 1 + T])."""
        x, pad = self.embed(global_, tokens, patches, mode)
        mask = attend_mask(pad)
        globals_ = [x[:, 0]]
        for layer in self.encoder:
            x = layer(x, mask)
            globals_.append(x[:, 0])
        g = self.global_mix(torch.cat(globals_, dim=-1))                          # Eq. 6-7
        return torch.cat([g.unsqueeze(1), x[:, 1:]], dim=1), pad

    # ------------------------------------------------------------------ decoder
    def decode(self, words: torch.Tensor, memory: torch.Tensor, memory_pad: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: words [B, L] (starting with BOS) -> logits [B, L, V]."""
        x = self.word(words) + self.word_pos[:words.shape[1]]
        mask = attend_mask(memory_pad)
        for layer in self.decoder:
            x = layer(x, layer.memory_kv(memory), mask)
        return self.head(x)

    def start(self, memory: torch.Tensor, memory_pad: torch.Tensor, group: int = 1) -> dict:
        """Decoding state for ``step``: per-layer memory keys/values, the memory mask, empty caches.
        memory [B, T, H]; ``group`` sequences per memory row (beam search: the beams), B * group in all."""
        return {"mem_kv": [layer.memory_kv(memory, contiguous=True) for layer in self.decoder],
                "mask": attend_mask(memory_pad),
                "caches": [{} for _ in self.decoder], "length": 0, "group": group}

    def step(self, last_words: torch.Tensor, state: dict) -> torch.Tensor:
        """Incremental decoding: the newest word of each sequence [B * group] -> next-word logits
        [B * group, V]; extends ``state``. Equals ``decode(prefix, ...)[:, -1]`` on the whole prefix."""
        x = (self.word(last_words) + self.word_pos[state["length"]]).unsqueeze(1)      # [B * group, 1, H]
        for layer, cache, kv in zip(self.decoder, state["caches"], state["mem_kv"]):
            x = layer.step(x, cache, kv, state["mask"], state["group"])
        state["length"] += 1
        return self.head(x[:, 0])

    @staticmethod
    def reorder(state: dict, index: torch.Tensor) -> dict:
        """Keep / repeat the sequences ``index`` [B * group] of a decoding state. The memory stays: with
        ``group`` > 1 (beam search) ``index`` must only move sequences within their own group."""
        return dict(state, caches=[{k: t.index_select(0, index) for k, t in c.items()} for c in state["caches"]])

    def forward(self, words, global_, tokens=None, patches=None, mode: str = "train") -> torch.Tensor:
        """Teacher forcing: words [B, L] -> logits [B, L, V]."""
        memory, pad = self.encode(global_, tokens, patches, mode)
        return self.decode(words, memory, pad)
