"""Calibrate the sandbox against real data: its caption world and CLIP (``--world``), its synthesis (default).

    workbench calibrate --world                 # caption-world + CLIP statistics beside real ones
    workbench calibrate                         # val sweep of the layout strength, then test profile
    workbench calibrate --strengths 0.3 0.5 1.0 --n 100

``--world`` measures how much a sandbox caption says of its image (annotator agreement, nearest-caption
retrieval by the sandbox CLIP, TF-IDF nearest caption, vocabulary, zero-shot recall on 5,000 test scenes x 5
captions, the CLIP's geometry) and writes ``data/sandbox_world.json`` with the real reference values and their
sources (``caption_stats.REAL_CAPTION_WORLD``); README's calibration table is its markdown.

The synthesis calibration: 
for every strength the val captions of each GenEval-like category are synthesised and profiled
(``workbench.synthesis.faithfulness``); the strength closest to SD 1.5 on single object and colour among the
measurably synthetic settings is chosen on *val*, then profiled once on *test*. The report goes to
``data/sandbox_synthesis.json`` (the sandbox synthesis preset's manifest: the chosen strength, every val
profile, the test profiles of real renders and synthetic images, the CLIP and SD they were measured with).
Resumable: the images of each strength are kept under ``runs/synthetic/`` and reused.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from ..synthesis.engine import pipeline_fingerprint
from ..synthesis.faithfulness import GENEVAL, MIN_PROBE, choose_strength, distance_to, profile_report
from ..utils.io import atomic_write_json, sha256_file
from ..utils.paths import repo_path
from ..utils.tables import markdown_table

DEFAULT_STRENGTHS = (0.05, 0.1, 0.3, 0.5, 0.7, 0.8, 1.0)      # 0.05: one of 20 steps redraws the sketch
REPORT = "data/sandbox_synthesis.json"
WORLD_REPORT = "data/sandbox_world.json"


def world_report(clip, world, n_agreement: int = 1000, n_memory: int = 4000, n_recall: int = 5000,
                 progress: bool = True) -> dict:
    """The caption-world statistics of the sandbox with ``clip`` (see the module docstring); test scenes for
    agreement / retrieval / recall, the first reference of ``n_memory`` train scenes as the caption memory
    (the ablation's training captions), val pairs for the geometry."""
    import torch
    import torch.nn.functional as F

    from ..evaluation import caption_stats as cs
    from ..sandbox.splits import load_sandbox_split
    from ..backbones.gap import gap_summary, geometry
    test = load_sandbox_split(world, "test", n=max(n_agreement, n_recall), progress=progress)
    train = load_sandbox_split(world, "train", n=n_memory, progress=progress)
    memory = [c[0] for c in train.captions]
    refs = {s.scene_id: c for s, c in zip(test.scenes[:n_agreement], test.captions[:n_agreement])}
    out = cs.caption_world(refs, memory)
    with torch.no_grad():
        img = F.normalize(clip.image_features(test.images[:n_recall]).global_.float(), dim=-1)     # [N, D]
        txt = F.normalize(clip.text_features([c for cs_ in test.captions[:n_recall] for c in cs_]).float(), dim=-1)
        mem = F.normalize(clip.text_features(memory).float(), dim=-1)                              # [M, D]
    out.update(cs.clip_retrieval(img[:n_agreement], mem, refs, memory, out["agreement_cider"]))
    rec = cs.recall_at_k(img, txt, per_image=5)
    out["recall_i2t"], out["recall_t2i"], out["n_recall_images"] = rec["i2t"], rec["t2i"], n_recall
    val = load_sandbox_split(world, "val", n=1000, progress=progress)
    with torch.no_grad():
        vi = F.normalize(clip.image_features(val.images).global_.float(), dim=-1)
        vt = F.normalize(clip.text_features(val.first_captions()).float(), dim=-1)
    g = gap_summary(vi, vt)
    out["geometry"] = {"paired_cos": g["paired_cos"], "image_image_cos": g["image_image_cos"],
                       "text_text_cos": g["text_text_cos"], **geometry(vi, vt)}
    out["pcm_inputs"] = pcm_inputs(clip, world, test, [c for cs_ in train.captions for c in cs_], n=300)
    out["within_bounds"] = cs.within_bounds(out)
    return out


LENGTH_SCENES = 4000      # the sandbox's length histogram: the 5 references of the first 4,000 train scenes


def length_histogram(captions) -> dict:
    """{words: count} of ``captions`` (the captioner's word tokens), keys as strings (JSON)."""
    from collections import Counter
    from ..model.vocab import tokenize
    return {str(k): v for k, v in sorted(Counter(len(tokenize(c)) for c in captions).items())}


def sandbox_length_histogram(world) -> dict:
    from ..sandbox.captions import reference_captions
    from ..sandbox.world import make_split
    return length_histogram(c for s in make_split(world, "train", LENGTH_SCENES) for c in reference_captions(s))


def lengths_report(world, karpathy: str | None = None, previous: dict | None = None) -> dict:
    """Caption-length histograms: the sandbox's training captions and MSCOCO's (Karpathy val captions, read from
    ``karpathy`` when given, else kept from ``previous``); the captioner's max length is carried between them
    (``carryover.max_length``)."""
    from ..config import carryover as R
    out = dict(previous or {})
    out["sandbox"] = {"histogram": sandbox_length_histogram(world),
                      "source": f"5 references of the first {LENGTH_SCENES} sandbox train scenes"}
    if karpathy:
        from ..corpora.readers import load_captions
        items = load_captions(karpathy)
        out[R.MAX_LENGTH[1]] = {"histogram": length_histogram(c for it in items for c in it.captions),
                                "source": f"MSCOCO Karpathy captions, {karpathy.split('/')[-1]} ({len(items)} images)"}
    if R.MAX_LENGTH[1] not in out:
        raise ValueError(f"no {R.MAX_LENGTH[1]} histogram yet; pass --karpathy PATH (the Karpathy val captions).")
    paper, sandbox = out[R.MAX_LENGTH[1]]["histogram"], out["sandbox"]["histogram"]
    n = R.max_length(sandbox, paper)
    out["carried"] = {"paper_max_length": R.MAX_LENGTH[0], "paper_cut_share": R.cut_share(paper, R.MAX_LENGTH[0]),
                      "sandbox_max_length": n, "sandbox_cut_share": R.cut_share(sandbox, n),
                      "sandbox_cut_share_at_paper_value": R.cut_share(sandbox, R.MAX_LENGTH[0]),
                      "mean_words": {k: _mean(out[k]["histogram"]) for k in ("sandbox", R.MAX_LENGTH[1])}}
    out["reproduce"] = "workbench calibrate --lengths [--karpathy PATH]"
    return out


def _mean(hist: dict) -> float:
    return sum(int(k) * v for k, v in hist.items()) / sum(hist.values())


def pcm_inputs(clip, world, test, captions: list, n: int = 300) -> dict:
    """Can PCM's Eq. 1 / Eq. 2 act on ``clip``? ``pcm_inspect.concept_report`` on the first ``n`` test renders
    with the sandbox concept bank of the training ``captions`` (every reference of the ablation's scenes)."""
    import torch

    from ..features.concepts import build_concept_bank
    from ..config import Profile
    from ..viz.pcm_inspect import concept_report
    stages = Profile("sandbox")
    bank = build_concept_bank(captions, clip, stages.concepts)
    with torch.no_grad():
        f = clip.image_features(test.images[:n])
    return concept_report(f.global_, f.patches, bank, test.captions[:n], test.scenes[:n], world,
                          stages.pcm)


def world_table(rep: dict) -> str:
    """Markdown: each statistic of the sandbox beside the real reference value and its source."""
    from ..evaluation.caption_stats import BOUNDS, REAL_CAPTION_WORLD as R, REAL_GEOMETRY as G
    lo, hi = BOUNDS["agreement_cider"]
    rlo, rhi = BOUNDS["clip_retrieval_share"]
    f3 = lambda t: " / ".join(f"{v:.1f}" for v in t)                                    # noqa: E731
    g = rep["geometry"]
    rows = [
        ("annotator agreement (CIDEr)", f"{rep['agreement_cider']:.1f}", f"{R['agreement_cider']['value']}",
         f"{lo:g}-{hi:g}", R["agreement_cider"]["source"]),
        ("nearest training caption by CLIP (CIDEr)", f"{rep['clip_retrieval_cider']:.1f}",
         f"{R['clip_retrieval_cider']['value']}", "", R["clip_retrieval_cider"]["source"]),
        ("... as a share of agreement", f"{rep['clip_retrieval_share']:.2f}", f"{R['clip_retrieval_share']['value']:.2f}",
         f"{rlo:g}-{rhi:g}", R["clip_retrieval_share"]["source"]),
        ("nearest training caption by text (TF-IDF), share of agreement", f"{rep['text_retrieval_share']:.2f}",
         f"{R['text_retrieval_share']['value']:.2f}", "reported", R["text_retrieval_share"]["source"]),
        ("a random training caption (the language's floor), share of agreement", f"{rep['random_share']:.3f}",
         f"{R['random_share']['value']:.3f}", "reported", R["random_share"]["source"]),
        (f"vocabulary of {rep['n_memory']:,} training captions", f"{rep['vocabulary']}", f"{R['vocabulary']['value']:,}",
         "reported", R["vocabulary"]["source"]),
        ("words per training caption (mean)", f"{rep['mean_words']:.1f}" if "mean_words" in rep else "–",
         f"{R['mean_words']['value']}", "reported", R["mean_words"]["source"]),
        ("test references verbatim in training captions", f"{100 * rep['verbatim_share']:.1f} %",
         f"{100 * R['verbatim_share']['value']:.1f} %", "reported", R["verbatim_share"]["source"]),
        (f"zero-shot image→text R@1/5/10 ({rep['n_recall_images']:,} × 5)", f3(rep["recall_i2t"]),
         f3(R["recall_i2t"]["value"]), "±10 pts", R["recall_i2t"]["source"]),
        (f"zero-shot text→image R@1/5/10 ({rep['n_recall_images']:,} × 5)", f3(rep["recall_t2i"]),
         f3(R["recall_t2i"]["value"]), "±10 pts", R["recall_t2i"]["source"]),
        ("paired cosine (mean; std, min-max)", f"{g['paired_cos']:.3f}; {g['paired_cos_std']:.3f}, "
         f"{g['paired_cos_min']:.3f}-{g['paired_cos_max']:.3f}", G["paired_cos"]["value"], "0.20-0.45",
         G["paired_cos"]["source"]),
        ("paired - unpaired cosine margin", f"{g['paired_unpaired_margin']:.3f}", G["margin"]["value"], "toward real",
         G["margin"]["source"]),
        ("mean image-image cosine", f"{g['image_image_cos']:.3f}", G["image_image_cos"]["value"], "toward real",
         G["image_image_cos"]["source"]),
        ("mean text-text cosine", f"{g['text_text_cos']:.3f}", G["text_text_cos"]["value"], "toward real",
         G["text_text_cos"]["source"]),
    ]
    if "pcm_inputs" in rep:
        p = rep["pcm_inputs"]
        rows += [("PCM Eq. 1: top-1 concept among the references' nouns; top-K precision",
                  f"{p['eq1_top1_precision']:.3f}; {p['eq1_topk_precision']:.3f} (K = {p['k']})", "–", "able to act",
                  "pcm_inspect.concept_report, 300 test renders"),
                 ("PCM Eq. 2: correlation of an image's concepts' maps; peak on the object (chance)",
                  f"{p['eq2_map_correlation']:.3f}; {p['eq2_argmax_on_object']:.3f} ({p['eq2_chance']:.3f})", "–",
                  "below 1; above chance", "exact object masks of the world")]
    return markdown_table(["statistic", "sandbox", "real", "bound", "real source"], rows)


def _summary(rep: dict) -> dict:
    keep = ("split", "n_per_category", "settings", "synthetic", "real", "probe_accuracy", "clipscore_synthetic",
            "clipscore_real")
    return {k: rep[k] for k in keep}


def strength_label(s: float) -> str:
    """How tables name a point of the knob: "layout s=0.7", or "text-to-image" at 1."""
    return "text-to-image" if s >= 1.0 else f"layout s={s:g}"


def sweep(pipe, clip, base_cfg, world, strengths, split: str, n: int, progress: bool = True) -> dict:
    """``{strength: profile report}`` on ``split`` (strength 1.0 = pure text-to-image)."""
    from tqdm.auto import tqdm
    out = {}
    for s in tqdm(strengths, desc=f"profile strengths ({split})", disable=not progress):
        cfg = replace(base_cfg, layout_strength=s, out_dir=f"runs/synthetic/calibrate-s{s:g}")
        out[s] = profile_report(pipe, clip, cfg, world, split, n)
    return out


def table(reports: dict, reference: dict = GENEVAL["sd15"]) -> str:
    """Markdown: one row per strength (synthetic), plus real renders and SD 1.5's GenEval numbers."""
    cats = ["single_object", "colour", "two_objects", "counting", "position", "colour_attribution", "overall"]
    rows = []
    for s, r in reports.items():
        rows.append([strength_label(s)] + [f"{r['synthetic'][c]:.2f}" for c in cats]
                    + [f"{r['probe_accuracy']:.3f}", f"{r['clipscore_synthetic']:.3f}"])
    r = next(iter(reports.values()))
    rows.append(["real renders"] + [f"{r['real'][c]:.2f}" for c in cats] + ["–", f"{r['clipscore_real']:.3f}"])
    ref = {**reference, "overall": sum(reference.values()) / len(reference)}
    rows.append(["SD 1.5 (GenEval, reported)"] + [f"{ref[c]:.2f}" for c in cats] + ["–", "–"])
    return markdown_table(["images"] + cats + ["probe syn/real", "CLIPScore"], rows)


def main(argv=None) -> None:
    from ..backbones.clip import load_clip
    from ..config import Profile
    from ..synthesis.engine import load_pipeline
    ap = argparse.ArgumentParser(description="Choose the sandbox synthesis strength on val; profile it on test.")
    ap.add_argument("--strengths", type=float, nargs="+", default=list(DEFAULT_STRENGTHS))
    ap.add_argument("--n", type=int, default=60, help="scenes per category (60: the sweep of the ablation reuses the images)")
    ap.add_argument("--out", default=None, help=f"report path (default {REPORT}, with --world {WORLD_REPORT})")
    ap.add_argument("--world", action="store_true", help="measure the caption world and CLIP instead of synthesis")
    ap.add_argument("--clip", default=None, help="CLIP weights to measure (default: the sandbox preset's)")
    ap.add_argument("--lengths", action="store_true", help="write the caption-length histograms (sandbox, MSCOCO) "
                    "that carry the captioner's max length")
    ap.add_argument("--karpathy", default=None, help="with --lengths: Karpathy-format MSCOCO val captions")
    args = ap.parse_args(argv)
    if args.lengths:
        import json
        from ..config import Profile
        from ..config.carryover import CAPTION_LENGTHS
        prev = json.loads(CAPTION_LENGTHS.read_text()) if CAPTION_LENGTHS.exists() else None
        rep = lengths_report(Profile("sandbox").world, args.karpathy, prev)
        atomic_write_json(CAPTION_LENGTHS, rep)
        print(json.dumps(rep["carried"], indent=1))
        print(f"wrote {CAPTION_LENGTHS}")
        return
    stages = Profile("sandbox")
    world = stages.world
    clip_cfg = stages.clip if args.clip is None else replace(stages.clip, pretrained=args.clip)
    clip = load_clip(clip_cfg)
    if args.world:
        rep = world_report(clip, world)
        rep.update({"clip_sha256": sha256_file(repo_path(clip_cfg.pretrained)),
                    "reproduce": "workbench calibrate --world"})
        print(world_table(rep))
        atomic_write_json(repo_path(args.out or WORLD_REPORT), rep)
        print(f"wrote {args.out or WORLD_REPORT}")
        return
    args.out = args.out or REPORT
    base = stages.synthesis
    pipe = load_pipeline(base)
    val = sweep(pipe, clip, base, world, args.strengths, "val", args.n)
    print(table(val))
    try:
        best, min_probe = choose_strength(val), MIN_PROBE
    except ValueError as err:      # no strength is measurably synthetic: chosen on faithfulness alone, recorded so
        print(f"warning: {err} Choosing on faithfulness alone (probe bound not met, recorded).")
        best, min_probe = choose_strength(val, min_probe=0.0), 0.0
    chosen = replace(base, layout_strength=best, out_dir=f"runs/synthetic/calibrate-s{best:g}")
    test = profile_report(pipe, clip, chosen, world, "test", args.n)
    print(f"chosen on val: strength {best:g} (max deviation from SD 1.5 on single object / colour "
          f"{distance_to(val[best]['synthetic'], GENEVAL['sd15']):.3f}); test profile:")
    print(table({best: test}))
    clip_file = repo_path(clip.cfg.pretrained)
    atomic_write_json(repo_path(args.out), {
        "chosen_strength": best, "selection": "val: closest to SD 1.5 (GenEval) on single object and colour, among settings a linear "
        "probe on CLIP features (global + mean patch tokens) tells from real >= 95% and with CLIPScore below real",
        "min_probe": min_probe, "probe_bound_met": min_probe >= MIN_PROBE, "reference_sd15": GENEVAL["sd15"], "val": {f"{s:g}": _summary(r) for s, r in val.items()},
        "test": _summary(test), "clip_sha256": sha256_file(clip_file),
        "sd_weights": pipeline_fingerprint(pipe),
        "reproduce": "workbench calibrate"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
