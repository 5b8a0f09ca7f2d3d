"""How much a caption says of its image: the caption-world statistics the sandbox is calibrated on.

The sandbox is a miniature of MSCOCO in the statistics that decide how text-only captioners behave. Beside
the CLIP's gap (``gap.py``) and the synthesis' faithfulness (``faithfulness.py``) these are:

* **annotator agreement**: one reference per image scored with CIDEr-D against the others
  (``evaluation.annotator_agreement``); MSCOCO Karpathy test: 93.6 on 1,000 images.
* **nearest-caption retrieval** (CLIPRe): each test image captioned with the training caption nearest to it
  in CLIP space, scored against the same held-out references as the agreement, as a share of it.
  MSCOCO with ViT-B/32: 13.6 CIDEr (MAGIC, Su et al. 2022, Table 1) = 0.15 of agreement.
* **text-side nearest caption**: the training caption most similar (TF-IDF) to a held-out *reference*, as a
  share of agreement (how re-usable captions are, without any image).
* **random caption** (the language's floor): a training caption drawn at random for each image, as a share of
  agreement: what any caption of the world earns from shared words alone. MSCOCO: 0.032.
* **vocabulary**: distinct words of the training captions and the share of test references that occur verbatim
  among them.
* **zero-shot retrieval recall** image -> text and text -> image, R@1/5/10 (5 captions an image).

    stats = caption_world(refs, memory)                           # text-only statistics
    stats.update(clip_retrieval(img, txt_refs, mem_txt, refs, memory))
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from ..model.vocab import tokenize
from .metrics import annotator_agreement, cider, held_out_references

# Real reference values, each with its source (measured by the workbench's own scorer where it says so).
REAL_CAPTION_WORLD = {
    "agreement_cider": {"value": 93.6, "source": "MSCOCO Karpathy test, 1,000 random images, seed 0 "
                                                 "(evaluation.annotator_agreement on the Karpathy captions)"},
    "clip_retrieval_cider": {"value": 13.6, "source": "CLIPRe with ViT-B/32 on MSCOCO (MAGIC, Su et al. 2022, "
                                                      "Table 1; rescored here to 13.6 from its outputs)"},
    "clip_retrieval_share": {"value": round(13.6 / 93.6, 3), "source": "13.6 / 93.6"},
    "text_retrieval_share": {"value": 0.64, "source": "MSCOCO, 4,000-caption memory, TF-IDF nearest to a "
                                                      "held-out reference (measured by the workbench)"},
    "random_share": {"value": 0.032, "source": "MSCOCO, a random one of 4,000 Karpathy val captions for each of "
                                               "1,000 Karpathy test images, seed 0 (caption_stats.random_share)"},
    "vocabulary": {"value": 3186, "source": "distinct words in 4,000 MSCOCO training captions"},
    "verbatim_share": {"value": 0.001, "source": "MSCOCO test references found verbatim among training captions"},
    "mean_words": {"value": 10.5, "source": "MSCOCO Karpathy val, 25,010 captions (data/caption_lengths.json, "
                                            "workbench calibrate --lengths)"},
    # CLIP ViT-B/32 (OpenAI weights) zero-shot on the MSCOCO 5k test (5,000 images x 5 captions).
    "recall_i2t": {"value": (50.1, 75.0, 83.5), "source": "CLIP ViT-B/32, MSCOCO 5k test, R@1/5/10 (open_clip "
                                                           "docs/openclip_retrieval_results.csv, CLIP_benchmark)"},
    "recall_t2i": {"value": (30.4, 55.9, 66.9), "source": "CLIP ViT-B/32, MSCOCO 5k test, R@1/5/10 (same file)"},
}
# The geometry of real CLIP ViT-B/32 on MSCOCO that the sandbox CLIP moves toward.
REAL_GEOMETRY = {
    "paired_cos": {"value": "0.330; -, 0.228-0.446", "source": "MacCap (Qiu et al. AAAI 2024) Table 1, MSCOCO val"},
    "margin": {"value": "≈0.15", "source": "0.310 - 0.162 on 500 COCO val2017 pairs of Liang et al.'s released "
                                           "features (ViT-B/16; no published B/32 value)"},
    "image_image_cos": {"value": 0.47, "source": "Mind the Gap (Liang et al. NeurIPS 2022) Fig. 2a, 5,000 COCO images"},
    "text_text_cos": {"value": 0.51, "source": "Mind the Gap (Liang et al. NeurIPS 2022) Fig. 2a, 5,000 COCO captions"},
}
# The sandbox's bounds (issue 23): retrieval share of agreement, agreement, recall within +-10 points.
BOUNDS = {"clip_retrieval_share": (0.10, 0.30), "agreement_cider": (60.0, 140.0), "recall_points": 10.0}


def held_out_split(refs: dict, seed: int = 0) -> tuple:
    """``(held, rest)``: one reference per image drawn as ``annotator_agreement`` draws it, and the others."""
    return held_out_references(refs, np.random.default_rng(seed))


def vocabulary(memory: list, refs: dict) -> dict:
    """Distinct words of the training captions ``memory``, their mean length in words, and the share of test
    references found verbatim in it."""
    if not memory:
        raise ValueError("memory is empty; give the training captions (one list of strings).")
    words = Counter(w for c in memory for w in tokenize(c))
    known = {" ".join(tokenize(c)) for c in memory}
    all_refs = [c for v in refs.values() for c in v]
    return {"vocabulary": len(words), "n_memory": len(memory),
            "mean_words": float(np.mean([len(tokenize(c)) for c in memory])),
            "verbatim_share": float(np.mean([" ".join(tokenize(c)) in known for c in all_refs]))}


def text_retrieval(refs: dict, memory: list, seed: int = 0) -> dict:
    """CIDEr of the training caption most similar (TF-IDF cosine) to each held-out reference, against the rest."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    held, rest = held_out_split(refs, seed)
    vec = TfidfVectorizer().fit(memory)
    nearest = (vec.transform(list(held.values())) @ vec.transform(memory).T).toarray().argmax(1)
    return {"text_retrieval_cider": 100 * cider(rest, {k: memory[i] for k, i in zip(held, nearest)})}


