"""CMSA ("Unpaired Image Captioning via Cross-Modal Semantic Alignment", seed 003): *unpaired*: it trains on
the caption corpus and on real images that have no captions.

The seed holds only the abstract, contributions and tables, so this follows its abstract and, for what the
abstract leaves open, its closest public relative CgT-GAN (``Lihr747/CgtGAN``), as the design note says:
* generator: the captioner's memory is the CLIP image feature (I-F, global slot) plus the CLIP text embeddings
  of K entities (T-F, token path; ViECap-style entity prompts): in stage 1 the caption's own concept-bank
  nouns, on images the zero-shot CLIP tagger's tags (SynTIC's tagger over the concept bank, its threshold
  calibrated on the unpaired images so the mean tag count equals the mean noun count per training caption);
* stage 1 ("Initialize"): text-only cross-entropy on caption embeddings, no noise (CgT-GAN's initialisation);
* stage 2: self-critical RL (``rl.py``) on the unpaired images (sandbox: renders of training scenes none of
  whose captions is used) with r = lam * r_CLIP + (1 - lam) * r_D: r_CLIP = CLIP-S = 2.5 max(cos(image,
  caption), 0) (the CLIP reward of CLIP-reward captioning; CgT-GAN's variant scales cos by CLIP's logit scale),
  r_D = a discriminator's probability that the caption is human-written (CMSA: "evaluates textual naturalness";
  CgT-GAN: RoBERTa + MLP; here a small Transformer encoder trained alongside), lam = 0.5 (CgT-GAN's w), the
  fluency term ramped in over the first quarter of the steps (CgT-GAN ramps its GAN term in).
* RL learning rate: not in the seed; CgT-GAN's RL lr, 1e-5 (Adam). (Half the stage-1 peak, CgT-GAN's *ratio*
  1e-5 / 2e-5 applied to the sandbox's 1e-3 peak, collapsed the captioner within the first RL epoch: val CIDEr
  73.0 -> 0.2.) Checkpoints are picked on val CIDEr (stage 1 over its epochs, stage 2 over its RL epochs).
Table 5's ablation (I-F / T-F / C-R / B-R) is the four flags; the seed lost which mark each row misses.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import check_range
from ..evaluation.clipscore import clipscore
from ..utils.io import stable_hash
from ..training import CaptionSet
from .base import Method, Reported, recipe_eval_set
from .syntic import calibrated_threshold, zero_shot_tags


@dataclass(frozen=True)
class CMSAConfig:
    image_feature: bool = True        # I-F: the image's CLIP feature in the global slot (off: zeros)
    entities: int = 3                 # T-F: at most K entity tokens (0: off)
    clip_reward: bool = True          # C-R
    fluency_reward: bool = True       # B-R (the discriminator)
    reward_weight: float = 0.5        # lam when both rewards are on
    rl: bool = True                   # stage 2 (False: stage 1 only)
    rl_epochs: int = 6
    rl_lr: float = 1e-5               # CgT-GAN's RL learning rate (Adam)
    samples: int = 5                  # CgT-GAN: 5 samples per image
    rl_batch: int = 32

    def __post_init__(self):
        check_range("entities", self.entities, 0)
        check_range("reward_weight", self.reward_weight, 0.0, 1.0)
        check_range("rl_epochs", self.rl_epochs, 1)
        check_range("rl_lr", self.rl_lr, 0.0)
        check_range("samples", self.samples, 1)
        check_range("rl_batch", self.rl_batch, 1)
        if self.rl and not (self.clip_reward or self.fluency_reward):
            raise ValueError("clip_reward and fluency_reward are both off: stage 2 has no reward; turn one on or "
                             "set rl=False.")

    @property
    def lam(self) -> float:
        return self.reward_weight if self.clip_reward and self.fluency_reward else float(self.clip_reward)


@dataclass
class EntityTextSet(CaptionSet):
    """Stage 1: caption embeddings (no noise) + the CLIP embeddings of the caption's own nouns [N, K, D]."""
    entity_tokens: torch.Tensor = None
    image_feature: bool = True

    def identity(self) -> str:
        e = self.entity_tokens
        return stable_hash({"text": super().identity(), "entities": None if e is None else float(e.double().sum()),
                            "k": None if e is None else e.shape[1], "if": self.image_feature})

    def batch(self, idx: np.ndarray, vocab, use_patches: bool) -> dict:
        out = super().batch(idx, vocab, False)
        if not self.image_feature:
            out["global_"] = torch.zeros_like(out["global_"])
        out["tokens"] = self.entity_tokens[idx] if self.entity_tokens is not None else None
        return out


def caption_entities(captions: list, words: list, bank: torch.Tensor, k: int) -> torch.Tensor:
    """The concept-bank nouns of each caption (first k, in order of appearance) -> [N, k, D], zero rows to pad."""
    from ..features.concepts import count_nouns
    index = {w: i for i, w in enumerate(words)}
    out = torch.zeros(len(captions), k, bank.shape[1])
    for n, c in enumerate(captions):
        found = [index[w] for w in count_nouns([c]) if w in index][:k]
        if found:
            out[n, :len(found)] = bank.float()[found]
    return out


