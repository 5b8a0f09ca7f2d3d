"""ViECap's own decoder, an option of ``viecap`` / ``ifcap`` (``decoder="lm"``): a causal LM (GPT-2 base in the
paper, through ``transformers``) reading [soft prompt; hard prompt; caption] and fine-tuned with them.

* Soft prompt (ViECap's ``MappingNetwork``, ClipCap's transformer mapper): the CLIP embedding [B, D] -> Linear
  -> P x W, concatenated with P learned constants, a Transformer encoder over the 2P tokens, the last P outputs.
  ViECap: P = 10, 8 layers, 8 heads on GPT-2's W = 768.
* Hard prompt: "There are e1, e2 in image." ("There are something in image." without entities), tokenised by
  the LM's own tokenizer (ViECap's ``compose_discrete_prompts``); the entities are the word ids the method
  passes (``prompt`` [B, m], the captioner vocabulary's), turned back into words.
* The [soft; hard] prefix of each row is left-padded to the batch's longest, masked, and the positions count
  only real tokens, so every caption continues its own prefix directly as in ViECap's right-padded batches.
  The loss covers the caption tokens only (the training loop's cross-entropy on the logits after the prefix).

* IFCap (``ifcap-lm``) first fuses the input with its retrieved captions (``fusion``, given the retrieved
  embeddings [B, k, D] in the ``tokens`` slot) and maps the fused vector; IFCap trains GPT-2 the same way.

It speaks the captioner protocol (``cfg``, ``forward``, ``encode``, ``start`` / ``step`` / ``reorder``), so
``train_captioner`` and ``decoding`` drive it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn


@dataclass
class EntityLMConfig:
    """What the training loop and decoders read from ``model.cfg``."""
    max_length: int
    lm: str
    prefix_length: int = 10
    mapper_layers: int = 8
    use_patches: bool = False
    mixup: bool = False
    noise_variance: float = 0.0


def prompt_text(words: list) -> str:
    """ViECap's discrete prompt (utils.compose_discrete_prompts)."""
    return "There are" + (",".join(" " + w for w in words) if words else " something") + " in image."


def text_ids(vocab, text: str) -> list:
    """``text`` in the ids of the LM's vocabulary: its tokenizer (``TokenizerVocab``) or the workbench's words."""
    if hasattr(vocab, "tok"):
        return vocab.tok(text, add_special_tokens=False)["input_ids"]
    from ..model.vocab import tokenize
    return [vocab.stoi.get(w, vocab.unk) for w in tokenize(text)]


