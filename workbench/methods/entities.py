"""Entity hard prompts (ViECap, IFCap): the entity words a captioner is told about beside its visual input.

    ids = caption_entities(captions, vocab, entity_words)          # training: the caption's own nouns [N, m]
    ids = mask_entities(ids, 0.4)                                  # each dropped with p = 0.4 (a fresh draw per batch)
    ids = zero_shot_entities(image_global, bank, vocab, tau, 3, 0.4)   # ViECap inference: CLIP classification
    ids = frequent_entities(retrieved_captions, vocab, 5)         # IFCap inference: nouns seen >= 5 times
    model = PromptedCaptioner(captioner)                           # reads the prompt as extra memory tokens

Prompt ids are word ids of the captioner's vocabulary, padded with ``vocab.pad`` (0) to ``[B, m]``.

With the workbench decoder the prompt is read as memory: the decoder cross-attends to the captioner's
encoder output *and* to the entity words' own embeddings (the decoder's input word embeddings, so a word seen
in the prompt is the word it can write), plus a learned "no entity" slot that stands for ViECap's "There are
something in image.". ViECap's GPT-2 reads "There are e1, e2 in image." as text after its soft prompt; the
template's fixed words carry nothing a memory token would not, so only the entities enter here.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import CaptionerWrapper

# ViECap's CaptionsDataset.people_vocabs: every person word becomes "person" in the prompt
PEOPLE_WORDS = ("people", "person", "man", "men", "woman", "women", "adult", "boy", "girl", "kid", "children",
                "child", "baby", "guy", "player", "male", "female", "worker")


def _pad(rows: list, pad: int, width: Optional[int] = None) -> torch.Tensor:
    width = max([len(r) for r in rows] + [1]) if width is None else width
    return torch.tensor([(r + [pad] * width)[:width] for r in rows], dtype=torch.long)


def entity_ids(words: list, vocab, people_to_person: bool = True) -> list:
    """Entity words -> distinct word ids in order (people words -> "person" when that is a word of the vocabulary);
    words the vocabulary does not know are dropped (the workbench decoder cannot write them)."""
    out = []
    for w in words:
        if people_to_person and w in PEOPLE_WORDS and "person" in vocab.stoi:
            w = "person"
        i = vocab.stoi.get(w)
        if i is not None and i not in out:
            out.append(i)
    return out


def caption_entities(captions: list, vocab, entity_words, max_entities: int = 10,
                     people_to_person: bool = True) -> torch.Tensor:
    """ViECap's training entities: the noun lemmas of each caption that are in ``entity_words`` (its object
    vocabulary), people words as "person", distinct, at most ``max_entities`` -> [N, max_entities] word ids."""
    from ..features.concepts import caption_nouns
    allowed = set(entity_words) | ({"person"} if people_to_person else set())
    rows = []
    for c in captions:
        nouns = [("person" if people_to_person and n in PEOPLE_WORDS else n) for n in caption_nouns(c)]
        rows.append(entity_ids([n for n in nouns if n in allowed][:max_entities], vocab, people_to_person)[:max_entities])
    return _pad(rows, vocab.pad, max_entities)


def mask_entities(ids: torch.Tensor, prob: float, pad: int = 0, generator: Optional[torch.Generator] = None):
    """Each entity dropped independently with probability ``prob`` (ViECap's random mask; 0.4 in its scripts)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob={prob} must be in [0, 1] (ViECap masks each entity with 0.4).")
    keep = torch.rand(ids.shape, generator=generator) >= prob
    return torch.where(keep & (ids != pad), ids, torch.full_like(ids, pad))


def zero_shot_entities(image_global: torch.Tensor, words: list, embeddings: torch.Tensor, vocab, tau: float,
                       top_k: int = 3, threshold: float = 0.4, people_to_person: bool = True) -> torch.Tensor:
    """ViECap's inference entities: p = softmax(cos(image, class embedding) / tau) over the entity vocabulary
    ``words`` ([C] with ``embeddings`` [C, D]); of the ``top_k`` most probable, those with p >= ``threshold``,
    most probable first -> [B, top_k] word ids."""
    if tau <= 0:
        raise ValueError(f"tau={tau} must be > 0 (ViECap: 0.01, CLIP's own temperature).")
    probs = (F.normalize(image_global.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T / tau).softmax(-1)
    top = probs.topk(min(top_k, len(words)), dim=-1)
    rows = [entity_ids([words[j] for p, j in zip(ps.tolist(), js.tolist()) if p >= threshold], vocab,
                       people_to_person) for ps, js in zip(top.values, top.indices)]
    return _pad(rows, vocab.pad, top_k)


def frequent_entities(retrieved: list, vocab, threshold: int, max_entities: int = 10,
                      people_to_person: bool = True) -> torch.Tensor:
    """IFCap's frequency-based entity filtering: per image, the noun lemmas of its ``retrieved`` captions (a list
    of caption lists), every occurrence counted, kept when seen at least ``threshold`` times, most frequent first
    -> [B, max_entities] word ids."""
    from ..features.concepts import caption_nouns
    if threshold < 1:
        raise ValueError(f"threshold={threshold} must be >= 1 (IFCap keeps nouns seen 5 times in 9 captions on MSCOCO).")
    rows = []
    for caps in retrieved:
        counts = Counter(n for c in caps for n in caption_nouns(c))
        kept = sorted((w for w, k in counts.items() if k >= threshold), key=lambda w: (-counts[w], w))
        rows.append(entity_ids(kept, vocab, people_to_person)[:max_entities])
    return _pad(rows, vocab.pad, max_entities)


def words_of(ids: torch.Tensor, vocab) -> list:
    """[B, m] prompt ids -> the entity words of each row (padding dropped)."""
    return [[vocab.itos[i] for i in row if i != vocab.pad] for row in ids.tolist()]


def entity_table(columns: dict, n: int = 6) -> str:
    """A markdown table of the first ``n`` rows of ``columns`` ({name: list of word lists or strings})."""
    from ..utils.tables import markdown_table
    rows = []
    for i in range(min(n, min(len(v) for v in columns.values()))):
        cells = [", ".join(v[i]) if isinstance(v[i], list) else str(v[i]) for v in columns.values()]
        rows.append([i] + [c.replace("|", "/") or "-" for c in cells])
    return markdown_table(["#"] + list(columns), rows)


class PromptedCaptioner(CaptionerWrapper, nn.Module):
    """A captioner that also reads a hard prompt of entity words: memory = [captioner memory; no-entity slot;
    LayerNorm(word embedding + prompt type) of each entity] (pad ids masked). ``fusion`` (IFCap) first fuses
    the global input with retrieved caption embeddings passed in the ``tokens`` slot [B, k, D]. Exposes the
    captioner's decoding API (``start`` / ``step`` / ``reorder``), so every decoder of ``decoding.py`` runs it."""

    def __init__(self, captioner, fusion: Optional[nn.Module] = None):
        super().__init__()
        h = captioner.cfg.width
        self.captioner, self.fusion = captioner, fusion
        self.prompt_type = nn.Parameter(torch.randn(1, 1, h) * 0.02)
        self.no_entity = nn.Parameter(torch.randn(1, 1, h) * 0.02)
        self.prompt_norm = nn.LayerNorm(h)

    def prompt_memory(self, prompt: Optional[torch.Tensor], batch: int, device) -> tuple:
        """prompt [B, m] word ids -> (tokens [B, 1 + m, H], padding mask [B, 1 + m])."""
        slot = self.prompt_norm(self.no_entity + self.prompt_type).expand(batch, 1, -1)
        if prompt is None or prompt.shape[1] == 0:
            return slot, torch.zeros(batch, 1, dtype=torch.bool, device=device)
        words = self.prompt_norm(self.captioner.word(prompt) + self.prompt_type)     # [B, m, H]
        pad = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=device), prompt == 0], dim=1)
        return torch.cat([slot, words], dim=1), pad

    def encode(self, global_, tokens=None, patches=None, mode: str = "train", prompt=None) -> tuple:
        if self.fusion is not None:
            global_, tokens = self.fusion(global_, tokens), None
        memory, pad = self.captioner.encode(global_, tokens, patches, mode)
        extra, extra_pad = self.prompt_memory(prompt, memory.shape[0], memory.device)
        return torch.cat([memory, extra.to(memory.dtype)], dim=1), torch.cat([pad, extra_pad], dim=1)



class PromptSet:
    """A training set (any ``CaptionSet``-like ``base``) whose batches also carry each caption's entity prompt
    ``ids`` [N, m], masked afresh per batch with ``mask_prob`` from torch's global generator (which
    ``train_captioner`` reseeds every step: the masks are reproducible per seed and step)."""

    def __init__(self, base, ids: torch.Tensor, mask_prob: float):
        if len(ids) != len(base.captions):
            raise ValueError(f"ids has {len(ids)} rows for {len(base.captions)} captions; they must pair up.")
        self.base, self.ids, self.mask_prob = base, ids, mask_prob
        self.captions, self.cos = base.captions, getattr(base, "cos", None)

    def identity(self) -> str:
        from ..utils.io import stable_hash
        return stable_hash({"base": self.base.identity(), "ids": self.ids.tolist(), "mask": self.mask_prob})

    def batch(self, idx, vocab, use_patches: bool) -> dict:
        out = self.base.batch(idx, vocab, use_patches)
        out["prompt"] = mask_entities(self.ids[torch.as_tensor(idx)], self.mask_prob, vocab.pad)
        return out
