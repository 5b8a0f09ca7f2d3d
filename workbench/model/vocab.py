"""Word vocabulary of the captioner: built from the training captions, saved and loaded as JSON.

    vocab = Vocabulary.build(captions, min_count=5, max_length=20)
    ids = vocab.encode("a red circle")        # [BOS, a, red, circle, EOS, PAD...] of length max_length + 2
    vocab.decode(ids)                         # "a red circle"
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import torch

from ..utils.io import atomic_write_json

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(caption: str) -> list:
    """Lower-case word tokens (punctuation dropped), the way captioning toolkits prepare references."""
    return _TOKEN.findall(caption.lower())


class Vocabulary:
    def __init__(self, words: list, max_length: int = 20):
        self.itos = [PAD, BOS, EOS, UNK] + [w for w in words if w not in (PAD, BOS, EOS, UNK)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.max_length = max_length
        self.pad, self.bos, self.eos, self.unk = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, captions, min_count: int = 5, max_length: int = 20) -> "Vocabulary":
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        if min_count < 1 or max_length < 1:
            raise ValueError(f"min_count={min_count} and max_length={max_length} must both be >= 1.")
        counts = Counter(w for c in captions for w in tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if not words:
            raise ValueError(f"no word occurs min_count={min_count} times; lower min_count or pass more captions.")
        return cls(words, max_length)

    def encode(self, caption: str) -> list:
        """[BOS, w1..wn, EOS] padded with PAD to max_length + 2 (captions are cut at max_length words)."""
        ids = [self.stoi.get(w, self.unk) for w in tokenize(caption)][:self.max_length]
        ids = [self.bos] + ids + [self.eos]
        return ids + [self.pad] * (self.max_length + 2 - len(ids))

    def encode_batch(self, captions) -> torch.Tensor:
        """[B, max_length + 2] long."""
        return torch.tensor([self.encode(c) for c in captions], dtype=torch.long)

    def decode(self, ids) -> str:
        """Words up to the first EOS (BOS and PAD skipped)."""
        words = []
        for i in (ids.tolist() if hasattr(ids, "tolist") else ids):
            if i == self.eos:
                break
            if i not in (self.pad, self.bos):
                words.append(self.itos[i])
        return " ".join(words)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, {"words": self.itos[4:], "max_length": self.max_length})

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        meta = json.loads(Path(path).read_text())
        return cls(meta["words"], meta["max_length"])
