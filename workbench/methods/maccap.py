"""MacCap (Qiu et al., "Mining Fine-Grained Image-Text Alignment for Zero-Shot Captioning via Text-Only
Training", AAAI 2024, seed 002).

Training (text only, Eq. 2-4): the caption's CLIP text feature T_c is repeated N_cr = 10 times and every copy
gets its own Gaussian noise, then L2-normalised ("region noise injection") -> N_cr region tokens.
Inference (Eq. 10-13): every ViT token through the CLIP head, I'_p = [I_c; patches] [N + 1, D]; the N_cr patches
the CLS token attends to most in the last block; their attention rows A [N_cr, N + 1] mix the tokens,
I_s = A I'_p; I_cr = I_s + I_c (Eq. 13 is a sum; the text says "average"), + noise, L2 -> N_cr tokens. Sampling
and filtering: S = 20 such noisy draws, each decoded with beam 4, and the caption whose CLIP text embedding is
closest to the image's is kept.

Decoder: ``decoder="captioner"`` (default on the sandbox) is the workbench captioner reading the N_cr tokens
through its token path, its global slot left at zero (the adaptor sees only the region tokens);
``decoder="frozen-lm"`` is the paper's: 32 queries -> 1 Transformer decoder layer -> 3-layer MLP -> a *frozen*
causal LM (``prefix_lm.py``; OPT-1.3b on the paper profiles, a small OPT pretrained on packed streams of the
training captions on the sandbox; its recipe is part of the row's key).

Paper vs official code (``Artanic30/MacCap``), each an option with the paper as default:
* ``aggregation="paper"``: top-N_cr over the patch columns of the CLS row (CLS excluded: "patches"), A = those
  attention rows (they sum to 1), I_s = A normalise(I'_p) (a weighted mean; the paper states no normalisation,
  per-token L2 as the code); ``"code"``: top-N_cr over all N + 1 tokens (CLS included), A = softmax of the rows
  *again* (flattens them), I_s = normalise(A normalise(I'_p)).
* noise variance: the paper's 0.016 "as suggested in CapDec" is CapDec's variance for ViT-B/32; ``None`` takes
  the captioner preset's (carried by CapDec's expected clean-noisy cosine 0.33: 0.064 on the sandbox, 0.016 on
  ViT-B/32, ``config.carryover``). The code adds
  the noise *without* re-normalising first, so at inference (|I_c + I_s| up to 2) it is relatively smaller; so here.
* S: the paper's 20; the code's default ``contrastive_generation_beam_size`` is 4 (row ``maccap-s4``).
* inference noise is on at S = 1 too (the code: always on unless ``noise_k 0``).
Checkpoints are picked on val with one draw (S = 1) of the sub-region recipe, so the inference rows (CLS only,
S = 1 / 4 / 20, code aggregation) share one trained model per seed, as in the paper's Table 5.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import carryover as R
from ..config import check_choice, check_range
from ..utils.io import stable_hash
from ..training import CaptionSet, EvalSet
from .base import Method, Reported
from .common import caption_cosine

# the options that change the trained model (the inference rows share it); "sandbox_lm": the small LM's recipe
TRAINING_FIELDS = ("n_cr", "noise_variance", "train_noise", "global_slot", "decoder", "lm_preset", "lm_model",
                   "sandbox_lm")


@dataclass(frozen=True)
class MacCapConfig:
    n_cr: int = 10                         # region tokens = noisy copies (training) = sub-regions (inference)
    noise_variance: Optional[float] = None  # None: the captioner preset's CapDec variance (paper: 0.016)
    train_noise: bool = True               # Table 5 "no noise" rows: False
    inference: str = "subregion"           # "subregion" (Eq. 10-13) | "cls" (N_cr noisy copies of I_c only)
    aggregation: str = "paper"             # "paper" | "code" (see the module docstring)
    combine: str = "sum"                   # Eq. 13: I_s + I_c ("sum") or their mean ("mean", the text's word)
    inference_noise: bool = True
    samples: int = 20                      # S draws reranked by CLIP (1: no sampling and filtering)
    beam: int = 4
    global_slot: str = "zeros"             # captioner decoder: "zeros" | "noisy_copy" (an extra noisy copy / I_c)
    decoder: str = "captioner"             # "captioner" | "frozen-lm"
    lm_preset: str = "sandbox"             # PrefixLMConfig preset of the frozen-LM decoder
    lm_model: Optional[str] = None         # frozen LM id or folder; None: the preset's (sandbox: pretrained here)

    def __post_init__(self):
        check_range("n_cr", self.n_cr, 1)
        check_range("samples", self.samples, 1)
        check_range("beam", self.beam, 1)
        if self.noise_variance is not None:
            check_range("noise_variance", self.noise_variance, 0.0, 1.0)
        check_choice("inference", self.inference, ("subregion", "cls"))
        check_choice("aggregation", self.aggregation, ("paper", "code"))
        check_choice("combine", self.combine, ("sum", "mean"))
        check_choice("global_slot", self.global_slot, ("zeros", "noisy_copy"))
        check_choice("decoder", self.decoder, ("captioner", "frozen-lm"))


# ----------------------------------------------------------------------------- pure functions
def noisy(x: torch.Tensor, variance: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """normalise(x + N(0, variance I)), x not normalised first (the official ``noise_injection``)."""
    if variance > 0:
        noise = torch.randn(x.shape, generator=generator) if generator is not None else torch.randn_like(x.float())
        x = x.float() + noise.to(x.device) * variance ** 0.5
    return F.normalize(x.float(), dim=-1)


def region_noise_tokens(text: torch.Tensor, n_cr: int, variance: float,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Eq. 2-4: text [B, D] -> [B, n_cr, D], copies of normalise(text) each with its own noise, renormalised.
    The expected cosine of a token to the clean feature is ~ 1 / sqrt(1 + D variance)."""
    t = F.normalize(text.float(), dim=-1).unsqueeze(1).expand(-1, n_cr, -1)
    return noisy(t, variance, generator)


