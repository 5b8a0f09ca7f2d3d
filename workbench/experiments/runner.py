"""The sandbox runner: any registered method (``workbench.methods``) x seeds, one protocol, one table.

Every (method, seed) is trained on the method's training data, its checkpoint picked by val CIDEr on real
val renders (through the method's own inference recipe), and scored on the test split and the
unseen-combination subset (pycocoevalcap + CLIPScore). Rows are saved as they finish and reused by a rerun
under the same configs and data (a killed run resumes; each training run also resumes from its checkpoint).

    workbench ablation --preset sandbox                    # PCM-Net's ablation: capdec (text-only),
                                                                     # base, +mixup, +cxe, pcm-net, oracle
    workbench ablation --preset sandbox --methods all      # the leaderboard of every registered method
    workbench ablation --preset sandbox --sweep            # the faithfulness sweep

Data assembly lives in ``experiment.py``; the methods in ``methods/``.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from .. import methods
from ..config import AblationConfig, CaptionerConfig, PCMConfig, TrainConfig, resolve
from .experiment import prepare_sandbox
from ..utils.io import atomic_write, atomic_write_json, stable_hash
from ..utils.paths import repo_path
from ..utils.tables import markdown_table


def row_key(cfg: AblationConfig, tcfg: TrainConfig, cap_cfg: CaptionerConfig, pcm_cfg: PCMConfig, method,
            data_identity: str) -> str:
    """Identity of one run: the runner's data settings, the configs the run uses, the method (its name and
    options), the captioner architecture and the data (images, CLIP features, vocabulary, concept bank); a saved
    row is reused only under the same key. Which other methods and seeds are in the same run list does not matter.

    Only what the run uses is keyed: the method's own captioner config (``captioner_config``: its noise, patches,
    mix-up), CXE's w only with CXE on, PCM's config only with the mix-up on; so a val selection of one setting
    (``workbench.experiments.selection``) leaves the rows that do not use it valid."""
    from ..model.captioner import ARCHITECTURE
    name, options = (method, {}) if isinstance(method, str) else (method.name, method.options())
    if not isinstance(method, str):
        cap_cfg = method.captioner_config(cap_cfg)
    run = {k: v for k, v in asdict(cfg).items() if not k.startswith("sweep_") and k not in ("variants", "seeds")}
    cap = asdict(cap_cfg)
    if cap.get("token_type", True):          # the default is not keyed
        cap.pop("token_type", None)
    train = asdict(tcfg)
    if not tcfg.cxe:
        train.pop("cxe_w")
    payload = {"ablation": run, "train": train, "captioner": cap, "pcm": asdict(pcm_cfg) if cap_cfg.mixup else None,
               "variant": name, "architecture": ARCHITECTURE, "data": data_identity}
    if options:
        payload["method"] = options
    return stable_hash(payload)


def data_identity(exp, method) -> str:
    """The data a method's row depends on: the experiment's identity, plus the caption groups and unpaired
    images for the methods that have options (every method but PCM-Net's rows, whose keys predate them)."""
    if not method.options():
        return exp.identity
    return stable_hash({"exp": exp.identity, "groups": exp.group_store.manifest["identity"],
                        "unpaired": exp.unpaired.manifest["identity"]})


def run_ablation(cfg: AblationConfig, clip, exp, progress: bool = True, jobs: int = 1) -> list:
    """Train and evaluate every (method in ``cfg.variants``, seed); one row per run with its configs, seed,
    metrics and test captions, saved to ``<out_dir>/rows/<method>-s<seed>.json``. ``jobs`` > 1 trains the
    missing rows in that many worker processes at once (each with its share of the CPU threads; logs in
    ``<out_dir>/logs``), then reads them back; the rows are the same as one process's."""
    from .protocols import evaluate_captioner as evaluate
    cap_cfg, pcm_cfg = cfg.stages.captioner, cfg.stages.pcm
    if jobs > 1:
        theirs = cfg.stages.clip                            # what a worker loads (``main --worker``)
        if getattr(clip, "cfg", None) != theirs or theirs.pretrained is None:
            raise ValueError(f"jobs={jobs}: the worker processes load the {cfg.profile} profile's CLIP from its "
                             f"weights ({theirs}); run with jobs=1 for another backbone or for random weights "
                             f"({getattr(clip, 'cfg', None)}).")
        _run_workers(cfg, exp, jobs, cap_cfg, pcm_cfg, progress)
    rows = []
    for name, method, seed, tcfg, key, path, saved in _plan(cfg, exp, cap_cfg, pcm_cfg):
        if saved is not None:
            rows.append(saved)
            continue
        t0 = time.time()
        model, hist = fit_method(method, exp, cap_cfg, pcm_cfg, tcfg, seed, progress)
        vocab = method.vocabulary(exp)
        metrics, hyps = evaluate(model, vocab, method.eval_set(exp, "test"), clip, tcfg.beam_size)
        unseen, unseen_hyps = evaluate(model, vocab, method.eval_set(exp, "test_unseen"), clip, tcfg.beam_size)
        row = {"model": method.name, "seed": seed, **metrics, "unseen_CIDEr": unseen["CIDEr"],
               "unseen_CLIPScore": unseen["CLIPScore"], "best_val_CIDEr": max(hist["val_cider"]),
               **method.extra_metrics(model, exp, clip, tcfg.beam_size), **method.describe(),
               "method_options": method.options(), "seconds": round(time.time() - t0, 1),
               "captioner": asdict(model.cfg), "train": asdict(tcfg), "pcm": asdict(pcm_cfg)
               if getattr(model.cfg, "mixup", False) else None, "key": key,
               "carried": getattr(exp, "carried", None),
               "test_hyps": hyps, "unseen_hyps": unseen_hyps, "history": hist}
        atomic_write_json(path, row)
        rows.append(row)
    return rows


def fit_method(method, exp, cap_cfg: CaptionerConfig, pcm_cfg: PCMConfig, tcfg: TrainConfig, seed: int,
               progress: bool = True) -> tuple:
    """The one training route of every profile: ``method``'s model built with ``seed`` and trained by its own
    ``fit`` (resumable; the checkpoint picked on ``exp``'s val set) -> (model, history)."""
    model = method.build(exp, cap_cfg, pcm_cfg, seed)
    hist = method.fit(model, exp, tcfg, method.run_name(seed), progress=progress)
    return model, hist


BUDGET_METHODS = ("oracle", "base", "+mixup", "+cxe", "pcm-net", "capdec", "decap")   # the compared rows' curves
CURVE_EPOCHS = 48                                  # long enough for the oracle to flatten on worlds v2 ... v7


def learning_curves(cfg: AblationConfig, clip, exp, names=BUDGET_METHODS, epochs: int = CURVE_EPOCHS,
                    seed: int = 0, jobs: int = 1, progress: bool = True) -> dict:
    """Val CIDEr per epoch of ``names`` trained ``epochs`` epochs (one seed; rows in ``rows-e<epochs>``, resumable):
    {name: history}. The Noam schedule does not depend on the run's length, so the first E epochs of these runs
    are the runs of budget E, and a longer curve continues a shorter one's finished runs
    (``training.continue_shorter_run``); ``training.plateau_epoch`` reads the budget off the oracle's curve
    (``workbench ablation --methods oracle,base,capdec,decap --seeds 0 --epochs 48``)."""
    long = replace(cfg, variants=tuple(names), seeds=(seed,), train_epochs=epochs)
    return {r["model"]: r["history"] for r in run_ablation(long, clip, exp, progress=progress, jobs=jobs)}


def _row_path(cfg: AblationConfig, method, seed: int):
    return repo_path(cfg.out_dir) / f"rows{cfg.run_tag}" / f"{methods.file_stem(method.name)}-s{seed}.json"


def _plan(cfg: AblationConfig, exp, cap_cfg, pcm_cfg):
    """Every run of ``cfg``: (name, method, seed, train config, row key, row path, the saved row under that key
    or None)."""
    for name in cfg.variants:
        method = methods.get(name, cfg.profile)
        for seed in cfg.seeds:
            tcfg = replace(method.train_config(cfg.stages.train), seed=seed,
                           run_dir=f"{cfg.out_dir}/runs{cfg.run_tag}")
            if cfg.train_epochs is not None:
                tcfg = replace(tcfg, epochs=cfg.train_epochs)
            key = row_key(cfg, tcfg, cap_cfg, pcm_cfg, method, data_identity(exp, method))
            path = _row_path(cfg, method, seed)
            saved = json.loads(path.read_text()) if path.exists() else None
            yield name, method, seed, tcfg, key, path, saved if saved and saved.get("key") == key else None


def _missing(cfg: AblationConfig, exp, cap_cfg, pcm_cfg) -> list:
    """(name, seed) of the runs of ``cfg`` without a saved row under their current key."""
    return [(name, seed) for name, _, seed, _, _, _, saved in _plan(cfg, exp, cap_cfg, pcm_cfg) if saved is None]


def train_key(name: str, seed: int, profile: str = "sandbox") -> frozenset:
    """The run folders a run trains (``Method.training_runs``): rows that differ only at inference (MacCap's S /
    CLS / aggregation rows) share one trained model, CMSA's rows share stage 1."""
    return frozenset(methods.get(name, profile).training_runs(seed))


def next_launch(pending_keys: list, running_keys: list):
    """Index of the first pending run (by its ``train_key``) that trains no folder a running worker is training
    (two workers must not train one run folder at once), or None when every pending run waits on one."""
    busy = frozenset().union(*running_keys)
    return next((i for i, key in enumerate(pending_keys) if not key & busy), None)


def _run_workers(cfg: AblationConfig, exp, jobs: int, cap_cfg, pcm_cfg, progress: bool = True) -> None:
    """Train the missing runs in ``jobs`` worker processes (``workbench ablation --worker``), at most
    ``jobs`` at once, each with ``cores // jobs`` torch threads. A failed worker is reported with its log."""
    import os
    import subprocess
    import sys

    from tqdm.auto import tqdm
    todo = _missing(cfg, exp, cap_cfg, pcm_cfg)
    if not todo:
        return
    bar = tqdm(total=len(todo), desc=f"runs ({jobs} workers)", disable=not progress)
    logs = repo_path(cfg.out_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running, failed = [], []
    pending = [(name, seed, train_key(name, seed, cfg.profile)) for name, seed in todo]
    while pending or running:
        for proc, label, log, key in list(running):
            if proc.poll() is not None:
                running.remove((proc, label, log, key))
                bar.update(1)
                bar.set_postfix_str(f"done: {label}")
                if proc.returncode != 0:
                    failed.append(f"{label} (exit {proc.returncode}; log {log})")
        pick = next_launch([k for *_, k in pending], [k for *_, k in running]) if len(running) < jobs else None
        if pick is None:
            time.sleep(2)
            continue
        name, seed, key = pending.pop(pick)
        one = replace(cfg, variants=(name,), seeds=(seed,))
        spec = logs / f"{methods.file_stem(name)}-s{seed}.json"
        atomic_write_json(spec, asdict(one))
        log = logs / f"{methods.file_stem(name)}-s{seed}{cfg.run_tag}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "workbench.experiments.runner", "--worker", str(spec),
                                     "--threads", str(threads)], stdout=fh, stderr=subprocess.STDOUT, env=env)
        running.append((proc, f"{name} seed {seed}", log, key))
    bar.close()
    if failed:
        raise RuntimeError("worker runs failed: " + "; ".join(failed))