class EntityLMCaptioner(nn.Module):
    def __init__(self, lm: nn.Module, lm_vocab, word_vocab, embed_dim: int, prefix_length: int = 10,
                 mapper_layers: int = 8, heads: int = 8, max_length: int = 20, fusion: Optional[nn.Module] = None):
        super().__init__()
        self.lm, self.lm_vocab, self.word_vocab = lm, lm_vocab, word_vocab
        self.fusion = fusion     # IFCap: the input first attends to the retrieved captions (passed as ``tokens``)
        for p in self.lm.parameters():                 # ViECap fine-tunes GPT-2 (no --frozen_gpt in its scripts)
            p.requires_grad_(True)
        width = lm.get_input_embeddings().embedding_dim
        name = str(getattr(lm.config, "_name_or_path", "")) or lm.config.model_type
        self.cfg = EntityLMConfig(max_length, name, prefix_length, mapper_layers)
        self.project = nn.Linear(embed_dim, prefix_length * width)
        self.const = nn.Parameter(torch.randn(prefix_length, width))
        layer = nn.TransformerEncoderLayer(width, heads if width % heads == 0 else 1, 2 * width, 0.0,
                                           batch_first=True, norm_first=True)
        self.mapper = nn.TransformerEncoder(layer, mapper_layers, enable_nested_tensor=False)

    def soft_prompt(self, global_: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, P, W]."""
        p = self.cfg.prefix_length
        x = self.project(global_.float()).view(global_.shape[0], p, -1)
        x = torch.cat([x, self.const.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
        return self.mapper(x)[:, p:]

    def hard_prompt_ids(self, prompt) -> list:
        """Per row, the LM ids of "There are e1, e2 in image." for the entity word ids ``prompt`` [B, m]."""
        pad = self.word_vocab.pad
        rows = prompt.tolist() if prompt is not None else []
        return [text_ids(self.lm_vocab, prompt_text([self.word_vocab.itos[i] for i in r if i != pad])) for r in rows]

    def encode(self, global_, tokens=None, patches=None, mode: str = "train", prompt=None) -> tuple:
        """-> (prefix [B, T, W] left-padded, padding mask [B, T] True = pad)."""
        if self.fusion is not None:
            global_ = self.fusion(global_, tokens)
        soft = self.soft_prompt(global_)
        b, p, dev = soft.shape[0], soft.shape[1], soft.device
        hard = self.hard_prompt_ids(prompt) if prompt is not None else [[] for _ in range(b)]
        t = p + max(len(h) for h in hard)
        emb = self.lm.get_input_embeddings()
        out = torch.zeros(b, t, soft.shape[2], device=dev, dtype=soft.dtype)
        pad = torch.ones(b, t, dtype=torch.bool, device=dev)
        for i, h in enumerate(hard):
            n = p + len(h)
            ids = torch.tensor(h, dtype=torch.long, device=dev)
            out[i, t - n:] = torch.cat([soft[i], emb(ids).to(soft.dtype)]) if h else soft[i]
            pad[i, t - n:] = False
        return out, pad

    def forward(self, words, global_, tokens=None, patches=None, mode: str = "train", prompt=None):
        prefix, pad = self.encode(global_, tokens, patches, mode, prompt)
        x = torch.cat([prefix, self.lm.get_input_embeddings()(words)], dim=1)
        mask = torch.cat([~pad, torch.ones(words.shape, dtype=torch.bool, device=words.device)], dim=1).long()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.lm(inputs_embeds=x, attention_mask=mask, position_ids=positions).logits[:, prefix.shape[1]:]

    def start(self, memory, memory_pad, group: int = 1) -> dict:
        keep = (~memory_pad).long().repeat_interleave(group, dim=0)
        return {"prefix": memory.repeat_interleave(group, dim=0), "mask": keep, "past": None,
                "next": keep.sum(-1)}

    def step(self, last_words: torch.Tensor, state: dict) -> torch.Tensor:
        x = self.lm.get_input_embeddings()(last_words.unsqueeze(1))
        ones = torch.ones(x.shape[0], 1, dtype=torch.long, device=x.device)
        if state["past"] is None:                       # the first step feeds the prefix and BOS
            x = torch.cat([state["prefix"], x], dim=1)
            state["mask"] = torch.cat([state["mask"], ones], dim=1)
            positions = (state["mask"].cumsum(-1) - 1).clamp(min=0)
        else:
            state["mask"] = torch.cat([state["mask"], ones], dim=1)
            positions = state["next"].unsqueeze(1)
            state["next"] = state["next"] + 1
        if state["past"] is None:
            state["next"] = state["next"] + 1
        out = self.lm(inputs_embeds=x, attention_mask=state["mask"], position_ids=positions,
                      past_key_values=state["past"], use_cache=True)
        state["past"] = out.past_key_values
        return out.logits[:, -1]

    @staticmethod
    def reorder(state: dict, index: torch.Tensor) -> dict:
        """Follow the beams: cache rows, masks and positions ``index`` (within a group the masks are equal)."""
        state["past"].reorder_cache(index)
        state["mask"], state["next"] = state["mask"].index_select(0, index), state["next"].index_select(0, index)
        return state


def entity_lm(exp, lm_model: Optional[str], lm_preset: str, prefix_length: int, n_entities: int) -> tuple:
    """(a fresh copy of the causal LM, its vocabulary) for an entity-prompted decoder: ``lm_model`` through
    ``from_pretrained``, or the small LM pretrained on the experiment's training captions (cached on disk), its
    positions covering the soft prompt and "There are e1, ..., en in image."."""
    from .prefix_lm import PrefixLMConfig, load_lm, pretrain_lm
    room = prefix_length + 2 * n_entities + 8
    lcfg = PrefixLMConfig.preset(lm_preset, max_length=exp.vocab.max_length, n_queries=room)
    if lm_model:
        return load_lm(lm_model, lcfg.max_length)
    return pretrain_lm(exp.captions, exp.vocab, lcfg, f"{exp.cfg.out_dir}/lm")


class EntityLMDecoder:
    """The ``decoder="lm"`` option of an entity-prompted method (ViECap, IFCap): a mixin over ``Method`` whose
    config has ``decoder``, ``lm_model``, ``lm_preset``, ``prefix_length``, ``mapper_layers``, ``max_entities``,
    ``top_k`` and whose instance has a ``_cache`` dict."""

    def options(self) -> dict:
        """The method's settings and, with ``decoder="lm"``, the small LM's pretraining config (a new LM recipe is a
        new row)."""
        from .prefix_lm import sandbox_lm_options
        c = self.config
        lm = sandbox_lm_options(c.lm_model, c.lm_preset) if c.decoder == "lm" else {}
        return {**super().options(), **lm}

    def _lm(self, exp) -> tuple:
        c = self.config
        return entity_lm(exp, c.lm_model, c.lm_preset, c.prefix_length, max(c.max_entities, c.top_k))

    def vocabulary(self, exp):
        if self.config.decoder == "lm":
            if "lm_vocab" not in self._cache:
                self._cache["lm_vocab"] = self._lm(exp)[1]
            return self._cache["lm_vocab"]
        return exp.vocab

    def lm_captioner(self, exp, seed: int, fusion: Optional[nn.Module] = None) -> "EntityLMCaptioner":
        """A fresh ``EntityLMCaptioner`` on a fresh copy of the LM (weights seeded by ``seed``)."""
        lm, lm_vocab = self._lm(exp)
        self._cache["lm_vocab"] = lm_vocab
        torch.manual_seed(seed)
        d = exp.evals["val"][0].global_.shape[1]
        return EntityLMCaptioner(lm, lm_vocab, exp.vocab, d, self.config.prefix_length, self.config.mapper_layers,
                                 max_length=lm_vocab.max_length, fusion=fusion)
