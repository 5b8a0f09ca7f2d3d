"""What a method is: its training data, the features it builds in training and at inference, its model and
its decoding. The runner (``ablation.py``) runs any registered method by name through this interface:

    method = methods.get("syntic")
    train  = method.train_set(exp)                  # CaptionSet-like: batch(idx, vocab, use_patches) -> dict
    model  = method.build(exp, cap_cfg, pcm_cfg, seed)
    tcfg   = method.train_config(tcfg)              # e.g. CLIP-weighted cross-entropy on or off
    evals  = method.eval_set(exp, "test")           # EvalSet-like: captions(model, vocab, beam) runs the
                                                    # method's inference recipe; .global_ stays the raw image
                                                    # feature (CLIPScore)

``family`` names the seed paper, ``block`` the table block ("text only", "synthetic images", "reference"),
``reported`` the paper's own MSCOCO (Karpathy test) numbers, shown beside the sandbox rows and marked as
reported. ``options()`` is the method's configuration: it is part of every saved row's key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Optional

from ..config import CaptionerConfig, TrainConfig

BLOCKS = ("text only", "synthetic images", "unpaired", "reference")


def file_stem(name: str) -> str:
    """A method name as a file / folder name (an override spec's brackets and spaces become '_')."""
    import re
    return re.sub(r"[^A-Za-z0-9+.=-]+", "_", name).strip("_")


@dataclass(frozen=True)
class Reported:
    """Numbers a paper reports (MSCOCO Karpathy test, x100), never run here."""
    source: str
    CIDEr: float
    Bleu_4: Optional[float] = None
    METEOR: Optional[float] = None
    ROUGE_L: Optional[float] = None
    SPICE: Optional[float] = None
    note: str = ""


class Method:
    """A registered method. Subclasses set the class attributes and override the hooks they change."""
    name: str = ""
    family: str = ""                  # the seed system ("PCM-Net", "CapDec", "SynTIC", ...)
    block: str = "synthetic images"
    training_data: str = "synthetic"  # "text", "text groups", "synthetic", "real"
    reported: Optional[Reported] = None

    def __init__(self, config=None):
        self.config = config

    # --- identity --------------------------------------------------------------------------------------
    def options(self) -> dict:
        """The method's settings (part of the row key); {} for a method without options."""
        return asdict(self.config) if is_dataclass(self.config) else {}

    def describe(self) -> dict:
        return {"method": self.name, "family": self.family, "block": self.block, "training_data": self.training_data}

    # --- hooks -----------------------------------------------------------------------------------------
    def train_name(self) -> str:
        """The training run's folder name (less the seed): rows that differ only at inference share it, so one
        checkpoint serves them all (MacCap's inference ablation)."""
        return file_stem(self.name)

    def run_name(self, seed: int) -> str:
        """The training run's folder at ``seed``: what ``fit`` is called with and ``best_weights`` reads."""
        return f"{self.train_name()}-s{seed}"

    def training_runs(self, seed: int) -> tuple:
        """Every run folder this row trains at ``seed``: two worker processes must not train one at once."""
        return (self.run_name(seed),)

    def needs_unpaired(self) -> bool:
        """True when the method reads ``exp.unpaired`` (real images whose captions are never used)."""
        return False

    def needs_scene_renders(self) -> bool:
        """True when the method trains on real renders of the training captions' own scenes (``exp.sets["real"]``),
        which only the sandbox world has: a caption corpus has no image drawn from each caption."""
        return self.training_data == "real"

    def vocabulary(self, exp):
        """The word vocabulary the model emits (a frozen LM brings its own)."""
        return exp.vocab

    def fit(self, model, exp, tcfg: TrainConfig, name: str, progress: bool = True) -> dict:
        """Train ``model`` (resumable, checkpoint picked on val) -> history with ``val_cider``; default: the
        captioner loop on ``train_set`` (a two-stage method, e.g. CMSA's RL, overrides this)."""
        from ..training import train_captioner
        return train_captioner(model, self.vocabulary(exp), self.train_set(exp), self.eval_set(exp, "val"), tcfg,
                               name, progress=progress)

    def captioner_config(self, cfg: CaptionerConfig) -> CaptionerConfig:
        """The captioner this method trains (default: global feature only, no noise in the model)."""
        return replace(cfg, use_patches=False, mixup=False, noise_variance=0.0)

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        return replace(cfg, cxe=False)

    def paper_training(self, corpus: str) -> dict:
        """TrainConfig fields the paper (or, where it is silent, its code) sets for training on ``corpus`` with its
        own decoder: the pipeline applies them on a paper profile, below the user's explicit flags. {}: the
        stage preset's (the workbench decoder is trained the same way for every row)."""
        return {}

    def train_set(self, exp):
        raise NotImplementedError(f"{type(self).__name__} must say what it trains on (train_set).")

    def build(self, exp, cap_cfg: CaptionerConfig, pcm_cfg, seed: int):
        """A fresh captioner seeded by ``seed`` under ``captioner_config`` (with PCM when its ``mixup`` is on)."""
        import torch

        from ..model.captioner import Captioner
        torch.manual_seed(seed)
        cfg = self.captioner_config(cap_cfg)
        probe = exp.evals["val"][0]
        mix = cfg.mixup                               # PCM needs its config and the concept bank
        return Captioner(cfg, len(exp.vocab), probe.global_.shape[1], probe.tokens.shape[2], probe.tokens.shape[1],
                         pcm_cfg if mix else None, exp.bank.embeddings if mix else None)

    def eval_set(self, exp, split: str):
        """The images of ``split`` of the experiment as this method captions them."""
        base, data = exp.evals[split]
        return self.inference_set(exp, base, getattr(data, "images", None))

    def for_test_set(self, corpus: str, train_corpus: str | None = None) -> "Method":
        """This method as its paper runs it on test corpus ``corpus`` after training on ``train_corpus`` (e.g.
        ViECap's entity threshold: 0.4 on MSCOCO, 0.3 on Flickr30k, 0.2 on NoCaps; IFCap's retrieval and entity
        settings per pair); the protocol asks before captioning each test set. Default: the same settings on
        every set."""
        return self

    def with_config(self, **changes) -> "Method":
        """This method with ``changes`` to its config at inference (``for_test_set``): the same name, trained
        weights and caches; itself when nothing changes."""
        if all(getattr(self.config, k) == v for k, v in changes.items()):
            return self
        import copy
        other = copy.copy(self)
        other.config = replace(self.config, **changes)
        return other

    def inference_set(self, exp, evalset, images=None):
        """Any EvalSet (cached features of real images, e.g. a protocol's test set; ``images`` for methods that
        look at pixels, such as a detector) as this method captions it (default: the raw image features)."""
        return evalset

    def best_weights(self, run_dir: str, seed: int) -> str:
        """Where ``fit`` left the chosen checkpoint of ``seed`` (``<run_dir>/<train_name>-s<seed>/best.pt``)."""
        return f"{run_dir}/{self.run_name(seed)}/best.pt"

    def extra_metrics(self, model, exp, clip, beam: int) -> dict:
        """Analysis columns beyond the protocol's metrics (e.g. other inference-time corrections)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, options={self.options()})"


class CaptionerWrapper:
    """Mix-in for a module that holds a workbench ``Captioner`` as ``self.captioner`` and changes only its encoder
    side (``encode``): the decoding API (``cfg``, ``forward``, ``decode``, ``start`` / ``step`` / ``reorder``) is
    the captioner's, so ``train_captioner`` and every decoder drive it unchanged (SynTIC's, ViECap's)."""

    @property
    def cfg(self):
        return self.captioner.cfg

    def forward(self, words, global_, tokens=None, patches=None, mode: str = "train", **extra):
        return self.captioner.decode(words, *self.encode(global_, tokens, patches, mode, **extra))

    def decode(self, words, memory, memory_pad):
        return self.captioner.decode(words, memory, memory_pad)

    def start(self, memory, memory_pad, group: int = 1):
        return self.captioner.start(memory, memory_pad, group)

    def step(self, last_words, state):
        return self.captioner.step(last_words, state)

    @staticmethod
    def reorder(state, index):
        from ..model.captioner import Captioner
        return Captioner.reorder(state, index)


def caption_memory(exp, size: Optional[int] = None, seed: int = 0):
    """[M, D] CLIP embeddings of the training captions (a seeded sample of ``size``): DeCap's memory, SynTIC's
    support set, the text side of Unsupervised-ClipCap's alignments."""
    import torch
    mem = exp.sets["text"].store.all("text")
    if size is not None and size < len(mem):
        mem = mem[torch.randperm(len(mem), generator=torch.Generator().manual_seed(seed))[:size]]
    return mem


def recipe_eval_set(base, recipe):
    """``base`` (an EvalSet) captioned through ``recipe(global_, tokens, patches) -> (global_, tokens, patches)``
    or ``-> (global_, tokens, patches, prompt)`` (a hard prompt [B, m] of word ids, e.g. ViECap's entities);
    ``.global_`` stays the raw image feature (CLIPScore is computed on it)."""
    from ..training import EvalSet

    class RecipeEvalSet(EvalSet):
        def captions(self, model, vocab, beam: int) -> list:
            from ..model.decoding import generate
            g, t, p, *prompt = recipe(self.global_, self.tokens, self.patches)
            return generate(model, vocab, g, t, p, beam=beam, prompt=prompt[0] if prompt else None)
    return RecipeEvalSet(base.global_, base.tokens, base.patches, base.refs, base.ids)