def config_from_json(path) -> AblationConfig:
    """An ``AblationConfig`` written with ``asdict`` (lists back to tuples)."""
    raw = json.loads(Path(path).read_text())
    return AblationConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def load_trained(cfg: AblationConfig, exp, name: str, seed: int):
    """The trained model of row (``name``, ``seed``) of ``cfg``'s runs, rebuilt and loaded from its chosen
    checkpoint (run ``run_ablation`` first) -> (method, model)."""
    method = methods.get(name, cfg.profile)
    model = method.build(exp, cfg.stages.captioner, cfg.stages.pcm, seed)
    path = repo_path(method.best_weights(f"{cfg.out_dir}/runs{cfg.run_tag}", seed))
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint for name={name!r}, seed={seed} at {path}; run "
                                f"`workbench ablation --methods {name} --seeds {seed}` first.")
    from ..model.saved import load_weights
    load_weights(model, torch.load(path, map_location="cpu"), str(path))       # a mismatch names what differs
    return method, model.eval()


def leaderboard(rows: list, metrics=("CIDEr", "Bleu_4", "METEOR", "ROUGE_L", "CLIPScore", "unseen_CIDEr")) -> list:
    """One row per method: mean and sample std over seeds of ``metrics`` (x100 but CLIPScore), its block and family,
    and the paper's own MSCOCO CIDEr beside it (reported, not run here)."""
    from ..evaluation.metrics import aggregate
    out = []
    for agg in aggregate(rows, metrics=metrics):
        name = agg["model"]
        m = methods.get(name)
        row = {"block": m.block, "method": name, "family": m.family, "seeds": agg["n_seeds"]}
        for k in metrics:
            scale = 1 if k == "CLIPScore" else 100
            row[k], row[k + "_std"] = agg.get(k, np.nan) * scale, agg.get(k + "_std", np.nan) * scale
        row["reported_COCO_CIDEr"] = m.reported.CIDEr if m.reported else None
        row["reported_by"] = m.reported.source if m.reported else ""
        out.append(row)
    order = {b: i for i, b in enumerate(methods.BLOCKS)}
    return sorted(out, key=lambda r: (order.get(r["block"], 9), -r["CIDEr"]))


