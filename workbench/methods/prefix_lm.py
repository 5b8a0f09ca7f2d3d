"""A frozen causal language model driven by a learned prefix (MacCap's decoder: adaptor + frozen OPT).

    lm, vocab = load_lm("facebook/opt-1.3b")                  # paper: AutoModelForCausalLM + AutoTokenizer
    lm, vocab = pretrain_lm(captions, word_vocab, PrefixLMConfig.preset("sandbox"), "runs/lm")   # sandbox
    model = PrefixCaptioner(lm, embed_dim=D, n_tokens=10, cfg=PrefixLMConfig.preset("sandbox"))

The sandbox LM is a small OPT (``transformers.OPTForCausalLM``) that the workbench pretrains by next-word
prediction on the *training captions* (text only), saves with ``save_pretrained`` and loads back through
``AutoModelForCausalLM.from_pretrained``, the call the paper profile makes for OPT-1.3b. Its word ids are the
workbench vocabulary's; a real LM brings its tokenizer, wrapped by ``TokenizerVocab`` in the same interface.
It is pretrained as real LMs are, on *packed* streams (``packed=True``): the shuffled captions, each ``BOS ... EOS``,
concatenated and cut into windows as long as its position table, so every position has seen a caption begin after
other text. OPT-1.3b read 2,048-token documents, so a caption after a 32-token prefix is familiar to it; a small LM
trained on single captions from position 0 is not (words shifted by MacCap's 8 queries cost it 0.69 nats: 1.90 ->
2.59 on val; packed: 1.87 / 1.89).

``PrefixCaptioner`` (MacCap §3, official ``MacCap.py``): N_q learnable queries -> one Transformer decoder layer
(self-attention over the queries, cross-attention to the region tokens, FFN; 8 heads, post-norm) -> a 3-layer
MLP to the LM width = the prefix E [B, N_q, D_lm]; the LM reads [E; BOS w_1 ...] and is trained with its own
cross-entropy on the caption (Eq. 9). The LM never trains: its parameters have ``requires_grad=False`` and it
stays in eval mode. It speaks the captioner protocol (``forward``, ``encode``, ``start`` / ``step`` /
``reorder``, ``cfg``) so ``train_captioner`` and ``decoding`` drive it unchanged (decoding re-runs the LM on
the whole prefix each step: no key/value cache).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..config import check_range
from ..utils.io import atomic_write_json, stable_hash
from ..utils.paths import repo_path


@dataclass(frozen=True)
class PrefixLMConfig:
    """The frozen LM (``lm_model``: a from_pretrained id or folder; None: pretrain a small OPT on the training
    captions) and the adaptor in front of it."""
    lm_model: Optional[str] = None
    lm_layers: int = 2                   # the pretrained sandbox LM (ignored with lm_model)
    lm_width: int = 128
    lm_heads: int = 4
    lm_epochs: int = 6
    lm_lr: float = 1e-3
    lm_batch: int = 64
    n_queries: int = 32                  # official code: 32 (the paper gives none)
    adaptor_heads: int = 8               # paper: 8 heads, 1 layer
    mlp_layers: int = 3                  # official code: MLP(512, 512, D_lm, 3)
    dropout: float = 0.1
    max_length: int = 20
    packed: bool = True                  # pretrain on packed caption streams (all positions); False: one caption a row

    def __post_init__(self):
        for name in ("lm_layers", "lm_width", "lm_heads", "lm_epochs", "lm_batch", "n_queries", "adaptor_heads",
                     "mlp_layers", "max_length"):
            check_range(name, getattr(self, name), 1)
        check_range("lm_lr", self.lm_lr, 0.0)
        check_range("dropout", self.dropout, 0.0, 0.9)

    @staticmethod
    def preset(name: str, **overrides) -> "PrefixLMConfig":
        presets = {"tiny": PrefixLMConfig(lm_layers=1, lm_width=32, lm_heads=2, lm_epochs=1, lm_batch=8,
                                          n_queries=4, adaptor_heads=2),
                   # 24 epochs: its val CE plateau (packed: 6 epochs 2.30, 14 1.94, 24 1.87 at every offset)
                   "sandbox": PrefixLMConfig(n_queries=8, lm_epochs=24),
                   "paper_b32": PrefixLMConfig(lm_model="facebook/opt-1.3b"),
                   "paper_l14": PrefixLMConfig(lm_model="facebook/opt-1.3b")}
        if name not in presets:
            raise ValueError(f"preset={name!r} is not a PrefixLMConfig preset; choose one of {sorted(presets)}.")
        return replace(presets[name], **overrides)


def sandbox_lm_options(lm_model: Optional[str], lm_preset: str) -> dict:
    """What a row of a method with an LM decoder adds to its key: the pretraining config of the small LM the
    workbench trains (neither ``lm_model`` nor the preset names one), so another LM recipe is another row; nothing
    for a named LM (the paper profiles' OPT-1.3b, GPT-2)."""
    cfg = PrefixLMConfig.preset(lm_preset)
    return {} if lm_model or cfg.lm_model else {"sandbox_lm": asdict(cfg)}


class TokenizerVocab:
    """A Hugging Face tokenizer in the workbench ``Vocabulary`` interface (encode_batch, decode, bos/eos/pad,
    ``len``, ``max_length`` in tokens)."""

    def __init__(self, tokenizer, max_length: int = 20):
        self.tok, self.max_length = tokenizer, max_length
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.unk = tokenizer.unk_token_id          # may be None (byte-level BPE has no unknown token)
        if self.bos is None or self.eos is None:
            raise ValueError("the LM's tokenizer has no bos_token / eos_token; set them on the tokenizer.")

    def __len__(self) -> int:
        return len(self.tok)

    def encode(self, caption: str) -> list:
        ids = self.tok(caption.strip(), add_special_tokens=False)["input_ids"][:self.max_length]
        ids = [self.bos] + ids + [self.eos]
        return ids + [self.pad] * (self.max_length + 2 - len(ids))

    def encode_batch(self, captions) -> torch.Tensor:
        return torch.tensor([self.encode(c) for c in captions], dtype=torch.long)

    def decode(self, ids) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        ids = ids[:ids.index(self.eos)] if self.eos in ids else ids
        return self.tok.decode([i for i in ids if i not in (self.pad, self.bos)], skip_special_tokens=True).strip()


def load_lm(path: str, max_length: int = 20) -> tuple:
    """(frozen causal LM, its vocabulary) from a from_pretrained id or folder. A folder the workbench wrote
    holds ``workbench_vocab.json`` (its word vocabulary); any other brings its own tokenizer."""
    from transformers import AutoModelForCausalLM
    local = repo_path(path)
    source = str(local) if local.is_dir() else path          # a folder, else a hub id (the HF cache offline)
    lm = AutoModelForCausalLM.from_pretrained(source)
    if (local / "workbench_vocab.json").exists():
        from ..model.vocab import Vocabulary
        vocab = Vocabulary.load(local / "workbench_vocab.json")
    else:
        from transformers import AutoTokenizer
        vocab = TokenizerVocab(AutoTokenizer.from_pretrained(source), max_length)
    return freeze(lm), vocab


def freeze(lm: nn.Module) -> nn.Module:
    lm.eval()
    for p in lm.parameters():
        p.requires_grad_(False)
    return lm


def packed_windows(words: torch.Tensor, pad: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """One epoch of packed pretraining text: the rows of ``words`` [N, L] (``BOS ... EOS`` then ``pad``) in a random
    order, padding dropped, concatenated into one stream and cut into windows [W, length] (the tail dropped)."""
    if length < 2:
        raise ValueError(f"length={length}: a window needs at least 2 tokens (input and target).")
    rows = [r[r != pad] for r in words[rng.permutation(len(words))]]
    stream = torch.cat(rows)
    n = len(stream) // length
    if n == 0:
        raise ValueError(f"the captions hold {len(stream)} tokens, fewer than one window of length={length}; "
                         "pass more captions or set packed=False.")
    return stream[:n * length].view(n, length)


def pretrain_lm(captions: list, vocab, cfg: PrefixLMConfig, out_dir: str | Path, seed: int = 0,
                progress: bool = True) -> tuple:
    """A small OPT pretrained by next-word prediction on ``captions`` (word ids of ``vocab``; packed streams as
    long as its position table when ``cfg.packed``, see the module docstring), saved with ``save_pretrained``
    under ``out_dir/<hash>`` and loaded back frozen through ``load_lm``; reused when the folder exists (same
    captions, vocabulary, config, seed)."""
    from tqdm.auto import tqdm
    from transformers import OPTConfig, OPTForCausalLM
    key = stable_hash({"captions": list(captions), "vocab": vocab.itos, "cfg": asdict(cfg), "seed": seed})[:12]
    folder = repo_path(out_dir) / f"lm-{key}"
    if (folder / "workbench_vocab.json").exists():
        return load_lm(str(folder), cfg.max_length)
    torch.manual_seed(seed)
    positions = cfg.n_queries + vocab.max_length + 8
    conf = OPTConfig(vocab_size=len(vocab), hidden_size=cfg.lm_width, num_hidden_layers=cfg.lm_layers,
                     ffn_dim=4 * cfg.lm_width, num_attention_heads=cfg.lm_heads, word_embed_proj_dim=cfg.lm_width,
                     max_position_embeddings=positions, dropout=cfg.dropout,
                     pad_token_id=vocab.pad, bos_token_id=vocab.bos, eos_token_id=vocab.eos)
    lm = OPTForCausalLM(conf)
    words = vocab.encode_batch(captions)                                         # [N, L + 2]
    rng = np.random.default_rng(seed)
    # packed: every epoch the same number of [positions]-long windows (the same tokens, reshuffled)
    rows = int((words != vocab.pad).sum()) // positions if cfg.packed else len(words)
    per_epoch = max(1, rows // cfg.lm_batch)
    opt = torch.optim.AdamW(lm.parameters(), lr=cfg.lm_lr)
    steps = cfg.lm_epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lm_lr, total_steps=steps, pct_start=0.1)
    lm.train()
    bar = tqdm(total=steps, desc="pretrain LM", disable=not progress)
    for _ in range(cfg.lm_epochs):
        epoch = (packed_windows(words, vocab.pad, positions, rng) if cfg.packed
                 else words[rng.permutation(len(words))])
        for b in range(per_epoch):
            w = epoch[b * cfg.lm_batch:(b + 1) * cfg.lm_batch]
            labels = w.masked_fill(w == vocab.pad, -100)
            loss = lm(input_ids=w, attention_mask=(w != vocab.pad).long(), labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")      # own name: parallel workers may train it too
    lm.save_pretrained(tmp)
    vocab.save(tmp / "workbench_vocab.json")
    atomic_write_json(tmp / "workbench_lm.json", {"captions": len(captions), "config": asdict(cfg), "seed": seed,
                                                  "final_loss": float(loss.item())})
    try:
        tmp.rename(folder)
    except OSError:                                # another worker finished the same LM first: keep theirs
        if not (folder / "workbench_vocab.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return load_lm(str(folder), cfg.max_length)


@dataclass
class PrefixCaptionerConfig:
    """What train_captioner / decoding read from a model's ``cfg`` (and what names a run: adaptor and LM)."""
    max_length: int
    adaptor: dict
    lm: str
    use_patches: bool = True
    mixup: bool = False
    noise_variance: float = 0.0


class PrefixCaptioner(nn.Module):
    """Region tokens [B, n_tokens, D] -> adaptor -> prefix [B, N_q, D_lm] -> frozen LM. ``global_`` is unused
    (MacCap's adaptor sees only the region tokens)."""

    def __init__(self, lm: nn.Module, embed_dim: int, cfg: PrefixLMConfig, max_length: int = 20):
        super().__init__()
        self.lm, self.pcfg = freeze(lm), cfg
        self.cfg = PrefixCaptionerConfig(max_length, asdict(cfg), str(getattr(lm.config, "_name_or_path", "")) or
                                         stable_hash(lm.config.to_dict()))
        width = lm.get_input_embeddings().embedding_dim
        heads = cfg.adaptor_heads if embed_dim % cfg.adaptor_heads == 0 else 1
        self.queries = nn.Parameter(torch.randn(cfg.n_queries, embed_dim) * 0.02)
        self.adaptor = nn.TransformerDecoderLayer(embed_dim, heads, 4 * embed_dim, cfg.dropout, batch_first=True)
        dims = [embed_dim] * cfg.mlp_layers + [width]
        layers = []
        for i in range(cfg.mlp_layers):
            layers += [nn.Linear(dims[i], dims[i + 1])] + ([nn.ReLU()] if i < cfg.mlp_layers - 1 else [])
        self.mlp = nn.Sequential(*layers)

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()                                   # frozen: no dropout either
        return self

    def encode(self, global_, tokens=None, patches=None, mode: str = "train") -> tuple:
        """-> (prefix E [B, N_q, D_lm], padding mask [B, N_q] all False)."""
        if tokens is None:
            raise ValueError("tokens (the region tokens [B, n, D]) are required by the prefix captioner.")
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        prefix = self.mlp(self.adaptor(q, tokens.float()))
        return prefix, torch.zeros(prefix.shape[:2], dtype=torch.bool, device=prefix.device)

    def _logits(self, prefix: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        x = torch.cat([prefix, self.lm.get_input_embeddings()(words)], dim=1)
        mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
        return self.lm(inputs_embeds=x, attention_mask=mask).logits[:, prefix.shape[1]:]

    def forward(self, words, global_, tokens=None, patches=None, mode: str = "train") -> torch.Tensor:
        """Teacher forcing: words [B, L] (BOS first) -> logits [B, L, V] of the LM after the prefix."""
        return self._logits(self.encode(global_, tokens, patches, mode)[0], words)

    def start(self, memory, memory_pad, group: int = 1) -> dict:
        """Decoding state: the prefix [B * group, N_q, D_lm] and the LM's key/value cache (filled by the first
        step, which feeds the prefix and BOS; every later step feeds only the newest word)."""
        return {"prefix": memory.repeat_interleave(group, dim=0), "past": None, "length": 0}

    def step(self, last_words: torch.Tensor, state: dict) -> torch.Tensor:
        """last_words [B] -> next-word logits [B, V], through the LM's cache."""
        x = self.lm.get_input_embeddings()(last_words.unsqueeze(1))
        if state["past"] is None:
            x = torch.cat([state["prefix"], x], dim=1)
        state["length"] += x.shape[1]
        mask = torch.ones(x.shape[0], state["length"], dtype=torch.long, device=x.device)
        out = self.lm(inputs_embeds=x, attention_mask=mask, past_key_values=state["past"], use_cache=True)
        state["past"] = out.past_key_values
        return out.logits[:, -1]

    @staticmethod
    def reorder(state: dict, index: torch.Tensor) -> dict:
        """Follow the beams: cache rows ``index`` (the transformers Cache reorders in place)."""
        state["past"].reorder_cache(index)
        return state
