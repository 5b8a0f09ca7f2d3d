"""Experiment assembly on the sandbox: everything a method trains and is scored on, as one typed object.

    exp = prepare_sandbox(Profile("sandbox").ablation, clip)
    exp.sets["synthetic"], exp.evals["val"], exp.vocab, exp.bank, exp.groups, exp.unpaired

Captions, synthetic images (the engine, resumable), feature caches (synthetic, real renders of the same
scenes, caption embeddings), the concept bank, the vocabulary; for the methods that need them, the
embeddings of all five captions of every training scene (Unsupervised-ClipCap's paraphrase pairs) and real
renders of *other* training scenes whose captions are never used (unpaired images: mean alignment).
Everything is cached on disk; ``identity`` names the data a row was trained and scored on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from ..config import carryover as R
from ..config import AblationConfig
from ..utils.io import stable_hash


@dataclass
class Experiment:
    """Prepared sandbox data. ``sets``: training pairs by source ("synthetic", "real", "text"); ``evals``:
    split -> (EvalSet, SandboxSplit) for "val", "test", "test_unseen"; ``groups[i]``: the five captions of
    training scene i (``captions[i]`` is one of them); ``group_store``: their embeddings, rows 5 i .. 5 i + 4;
    ``unpaired``: image features of renders of other training scenes (no captions used)."""
    cfg: AblationConfig
    sets: dict
    evals: dict
    bank: object
    vocab: object
    captions: list
    groups: list
    group_store: object
    unpaired: object
    synthetic_images: object
    synthetic_cos: torch.Tensor
    clip_temperature: float
    identity: str
    clip: object = None                          # the backbone (text embeddings of detector tags, ...)
    carried: Optional[list] = None               # the carried-over settings on this backbone (config.carryover)
    group_rows: Optional[list] = None            # a corpus: group_store rows of every caption of caption i's image
                                                 # (None: the sandbox layout, rows 5 i .. 5 i + 4)


def prepare_sandbox(cfg: AblationConfig, clip, pipe=None, progress: bool = True, n_unpaired: Optional[int] = None
                    ) -> Experiment:
    """Build (or read back from the caches) the experiment of ``cfg``. ``pipe`` is the text-to-image pipeline
    (default: load ``cfg.stages.synthesis``); ``n_unpaired`` unpaired renders
    (default: a quarter of ``n_train``, at least 8)."""
    from ..features.concepts import build_concept_bank
    from ..sandbox.splits import load_sandbox_split
    from ..features.cache import extract_image_features, extract_text_features
    from ..synthesis.engine import SynthesisEngine, load_images, load_pipeline, pipeline_fingerprint, sandbox_captions
    from ..training import CaptionSet, EvalSet
    from ..model.vocab import Vocabulary
    P = cfg.stages
    world = P.world
    feat = replace(P.features, root=f"{cfg.out_dir}/features")
    all_caps, all_ids, scenes = sandbox_captions("train", cfg.n_train * 5, per_scene=5, world=world)
    pick = [5 * i + i % 5 for i in range(cfg.n_train)]               # one reference per scene, rotating
    caps, ids = [all_caps[i] for i in pick], [all_ids[i] for i in pick]
    syn_cfg = P.synthesis if cfg.layout_strength is None else replace(P.synthesis, layout_strength=cfg.layout_strength)
    pipe = pipe if pipe is not None else load_pipeline(syn_cfg)
    # one folder per text-to-image model: new weights (a retrained sandbox SD) synthesise beside the old images
    syn_cfg = replace(syn_cfg, out_dir=f"{cfg.out_dir}/synthetic-{pipeline_fingerprint(pipe)[:8]}")
    records = SynthesisEngine(pipe, syn_cfg, scorer=clip).run(caps, ids, progress=progress)
    syn_images = load_images(syn_cfg.out_dir, records)
    src = stable_hash([r["sha256"] for r in records])          # new images -> a new cache, never a stale one
    syn = extract_image_features(clip, syn_images, ids, f"abl-syn-{cfg.n_train}-{src[:8]}", feat,
                                 source_id=src, progress=progress)
    real_train = load_sandbox_split(world, "train", n=cfg.n_train, progress=progress)
    real = extract_image_features(clip, real_train.images, [s.scene_id for s in real_train.scenes],
                                  f"abl-real-train-{cfg.n_train}", feat, source_id="sandbox-train", progress=progress)
    text = extract_text_features(clip, caps, ids, f"abl-text-{cfg.n_train}", feat, progress=progress)
    cos = torch.tensor([r["clip_cos"] for r in records])
    cxe_cos = R.cxe_cosines(cos, R.backbone_of(clip))            # CXE's w acts on ViT-B/32's cosines, by rank
    rows = list(range(cfg.n_train))
    sets = {"synthetic": CaptionSet(syn, rows, caps, cxe_cos), "real": CaptionSet(real, rows, caps),
            "text": CaptionSet(text, rows, caps, global_key="text")}
    evals, eval_ids = {}, {}
    for split, n in (("val", cfg.n_val), ("test", cfg.n_test), ("test_unseen", cfg.n_test_unseen)):
        d = load_sandbox_split(world, split, n=n, progress=progress)
        store = extract_image_features(clip, d.images, [s.scene_id for s in d.scenes], f"abl-{split}-{n}", feat,
                                       source_id=f"sandbox-{split}", progress=progress)
        evals[split] = (EvalSet.from_store(store, d.captions), d)
        eval_ids[split] = store.manifest["identity"]
    bank = build_concept_bank(all_caps, clip, P.concepts)
    vocab = Vocabulary.build(all_caps, min_count=cfg.vocab_min_count,
                             max_length=P.captioner.max_length)
    identity = stable_hash({"sets": {k: v.identity() for k, v in sets.items()}, "evals": eval_ids,
                            "vocab": vocab.itos, "bank": bank.words})      # new images or CLIP -> new rows
    groups = [all_caps[5 * i:5 * i + 5] for i in range(cfg.n_train)]
    group_store = extract_text_features(clip, all_caps, all_ids, f"abl-text-all-{len(all_caps)}", feat,
                                        progress=progress)
    unpaired = unpaired_images(cfg, clip, world, feat, n_unpaired or max(8, cfg.n_train // 4), progress)
    backbone = R.backbone_of(clip)
    carried = R.derived(backbone, len(bank.words)) + [
        {"name": "CXE cosines of the synthetic pairs", "paper": R.VIT_B32.paired_cos_mean,
         "paper_backbone": R.VIT_B32.name, "value": float(cxe_cos.mean()),
         "invariant": f"raw mean {float(cos.mean()):.3f} (std {float(cos.std()):.4f}) carried by rank"}]
    from ..utils.io import atomic_write_json
    from ..utils.paths import repo_path
    atomic_write_json(repo_path(cfg.out_dir) / "carryover.json",
                      {"backbone": R.backbone_dict(backbone), "carried": carried,
                       "selections": {k: {kk: vv for kk, vv in v.items() if kk != "table"}
                                      for k, v in R.selections().items()}})
    return Experiment(cfg, sets, evals, bank, vocab, caps, groups, group_store, unpaired, syn_images, cos,
                      clip.temperature, identity, clip, carried)


class _LazyRenders:
    """Renders of ``scenes`` made only when a slice is asked for (a cached feature store asks for none)."""

    def __init__(self, scenes, world):
        self.scenes, self.world = scenes, world

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index):
        from ..sandbox import render_scenes
        return render_scenes(self.scenes[index], self.world)


def unpaired_images(cfg: AblationConfig, clip, world, feat, n: int, progress: bool = True):
    """Image features of renders of training scenes ``n_train .. n_train + n - 1``: scenes none of whose
    captions is a training caption, rendered without their captions (unpaired images)."""
    from ..features.cache import extract_image_features
    from ..sandbox import make_split
    scenes = make_split(world, "train", cfg.n_train + n)[cfg.n_train:]
    return extract_image_features(clip, _LazyRenders(scenes, world), [s.scene_id for s in scenes],
                                  f"abl-unpaired-{cfg.n_train}-{n}", feat, source_id=f"sandbox-train-{cfg.n_train}+{n}",
                                  progress=progress)