LEADERBOARD_COLUMNS = (("CIDEr", "CIDEr"), ("Bleu_4", "B@4"), ("METEOR", "METEOR"), ("ROUGE_L", "ROUGE-L"),
                       ("CLIPScore", "CLIPScore"), ("unseen_CIDEr", "unseen CIDEr"))


def leaderboard_markdown(board: list) -> str:
    """The board as markdown: mean ± std of the metrics its rows hold (a corpus run has no unseen split) and the
    paper's reported MSCOCO CIDEr."""
    from ..evaluation.metrics import mean_std
    cols = [(k, h) for k, h in LEADERBOARD_COLUMNS if board and k in board[0]]
    rows = []
    for r in board:
        rep = f"{r['reported_COCO_CIDEr']:.1f} ({r['reported_by']})" if r["reported_COCO_CIDEr"] else ""
        cells = [mean_std(r[k], r[k + "_std"], r["seeds"], 3 if k == "CLIPScore" else 1) for k, _ in cols]
        rows.append([r["block"], r["method"], r["seeds"]] + cells + [rep])
    return markdown_table(["block", "method", "seeds"] + [h for _, h in cols]
                          + ["paper's MSCOCO CIDEr (reported, not run here)"], rows)


def block_summary(board: list) -> str:
    """Each block of ``board`` (``leaderboard``) in one markdown row: how many methods, the best and the lowest by
    CIDEr (mean ± std over seeds), and whether the best leads the block's second beyond both rows' stds."""
    from ..evaluation.metrics import mean_std
    rows = []
    for block in [b for b in methods.BLOCKS if any(r["block"] == b for r in board)]:
        rs = sorted((r for r in board if r["block"] == block), key=lambda r: -r["CIDEr"])
        cell = lambda r: f"{r['method']} {mean_std(r['CIDEr'], r['CIDEr_std'], r['seeds'], 1)}"  # noqa: E731
        if len(rs) > 1:
            gap = rs[0]["CIDEr"] - rs[1]["CIDEr"]
            noise = np.nan_to_num(rs[0]["CIDEr_std"]) + np.nan_to_num(rs[1]["CIDEr_std"])
            lead = f"+{gap:.1f} over {rs[1]['method']}" + (" (beyond the stds)" if gap > noise > 0 else
                                                          " (within the stds)" if noise > 0 else " (one seed)")
        else:
            lead = "one method"
        rows.append([block, len(rs), cell(rs[0]), cell(rs[-1]), lead])
    return markdown_table(["block", "methods", "best (CIDEr)", "lowest (CIDEr)", "best's lead"], rows)