class CMSA(Method):
    family, block, training_data = "CMSA", "unpaired", "text + unpaired images"

    def __init__(self, config: CMSAConfig = CMSAConfig(), name: str = "cmsa"):
        super().__init__(config)
        self.name = name
        self.reported = (Reported("CMSA (seed 003) Table 1, MSCOCO (backbone not stated)", 100.2, 29.0, 25.5, 53.0,
                                  18.9) if name == "cmsa" else None)
        self._cache = {}

    def train_name(self) -> str:
        return self.name

    def needs_unpaired(self) -> bool:
        return True          # stage 2's RL images; the entity threshold is calibrated on them in every variant

    def _stage1_name(self, seed: int) -> str:
        """Stage 1's run folder: it depends only on the generator's inputs, so every row shares it."""
        stage1 = stable_hash({"image_feature": self.config.image_feature, "entities": self.config.entities})[:8]
        return f"cmsa-init-{stage1}-s{seed}"

    def training_runs(self, seed: int) -> tuple:
        """Stage 1's folder, shared by every row of the same generator inputs, and this row's RL folder."""
        return (self._stage1_name(seed),) + ((f"{self.run_name(seed)}-rl",) if self.config.rl else ())

    def best_weights(self, run_dir: str, seed: int) -> str:
        run = f"{self.run_name(seed)}-rl" if self.config.rl else self._stage1_name(seed)
        return f"{run_dir}/{run}/best.pt"

    def captioner_config(self, cfg):
        """Entity tokens through the token path, one kind of token (no token-type embedding: see MacCap's)."""
        return replace(cfg, use_patches=self.config.entities > 0, mixup=False, noise_variance=0.0, token_type=False)

    def build(self, exp, cap_cfg, pcm_cfg, seed: int):
        from ..model.captioner import Captioner
        torch.manual_seed(seed)
        d = exp.evals["val"][0].global_.shape[1]
        return Captioner(self.captioner_config(cap_cfg), len(exp.vocab), d, d, max(1, self.config.entities))

    def train_set(self, exp):
        text, k = exp.sets["text"], self.config.entities
        ent = caption_entities(exp.captions, exp.bank.words, exp.bank.embeddings, k) if k > 0 else None
        return EntityTextSet(text.store, text.rows, text.captions, None, text.global_key, ent,
                             self.config.image_feature)

    def _threshold(self, exp) -> float:
        key = ("threshold", exp.identity)
        if key not in self._cache:                       # unpaired images + text statistics only
            self._cache[key] = calibrated_threshold(exp.unpaired.all("patches"), exp, self.config.entities)
        return self._cache[key]

    def image_inputs(self, exp, global_: torch.Tensor, patches: torch.Tensor) -> tuple:
        """(global slot [B, D], entity tokens [B, K, D] or None) of images."""
        k = self.config.entities
        tokens = zero_shot_tags(patches, exp.bank.embeddings, self._threshold(exp), k) if k > 0 else None
        return (global_ if self.config.image_feature else torch.zeros_like(global_)), tokens

    def inference_set(self, exp, evalset, images=None):
        g_slot, tokens = self.image_inputs(exp, evalset.global_, evalset.patches)
        return recipe_eval_set(evalset, lambda g, t, p: (g_slot, tokens, None))

    def fit(self, model, exp, tcfg, name: str, progress: bool = True) -> dict:
        """Stage 1 (text-only cross-entropy, resumable) then, with ``rl``, stage 2 (SCST on unpaired images)."""
        from .rl import RLConfig, train_scst
        from ..training import train_captioner
        val = self.eval_set(exp, "val")
        hist = train_captioner(model, exp.vocab, self.train_set(exp), val, tcfg, self._stage1_name(tcfg.seed),
                               progress=progress)
        if not self.config.rl:
            return hist
        c = self.config
        rcfg = RLConfig(epochs=c.rl_epochs, batch_size=c.rl_batch, samples=c.samples, lr=c.rl_lr,
                        reward_weight=c.lam, seed=tcfg.seed,     # the discriminator: RLConfig.disc_lr (from scratch)
                        beam_size=tcfg.beam_size, grad_clip=tcfg.grad_clip, run_dir=tcfg.run_dir)
        store = exp.unpaired
        feats = store.get(range(len(store)), keys=["global", "patches"])
        g_all, t_all = self.image_inputs(exp, feats["global"], feats["patches"])

        def inputs(idx):
            idx = torch.as_tensor(idx)
            return g_all[idx], (t_all[idx] if t_all is not None else None), None, feats["global"][idx]

        def reward(image, captions):
            from .common import caption_cosine
            return clipscore(caption_cosine(exp.clip, image, captions))

        corpus = exp.vocab.encode_batch(exp.captions)[:, 1:]
        ident = stable_hash({"exp": exp.identity, "unpaired": store.manifest["identity"], "cmsa": self.options(),
                             "init": hist.get("val_cider")})
        rl_hist = train_scst(model, exp.vocab, inputs, len(store), corpus, reward, val, rcfg,
                             f"{name}-rl", ident, progress)
        return {**rl_hist, "init_loss": hist["loss"], "init_val_cider": hist["val_cider"]}


def _row(name, **kw):
    return name, (lambda: CMSA(CMSAConfig(**kw), name))


METHODS = dict([
    _row("cmsa"),
    _row("cmsa-init", rl=False),                       # stage 1 only
    _row("cmsa-no-clip", clip_reward=False),           # fluency reward only
    _row("cmsa-no-fluency", fluency_reward=False),     # CLIP reward only
])