def subregions(global_: torch.Tensor, patches: torch.Tensor, attn: torch.Tensor, n_cr: int,
               aggregation: str = "paper") -> tuple:
    """Eq. 10-12: global_ [B, D] (= the CLS token through the head), patches [B, N, D], attn [B, N + 1, N + 1]
    (last block, token 0 = CLS) -> (I_s [B, n_cr, D], A [B, n_cr, N + 1], picked token indices [B, n_cr])."""
    tokens = F.normalize(torch.cat([global_.unsqueeze(1), patches], dim=1).float(), dim=-1)     # I'_p [B, N+1, D]
    if attn.shape[1:] != (tokens.shape[1], tokens.shape[1]):
        raise ValueError(f"attn has shape {tuple(attn.shape)}; expected [B, {tokens.shape[1]}, {tokens.shape[1]}] "
                         f"for {patches.shape[1]} patches + CLS (rebuild the attention cache for this backbone).")
    attn = attn.float()
    if aggregation == "paper":
        if n_cr > patches.shape[1]:
            raise ValueError(f"n_cr={n_cr} exceeds the {patches.shape[1]} patches; lower n_cr.")
        picked = attn[:, 0, 1:].topk(n_cr, dim=-1).indices + 1
        rows = torch.gather(attn, 1, picked.unsqueeze(-1).expand(-1, -1, attn.shape[2]))
        return rows @ tokens, rows, picked
    if aggregation == "code":
        picked = attn[:, 0, :].topk(min(n_cr, attn.shape[2]), dim=-1).indices
        rows = torch.gather(attn, 1, picked.unsqueeze(-1).expand(-1, -1, attn.shape[2])).softmax(dim=-1)
        return F.normalize(rows @ tokens, dim=-1), rows, picked
    raise ValueError(f"aggregation={aggregation!r} must be 'paper' or 'code'.")