SWEEP_VARIANTS = ("base", "+mixup", "+cxe", "pcm-net")
SWEEP_REFERENCES = ("capdec", "oracle")          # trained once, at the first point (they use no synthetic image)


def sweep_config(cfg: AblationConfig, strength: float, variants=SWEEP_VARIANTS, seed: int = 0) -> AblationConfig:
    """The ablation config of one point of the faithfulness sweep (``cfg.sweep_n_train`` pairs, one seed)."""
    return replace(cfg, layout_strength=strength, variants=tuple(variants), seeds=(seed,), n_train=cfg.sweep_n_train,
                   out_dir=f"{cfg.out_dir}-sweep/s{strength:g}")


def run_sweep(cfg: AblationConfig, clip, seed: int = 0, progress: bool = True, jobs: int = 1) -> dict:
    """Base, +Mix-up, +CXE and PCM-Net trained on the synthetic images of every ``cfg.sweep_strengths`` (1.0 =
    pure text-to-image), with text-only and oracle as references at the same size; each point's faithfulness is
    measured on *val* captions. Resumable per run and per image; ``jobs`` > 1 trains each point's runs in worker
    processes, as ``run_ablation`` does (the point's images are synthesised first, here). Returns ``{"rows",
    "references", "faithfulness": {strength: val profile rates}, "real": val profile of real renders}``."""
    from .calibrate import strength_label, sweep as profile_sweep
    from ..synthesis.engine import load_pipeline
    strengths = sorted(cfg.sweep_strengths)
    base = cfg.stages.synthesis
    pipe = load_pipeline(base)
    prof = profile_sweep(pipe, clip, base, cfg.stages.world, strengths, "val",
                         cfg.sweep_n_profile, progress=progress)
    rows, refs = [], []
    for k, s in enumerate(strengths):
        point = sweep_config(cfg, s, SWEEP_VARIANTS + (SWEEP_REFERENCES if k == 0 else ()), seed)
        data = prepare_sandbox(point, clip, pipe=pipe, progress=progress)
        for r in run_ablation(point, clip, data, progress, jobs=jobs):
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
    from ..backbones.clip import load_clip
    from ..evaluation.metrics import write_table
    ap = argparse.ArgumentParser(description="Run registered methods x seeds on the sandbox (default: PCM-Net's "
                                             "ablation: capdec, base, +mixup, +cxe, pcm-net, oracle).")
    ap.add_argument("--preset", default="sandbox", choices=AblationConfig.presets())
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds, e.g. --seeds 0")
    ap.add_argument("--methods", default=None,
                    help="'all', a group (" + ", ".join(methods.GROUPS) + ") or comma-separated method names "
                         "(workbench.methods.names()); writes the leaderboard")
    ap.add_argument("--n-train", type=int, default=None, help="override the number of training pairs (own out_dir)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="train this many epochs instead of the preset's (learning curves; rows in rows-e<N>)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="train this many runs at once in worker processes (2 on a 2-core machine: see README)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)     # one run from a config file (--jobs)
    ap.add_argument("--sweep", action="store_true",
                    help="the faithfulness sweep instead: base/+mixup/+cxe/pcm-net (seed 0, sweep_n_train pairs) at "
                         "each of the preset's sweep_strengths, text-only and oracle as references")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        cfg = config_from_json(args.worker)
        clip = load_clip(cfg.stages.clip)
        run_ablation(cfg, clip, prepare_sandbox(cfg, clip, progress=False), progress=False)
        return
    cfg = resolve(args.preset).ablation
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(args.seeds))
    if args.n_train:
        cfg = replace(cfg, n_train=args.n_train, out_dir=f"{cfg.out_dir}-n{args.n_train}")
    if args.methods:
        cfg = replace(cfg, variants=methods.expand(args.methods))
    if args.epochs:
        cfg = replace(cfg, train_epochs=args.epochs)
    t0 = time.time()
    clip = load_clip(cfg.stages.clip)
    if args.sweep:
        return _main_sweep(cfg, clip, t0, args.jobs)
    exp = prepare_sandbox(cfg, clip)
    rows = run_ablation(cfg, clip, exp, jobs=args.jobs)
    out = repo_path(cfg.out_dir)
    name = (f"methods-{methods.file_stem(args.methods.replace(',', '+'))}" if args.methods else "results") + cfg.run_tag
    paths = write_table(table_rows(rows), out / name)
    board = leaderboard(rows)
    text = leaderboard_markdown(board) + "\n"
    atomic_write(out / f"{name}-board.md", lambda tmp: Path(tmp).write_text(text))
    atomic_write_json(out / f"{name}-summary.json", {
        "config": asdict(cfg), "seconds": round(time.time() - t0, 1), "board": board,
        "trained_seconds": round(sum(r["seconds"] for r in rows), 1),
        "reproduce": f"workbench ablation --preset {args.preset}" + (f" --methods '{args.methods}'" if
                                                                              args.methods else "")
                     + (f" --epochs {args.epochs}" if args.epochs else "")})
    print(leaderboard_markdown(board))
    print(f"total {time.time() - t0:.0f} s; tables in {paths['md']} and {out / (name + '-board.md')}")


def _main_sweep(cfg: AblationConfig, clip, t0: float, jobs: int = 1) -> None:
    from ..evaluation.metrics import write_table
    from ..viz.plots import faithfulness_sweep, save_to
    res = run_sweep(cfg, clip, jobs=jobs)
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
                                             "reproduce": "workbench ablation --preset sandbox --sweep"})
    print(paths["markdown"])
    print(f"total {time.time() - t0:.0f} s; sweep in {out}")


if __name__ == "__main__":
    main()
