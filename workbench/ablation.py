"""The sandbox ablation (PCM-Net Table 3) with two references: text-only and an oracle on real renders.

Variants (each trained with every seed, checkpoint picked by val CIDEr on real val renders):
    text-only  CapDec-style: trained on caption CLIP embeddings + noise, global feature only
    base       synthetic image features (global + patches), plain cross-entropy
    +mixup     base + PCM (replace in training, append at inference)
    +cxe       base + CLIP-weighted cross-entropy
    pcm-net    base + PCM + CXE
    oracle     base trained on real renders of the same training captions

    python -m workbench.ablation --preset sandbox        # writes runs/ablation/<preset>/results.{md,csv}
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

import torch

from .config import (ABLATION_VARIANTS as VARIANTS, AblationConfig, CaptionerConfig, ClipConfig, ConceptConfig,
                     FeatureConfig, PCMConfig, SynthesisConfig, TrainConfig, WorldConfig)
from .paths import atomic_write_json, repo_path, stable_hash


def prepare_sandbox(cfg: AblationConfig, clip, pipe=None, progress: bool = True) -> dict:
    """Captions, synthetic images (engine, resumable), feature caches, concept bank and vocabulary.

    ``pipe`` is the text-to-image pipeline (default: load ``SynthesisConfig.preset(cfg.synthesis_preset)``)."""
    from .concepts import build_concept_bank
    from .data import load_sandbox_split
    from .features import extract_image_features, extract_text_features
    from .synthesis import SynthesisEngine, load_images, load_pipeline, sandbox_captions
    from .training import CaptionSet, EvalSet
    from .vocab import Vocabulary
    world = WorldConfig.preset(cfg.world_preset)
    feat = replace(FeatureConfig.preset(cfg.world_preset), root=f"{cfg.out_dir}/features")
    all_caps, all_ids, scenes = sandbox_captions("train", cfg.n_train * 5, per_scene=5, world=world)
    pick = [5 * i + i % 5 for i in range(cfg.n_train)]               # one reference per scene, rotating
    caps, ids = [all_caps[i] for i in pick], [all_ids[i] for i in pick]
    syn_cfg = replace(SynthesisConfig.preset(cfg.synthesis_preset), out_dir=f"{cfg.out_dir}/synthetic")
    if cfg.layout_strength is not None:
        syn_cfg = replace(syn_cfg, layout_strength=cfg.layout_strength)
    pipe = pipe if pipe is not None else load_pipeline(syn_cfg)
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
    rows = list(range(cfg.n_train))
    sets = {"synthetic": CaptionSet(syn, rows, caps, cos), "real": CaptionSet(real, rows, caps),
            "text": CaptionSet(text, rows, caps, global_key="text")}
    evals, eval_ids = {}, {}
    for split, n in (("val", cfg.n_val), ("test", cfg.n_test), ("test_unseen", cfg.n_test_unseen)):
        d = load_sandbox_split(world, split, n=n, progress=progress)
        store = extract_image_features(clip, d.images, [s.scene_id for s in d.scenes], f"abl-{split}-{n}", feat,
                                       source_id=f"sandbox-{split}", progress=progress)
        evals[split] = (EvalSet.from_store(store, d.captions), d)
        eval_ids[split] = store.manifest["identity"]
    bank = build_concept_bank(all_caps, clip, ConceptConfig.preset(cfg.world_preset))
    vocab = Vocabulary.build(all_caps, min_count=cfg.vocab_min_count,
                             max_length=CaptionerConfig.preset(cfg.captioner_preset).max_length)
    identity = stable_hash({"sets": {k: v.identity() for k, v in sets.items()}, "evals": eval_ids,
                            "vocab": vocab.itos, "bank": bank.words})      # new images or CLIP -> new rows
    return {"sets": sets, "evals": evals, "bank": bank, "vocab": vocab, "synthetic_images": syn_images,
            "captions": caps, "synthetic_cos": cos, "identity": identity}


def row_key(cfg: AblationConfig, tcfg: TrainConfig, cap_cfg: CaptionerConfig, pcm_cfg: PCMConfig, variant: str,
            data_identity: str) -> str:
    """Identity of one ablation run: every config, the variant, the captioner architecture and the data
    (synthetic images, CLIP features, vocabulary, concept bank); a saved row is reused only under the same key."""
    from .captioner import ARCHITECTURE
    run = {k: v for k, v in asdict(cfg).items() if not k.startswith("sweep_")}   # the sweep's settings: not this run's
    return stable_hash({"ablation": run, "train": asdict(tcfg), "captioner": asdict(cap_cfg),
                        "pcm": asdict(pcm_cfg), "variant": variant, "architecture": ARCHITECTURE,
                        "data": data_identity})


def build_model(variant: str, data: dict, cap_cfg: CaptionerConfig, pcm_cfg: PCMConfig, seed: int):
    from .captioner import Captioner
    v = VARIANTS[variant]
    torch.manual_seed(seed)
    cfg = replace(cap_cfg, use_patches=v["use_patches"], mixup=v["mixup"])
    probe = data["evals"]["val"][0]
    return Captioner(cfg, len(data["vocab"]), probe.global_.shape[1], probe.tokens.shape[2], probe.tokens.shape[1],
                     pcm_cfg if v["mixup"] else None, data["bank"].embeddings if v["mixup"] else None)


def run_ablation(cfg: AblationConfig, clip, data: dict, progress: bool = True) -> list:
    """Train and evaluate every (variant, seed); one row per run with its config, seed, metrics and test
    captions. Each finished run is saved to ``<out_dir>/rows/<variant>-s<seed>.json`` and reused by a rerun
    with the same configs (a killed ablation resumes; each training run also resumes from its checkpoint)."""
    from .protocols import evaluate_captioner as evaluate
    from .training import train_captioner
    cap_cfg, pcm_cfg = CaptionerConfig.preset(cfg.captioner_preset), PCMConfig.preset(cfg.pcm_preset)
    rows = []
    for variant in cfg.variants:
        for seed in cfg.seeds:
            tcfg = replace(TrainConfig.preset(cfg.train_preset), seed=seed, cxe=VARIANTS[variant]["cxe"],
                           run_dir=f"{cfg.out_dir}/runs")
            key = row_key(cfg, tcfg, cap_cfg, pcm_cfg, variant, data["identity"])
            path = repo_path(cfg.out_dir) / "rows" / f"{variant}-s{seed}.json"
            if path.exists() and json.loads(path.read_text()).get("key") == key:
                rows.append(json.loads(path.read_text()))
                continue
            t0 = time.time()
            model = build_model(variant, data, cap_cfg, pcm_cfg, seed)
            hist = train_captioner(model, data["vocab"], data["sets"][VARIANTS[variant]["data"]],
                                   data["evals"]["val"][0], tcfg, f"{variant}-s{seed}", progress=progress)
            metrics, hyps = evaluate(model, data["vocab"], data["evals"]["test"][0], clip, tcfg.beam_size)
            unseen, unseen_hyps = evaluate(model, data["vocab"], data["evals"]["test_unseen"][0], clip, tcfg.beam_size)
            row = {"model": variant, "seed": seed, **metrics, "unseen_CIDEr": unseen["CIDEr"],
                   "unseen_CLIPScore": unseen["CLIPScore"], "best_val_CIDEr": max(hist["val_cider"]),
                   "seconds": round(time.time() - t0, 1), "captioner": asdict(model.cfg), "train": asdict(tcfg),
                   "pcm": asdict(pcm_cfg) if VARIANTS[variant]["mixup"] else None, "key": key,
                   "test_hyps": hyps, "unseen_hyps": unseen_hyps, "history": hist}
            atomic_write_json(path, row)
            rows.append(row)
    return rows


SWEEP_VARIANTS = ("base", "+mixup", "+cxe", "pcm-net")
SWEEP_REFERENCES = ("text-only", "oracle")          # trained once, at the first point (they use no synthetic image)


def sweep_config(cfg: AblationConfig, strength: float, variants=SWEEP_VARIANTS, seed: int = 0) -> AblationConfig:
    """The ablation config of one point of the faithfulness sweep (``cfg.sweep_n_train`` pairs, one seed)."""
    return replace(cfg, layout_strength=strength, variants=tuple(variants), seeds=(seed,), n_train=cfg.sweep_n_train,
                   out_dir=f"{cfg.out_dir}-sweep/s{strength:g}")


def run_sweep(cfg: AblationConfig, clip, seed: int = 0, progress: bool = True) -> dict:
    """Base, +Mix-up, +CXE and PCM-Net trained on the synthetic images of every ``cfg.sweep_strengths`` (1.0 =
    pure text-to-image), with text-only and oracle as references at the same size; each point's faithfulness is
    measured on *val* captions. Resumable per run and per image. Returns ``{"rows", "references",
    "faithfulness": {strength: val profile rates}, "real": val profile of real renders}``."""
    from .calibrate import strength_label, sweep as profile_sweep
    from .synthesis import load_pipeline
    strengths = sorted(cfg.sweep_strengths)
    base = SynthesisConfig.preset(cfg.synthesis_preset)
    pipe = load_pipeline(base)
    prof = profile_sweep(pipe, clip, base, WorldConfig.preset(cfg.world_preset), strengths, "val",
                         cfg.sweep_n_profile, progress=progress)
    rows, refs = [], []
    for k, s in enumerate(strengths):
        point = sweep_config(cfg, s, SWEEP_VARIANTS + (SWEEP_REFERENCES if k == 0 else ()), seed)
        data = prepare_sandbox(point, clip, pipe=pipe, progress=progress)
        for r in run_ablation(point, clip, data, progress):
            if r["model"] in SWEEP_REFERENCES:
                refs.append(r)
                continue
            rows.append({**r, "strength": s, "faithfulness_overall": prof[s]["synthetic"]["overall"],
                         "point": f"{r['model']} @ {strength_label(s)}"})
    return {"rows": rows, "references": refs, "faithfulness": {s: prof[s]["synthetic"] for s in strengths},
            "real": prof[strengths[0]]["real"]}


def table_rows(rows: list) -> list:
    """Rows without the bulky per-image captions and curves (for the CSV / markdown table)."""
    return [{k: v for k, v in r.items() if k not in ("test_hyps", "unseen_hyps", "history", "key")} for r in rows]


def main(argv=None) -> None:
    from .backbones import load_clip
    from .evaluation import write_table
    ap = argparse.ArgumentParser(description="Run the sandbox ablation (text-only, base, +mixup, +cxe, pcm-net, oracle).")
    ap.add_argument("--preset", default="sandbox", choices=AblationConfig.presets())
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds, e.g. --seeds 0")
    ap.add_argument("--n-train", type=int, default=None, help="override the number of training pairs (own out_dir)")
    ap.add_argument("--sweep", action="store_true",
                    help="the faithfulness sweep instead: base/+mixup/+cxe/pcm-net (seed 0, sweep_n_train pairs) at "
                         "each of the preset's sweep_strengths, text-only and oracle as references")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = AblationConfig.preset(args.preset)
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(args.seeds))
    if args.n_train:
        cfg = replace(cfg, n_train=args.n_train, out_dir=f"{cfg.out_dir}-n{args.n_train}")
    t0 = time.time()
    clip = load_clip(ClipConfig.preset("sandbox"))
    if args.sweep:
        return _main_sweep(cfg, clip, t0)
    data = prepare_sandbox(cfg, clip)
    rows = run_ablation(cfg, clip, data)
    out = repo_path(cfg.out_dir)
    paths = write_table(table_rows(rows), out / "results")
    atomic_write_json(out / "summary.json", {"config": asdict(cfg), "seconds": round(time.time() - t0, 1),
                                             "reproduce": f"python -m workbench.ablation --preset {args.preset}"})
    print(paths["markdown"])
    print(f"total {time.time() - t0:.0f} s; table in {paths['md']}")


def _main_sweep(cfg: AblationConfig, clip, t0: float) -> None:
    from .evaluation import write_table
    from .plots import faithfulness_sweep, save_to
    res = run_sweep(cfg, clip)
    out = repo_path(f"{cfg.out_dir}-sweep")
    rows = table_rows(res["rows"])
    paths = write_table(rows + [{**r, "point": r["model"]} for r in table_rows(res["references"])], out / "sweep",
                        group_key="point")
    refs = {r["model"]: r["CIDEr"] for r in res["references"]}
    save_to(faithfulness_sweep(rows, refs, res["real"]["overall"]), out / "sweep.png")
    atomic_write_json(out / "summary.json", {"config": asdict(cfg), "strengths": sorted(cfg.sweep_strengths),
                                             "faithfulness_val": {f"{s:g}": v for s, v in res["faithfulness"].items()},
                                             "real_val": res["real"], "references_CIDEr": refs,
                                             "seconds": round(time.time() - t0, 1),
                                             "reproduce": "python -m workbench.ablation --preset sandbox --sweep"})
    print(paths["markdown"])
    print(f"total {time.time() - t0:.0f} s; sweep in {out}")


if __name__ == "__main__":
    main()