def inference_tokens(global_: torch.Tensor, region: Optional[torch.Tensor], n_cr: int, variance: float,
                     combine: str = "sum", generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Eq. 13 + noise: I_cr = normalise(I_s + I_c + n) [B, n_cr, D] (``region`` = I_s; None: CLS-only inference,
    n_cr noisy copies of I_c). ``combine="mean"`` halves the sum."""
    c = F.normalize(global_.float(), dim=-1).unsqueeze(1).expand(-1, n_cr, -1)
    x = c if region is None else (region + c if combine == "sum" else (region + c) / 2)
    return noisy(x, variance, generator)


def rerank(candidates: list, scores: torch.Tensor) -> tuple:
    """candidates [S][B] captions, scores [B, S] -> (best caption per image [B], index of the best [B])."""
    best = scores.argmax(dim=1)
    return [candidates[int(s)][i] for i, s in enumerate(best)], best


# ----------------------------------------------------------------------------- data
@dataclass
class RegionNoiseSet(CaptionSet):
    """Caption embeddings -> n_cr region-noise tokens (torch's global generator, reseeded per step)."""
    n_cr: int = 10
    variance: float = 0.0
    global_slot: str = "zeros"

    def identity(self) -> str:
        return stable_hash({"text": super().identity(), "n_cr": self.n_cr, "variance": self.variance,
                            "slot": self.global_slot})

    def batch(self, idx: np.ndarray, vocab, use_patches: bool) -> dict:
        out = super().batch(idx, vocab, False)
        t = out["global_"]
        out["tokens"] = region_noise_tokens(t, self.n_cr, self.variance)
        out["global_"] = (region_noise_tokens(t, 1, self.variance)[:, 0] if self.global_slot == "noisy_copy"
                          else torch.zeros_like(t))
        return out


class MacCapEvalSet(EvalSet):
    """Images with their last-block attention ``attn`` [B, N + 1, N + 1], captioned by MacCap's recipe; the last
    call's candidates and CLIP scores stay in ``last_samples`` ({"candidates": [S][B], "scores": [B, S]})."""

    def __init__(self, base: EvalSet, attn: torch.Tensor, cfg: MacCapConfig, variance: float, clip, seed: int = 0):
        super().__init__(base.global_, base.tokens, base.patches, base.refs, base.ids)
        self.attn, self.mcfg, self.variance, self.clip, self.seed = attn, cfg, variance, clip, seed
        self.last_samples = None

    def tokens_for(self, sample: int) -> tuple:
        """(global slot [B, D], region tokens [B, n_cr, D]) of draw ``sample`` (seeded by (seed, sample))."""
        c = self.mcfg
        gen = torch.Generator().manual_seed(self.seed * 1000 + sample)
        var = self.variance if c.inference_noise else 0.0
        region = (None if c.inference == "cls" else
                  subregions(self.global_, self.patches, self.attn, c.n_cr, c.aggregation)[0])
        tokens = inference_tokens(self.global_, region, c.n_cr, var, c.combine, gen)
        slot = noisy(self.global_, var, gen) if c.global_slot == "noisy_copy" else torch.zeros_like(self.global_)
        return slot, tokens

    def captions(self, model, vocab, beam: int) -> list:
        from ..model.decoding import generate
        cands = [generate(model, vocab, *self.tokens_for(s), None, beam=self.mcfg.beam)
                 for s in range(self.mcfg.samples)]
        if len(cands) == 1:
            self.last_samples = {"candidates": cands, "scores": None}
            return cands[0]
        scores = torch.stack([caption_cosine(self.clip, self.global_, c) for c in cands], dim=1)    # [B, S]
        self.last_samples = {"candidates": cands, "scores": scores}
        return rerank(cands, scores)[0]


def rerank_markdown(samples: dict, ids: list, n_images: int = 3, n_samples: int = 6) -> str:
    """A markdown table of the first ``n_samples`` sampled captions of the first ``n_images`` images with their
    CLIP cosine, the kept one in bold (``samples``: a ``MacCapEvalSet.last_samples``)."""
    cands, scores = samples["candidates"], samples["scores"]
    if scores is None:
        raise ValueError("samples has no CLIP scores: it comes from S = 1 (no rerank); use a row with samples > 1.")
    from ..utils.tables import markdown_table
    rows = []
    for i in range(min(n_images, len(ids))):
        best = int(scores[i].argmax())
        for s in range(min(n_samples, len(cands))):
            cap = f"**{cands[s][i]}** (kept)" if s == best else cands[s][i]
            rows.append([ids[i], s, cap, f"{float(scores[i, s]):.3f}"])
        if best >= n_samples:
            rows.append([ids[i], best, f"**{cands[best][i]}** (kept)", f"{float(scores[i, best]):.3f}"])
    return markdown_table(["image", "draw", "caption", "CLIP cos"], rows)


# ----------------------------------------------------------------------------- method
class MacCap(Method):
    family, block, training_data = "MacCap", "text only", "text"

    def __init__(self, config: MacCapConfig = MacCapConfig(), name: str = "maccap"):
        super().__init__(config)
        self.name = name
        self.reported = (Reported("MacCap (AAAI'24) Table 3, ViT-B/32 + frozen OPT-1.3b", 69.7, 17.4, 22.3, 45.9, 15.7)
                         if name == "maccap-lm" else None)          # the frozen-LM paper's number: its row only
        self._cache = {}

    def options(self) -> dict:
        """The config and, for the frozen-LM decoder, the small LM's pretraining config (another LM, another row)."""
        from .prefix_lm import sandbox_lm_options
        c = self.config
        lm = sandbox_lm_options(c.lm_model, c.lm_preset) if c.decoder == "frozen-lm" else {}
        return {**super().options(), **lm}

    def train_name(self) -> str:
        train = {k: v for k, v in self.options().items() if k in TRAINING_FIELDS}
        return f"maccap-{stable_hash(train)[:8]}"

    def variance(self, exp) -> float:
        if self.config.noise_variance is not None:
            return self.config.noise_variance
        return exp.cfg.stages.captioner.noise_variance

    def captioner_config(self, cfg):
        """The N_cr region tokens through the token path, one kind of token: no token-type embedding (the
        adaptor has none; the captioner's N(0, 1)-initialised one swamped the unit-norm tokens, which were then
        ignored: loss 1.568 with the tokens = 1.568 shuffled, vs 1.220 / 2.065 without it, 300 steps)."""
        return replace(cfg, use_patches=True, mixup=False, noise_variance=0.0, token_type=False)

    def train_set(self, exp):
        text = exp.sets["text"]
        var = self.variance(exp) if self.config.train_noise else 0.0
        return RegionNoiseSet(text.store, text.rows, text.captions, None, text.global_key, self.config.n_cr, var,
                              self.config.global_slot)

    def _lm(self, exp):
        from .prefix_lm import PrefixLMConfig, load_lm, pretrain_lm
        lcfg = PrefixLMConfig.preset(self.config.lm_preset, max_length=exp.vocab.max_length)
        model_id = self.config.lm_model or lcfg.lm_model
        if "lm" not in self._cache:
            self._cache["lm"] = (load_lm(model_id, lcfg.max_length) if model_id else
                                 pretrain_lm(exp.captions, exp.vocab, lcfg, f"{exp.cfg.out_dir}/lm"))
        return self._cache["lm"], lcfg

    def paper_training(self, corpus: str) -> dict:
        """MacCap §4.1: batch 128, lr 4e-4 (its frozen-LM decoder; the workbench decoder keeps the preset's)."""
        return {"batch_size": 128, "lr": 4e-4} if self.config.decoder == "frozen-lm" else {}

    def vocabulary(self, exp):
        return self._lm(exp)[0][1] if self.config.decoder == "frozen-lm" else exp.vocab

    def build(self, exp, cap_cfg, pcm_cfg, seed: int):
        from ..model.captioner import Captioner
        d = exp.evals["val"][0].global_.shape[1]
        if self.config.decoder == "frozen-lm":
            (lm, vocab), lcfg = self._lm(exp)
            torch.manual_seed(seed)
            from .prefix_lm import PrefixCaptioner
            return PrefixCaptioner(lm, d, lcfg, vocab.max_length)
        torch.manual_seed(seed)
        return Captioner(self.captioner_config(cap_cfg), len(exp.vocab), d, d, self.config.n_cr)

    def _attention(self, exp, evalset, images):
        if images is None:
            raise ValueError("MacCap needs the images of the eval set (images=...): its sub-region aggregation reads "
                             "the CLIP's last-block attention, which the feature cache does not hold.")
        from ..features.cache import extract_attention
        key = stable_hash({"ids": list(evalset.ids), "clip": exp.identity})[:10]
        feat = replace(exp.cfg.stages.features, root=f"{exp.cfg.out_dir}/features")
        store = extract_attention(exp.clip, images, evalset.ids, f"attn-{len(evalset.ids)}-{key}", feat,
                                  source_id=key, progress=False)
        return store.all("attn")

    def _recipe(self, exp, evalset, images, cfg: MacCapConfig) -> MacCapEvalSet:
        return MacCapEvalSet(evalset, self._attention(exp, evalset, images), cfg, self.variance(exp), exp.clip)

    def eval_set(self, exp, split: str):
        base, data = exp.evals[split]
        cfg = self.config
        if split == "val":                    # checkpoint selection: one sub-region draw, the same for every row
            cfg = replace(cfg, inference="subregion", aggregation="paper", combine="sum", inference_noise=True,
                          samples=1)
        return self._recipe(exp, base, data.images, cfg)

    def inference_set(self, exp, evalset, images=None):
        return self._recipe(exp, evalset, images, self.config)


def _row(name, **kw):
    return name, (lambda: MacCap(MacCapConfig(**kw), name))


METHODS = dict([
    _row("maccap"),                                              # the paper's recipe (S = 20)
    _row("maccap-s4", samples=4),                                # the code's default S
    _row("maccap-s1", samples=1),                                # no sampling and filtering
    _row("maccap-cls", samples=1, inference="cls"),              # Table 5: CLS token only
    _row("maccap-code", samples=1, aggregation="code"),          # the code's aggregation (vs maccap-s1)
    _row("maccap-1tok-clean", n_cr=1, train_noise=False, samples=1),   # Table 5 rows 1-4
    _row("maccap-1tok", n_cr=1, samples=1),
    _row("maccap-clean", train_noise=False, samples=1),
    _row("maccap-lm", decoder="frozen-lm"),                      # the paper's frozen-LM decoder (S = 20)
])
PROFILES = {p: {"noise_variance": R.noise_variance(b), "decoder": "frozen-lm", "lm_preset": p}
            for p, b in R.PAPER_BACKBONES.items()}