def random_share(refs: dict, memory: list, agreement: float, seed: int = 0) -> dict:
    """The caption language's floor: CIDEr of a random memory caption for each image (against the references
    ``annotator_agreement`` keeps, seed ``seed``) and its share of ``agreement``."""
    if not memory:
        raise ValueError("memory is empty; give the training captions (one list of strings).")
    _, rest = held_out_split(refs, seed)
    pick = np.random.default_rng(seed).integers(len(memory), size=len(rest))
    c = 100 * cider(rest, {k: memory[i] for k, i in zip(rest, pick)})
    return {"random_cider": c, "random_share": c / agreement}


def caption_world(refs: dict, memory: list, seed: int = 0) -> dict:
    """Text-only statistics of a caption world: agreement, TF-IDF nearest caption (and its share), the random
    caption's share (the floor), vocabulary."""
    out = {"agreement_cider": 100 * annotator_agreement(refs, seed=seed)["CIDEr"]}
    out.update(text_retrieval(refs, memory, seed))
    out["text_retrieval_share"] = out["text_retrieval_cider"] / out["agreement_cider"]
    out.update(random_share(refs, memory, out["agreement_cider"], seed))
    out.update(vocabulary(memory, refs))
    return out


def nearest_caption(img: torch.Tensor, mem_txt: torch.Tensor) -> torch.Tensor:
    """Index of the memory caption nearest to each image: img [N, D], mem_txt [M, D] -> [N]."""
    return (F.normalize(img.float(), dim=-1) @ F.normalize(mem_txt.float(), dim=-1).T).argmax(-1)


def clip_retrieval(img: torch.Tensor, mem_txt: torch.Tensor, refs: dict, memory: list, agreement: float,
                   seed: int = 0) -> dict:
    """CLIPRe: each image (``img`` [N, D], in ``refs``' order) captioned with its nearest memory caption, scored
    against the references ``annotator_agreement`` keeps (seed ``seed``), and as a share of ``agreement``."""
    if len(img) != len(refs):
        raise ValueError(f"img has {len(img)} rows for {len(refs)} images in refs; they must pair up in order.")
    _, rest = held_out_split(refs, seed)
    nn = nearest_caption(img, mem_txt).tolist()
    hyps = {k: memory[i] for k, i in zip(refs, nn) if k in rest}
    c = 100 * cider(rest, hyps)
    return {"clip_retrieval_cider": c, "clip_retrieval_share": c / agreement}


def recall_at_k(img: torch.Tensor, txt: torch.Tensor, per_image: int, ks=(1, 5, 10)) -> dict:
    """Zero-shot retrieval recall (percent) with ``per_image`` captions an image: img [N, D], txt [N * per_image, D],
    caption j belonging to image j // per_image (the CLIP paper's MSCOCO protocol)."""
    n = len(img)
    if len(txt) != n * per_image:
        raise ValueError(f"txt has {len(txt)} rows; expected {n} images x per_image={per_image}.")
    sim = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).T        # [N, N*per]
    owner = torch.arange(n).repeat_interleave(per_image)                              # [N*per]
    # image -> text: rank of the best-ranked own caption
    order = sim.argsort(dim=1, descending=True)                                        # [N, N*per]
    hit = owner[order] == torch.arange(n)[:, None]
    i2t_rank = hit.float().argmax(dim=1)                                               # first hit position
    # text -> image
    t_order = sim.T.argsort(dim=1, descending=True)                                    # [N*per, N]
    t2i_rank = (t_order == owner[:, None]).float().argmax(dim=1)
    return {"i2t": tuple(100 * float((i2t_rank < k).float().mean()) for k in ks),
            "t2i": tuple(100 * float((t2i_rank < k).float().mean()) for k in ks)}


def within_bounds(stats: dict) -> dict:
    """Which calibration targets the measured ``stats`` meet (``BOUNDS``)."""
    out = {}
    for key in ("clip_retrieval_share", "agreement_cider"):
        if key in stats:
            lo, hi = BOUNDS[key]
            out[key] = lo <= stats[key] <= hi
    tol = BOUNDS["recall_points"]
    for key in ("i2t", "t2i"):
        if f"recall_{key}" in stats:
            real = REAL_CAPTION_WORLD[f"recall_{key}"]["value"]
            out[f"recall_{key}"] = all(abs(a - b) <= tol for a, b in zip(stats[f"recall_{key}"], real))
    return out
