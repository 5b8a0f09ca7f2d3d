"""Settings a paper selected on its own validation data, re-selected on the sandbox's val split over the paper's
grid carried by ``config.carryover`` (one seed, the runner's protocol, the checkpoint and the setting both
chosen by val CIDEr, never test). The choices are written to ``data/sandbox_selections.json``, which the sandbox
presets read; every sweep row is kept under ``runs/ablation/sandbox/rows`` and the table in that folder.

    workbench select --sweep noise      # CapDec's noise: the carried 0.064 x {1/4, 1/2, 1, 2, 4}
    workbench select --sweep fo         # SynTIC's feature-optimisation budget (lr, epochs)
    workbench select --sweep cxe_w      # PCM-Net's w over Fig. 4c's grid, on carried cosines
    workbench select --sweep budget     # the training budget: where the oracle's val curve flattens
    workbench select --sweep noise fo cxe_w budget --jobs 2

* ``noise``: CapDec chose v = 0.016 on ViT-B/32 from a sweep; a grid of multiples around the carried value
  (x {1/4, 1/2, 1, 2, 4}: 0.004 ... 0.064 on ViT-B/32, extended down to x 1/64 because the sandbox's optimum kept
  sitting at its low end) is swept with ``capdec``, and the multiple val picks scales every noise carried from CapDec's
  (CapDec, MacCap, PCM-Net's global noise).
* ``fo``: SynTIC gives lr 1e-5 and no budget; at that lr the features do not move (world v6: cosine to the
  originals 1.000, Eq. 2's loss 1.5661 -> 1.5653). ``syntic+fo`` is swept over budgets from the paper's up.
* ``cxe_w``: PCM-Net chose w = 4 from Fig. 4c (1 ... 6); ``pcm-net`` is swept over that grid, w acting on the pair
  cosines carried by rank onto ViT-B/32's distribution. Its rows use the picked noise: asked together with
  ``noise``, it runs once that pick is written (``stages``).
* ``budget``: the captioner's epochs. The compared rows (``runner.BUDGET_METHODS``) are trained
  ``runner.CURVE_EPOCHS`` epochs (a longer curve continues a shorter one's runs) and the budget is where the
  oracle's val curve flattens (``training.plateau_epoch``: the shortest whose last quarter adds under 2 %); the
  table records each row's best within the budget and over the whole curve. It runs after the picks its rows read.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from ..config import Profile
from ..config import carryover as R
from ..config.carryover import CXE_W_GRID, FO_BUDGETS, NOISE_MULTIPLES, SELECTIONS, sandbox_clip_sha256, selections
from ..utils.tables import markdown_table


SWEEPS = ("noise", "fo", "cxe_w", "budget")


def sweep_specs(name: str) -> list:
    """[(method spec, setting)] of one sweep."""
    from ..config import carryover as R
    if name == "noise":
        base = R.noise_variance(R.sandbox_backbone())
        return [(f"capdec[noise_variance={m * base:.6g}]", {"multiple": m, "noise_variance": m * base})
                for m in NOISE_MULTIPLES]
    if name == "fo":
        return [(f"syntic+fo[fo_lr={lr:g} fo_epochs={ep}]", {"fo_lr": lr, "fo_epochs": ep}) for lr, ep in FO_BUDGETS]
    if name == "cxe_w":
        # a w that weights every carried pair 1 (w x the lowest carried cosine >= 1) is plain cross-entropy:
        # its run is +mixup's (same seed, same batches, same loss), which stands for it
        low = lowest_carried_cosine(Profile("sandbox").ablation.n_train)
        return [(f"pcm-net[cxe_w={w:g}]" if w * low < 1 else "+mixup", {"cxe_w": w}) for w in CXE_W_GRID]
    raise ValueError(f"sweep={name!r} is not one of {SWEEPS}.")


def lowest_carried_cosine(n: int) -> float:
    """The lowest of ``n`` pair cosines carried by rank onto ViT-B/32's distribution (its (0.5 / n) quantile)."""
    from statistics import NormalDist

    from ..config import carryover as R
    return NormalDist(R.VIT_B32.paired_cos_mean, R.VIT_B32.paired_cos_std).inv_cdf(0.5 / n)


# a sweep whose rows read another sweep's pick: its specs are built after that pick is written
DEPENDS = {"cxe_w": ("noise",),          # PCM-Net's rows carry the noise the noise sweep picks
           "budget": ("noise", "cxe_w")}   # the curves are the compared rows at the picked settings


def stages(names) -> list:
    """The sweeps ``names`` in the order their picks are needed: [[sweeps run together], ...]; a sweep waits for
    the stage holding what it reads (``DEPENDS``), so ``noise fo cxe_w`` runs noise and fo, then cxe_w."""
    names = [n for n in SWEEPS if n in set(names)]
    out = []
    while names:
        ready = [n for n in names if not set(DEPENDS.get(n, ())) & (set(names) - {n})]
        out.append(ready)
        names = [n for n in names if n not in ready]
    return out


def run(names, jobs: int = 1, seed: int = 0, curve_epochs: int | None = None) -> dict:
    """Run the sweeps ``names`` (resumable rows) stage by stage (``stages``), pick each on val CIDEr, write
    ``data/sandbox_selections.json`` after each stage (atomically, keeping the other sweeps' choices) and return
    {sweep: {choice, table}}."""
    import time
    t0 = time.time()
    report = {}
    for stage in stages(names):
        if "budget" in stage:
            report["budget"] = run_budget(jobs, seed, curve_epochs)
            stage = [n for n in stage if n != "budget"]
        if stage:
            report.update(run_stage(stage, jobs, seed))
    print(markdown(report), f"\n{time.time() - t0:.0f} s")
    return report


def run_stage(names, jobs: int, seed: int) -> dict:
    """One stage of ``run``: its sweeps' rows at the selections written so far; their picks written."""
    from .runner import run_ablation
    from ..backbones.clip import load_clip
    from .experiment import prepare_sandbox
    specs = {n: sweep_specs(n) for n in names}
    variants = []
    for n in names:
        variants += [s for s, _ in specs[n] if s not in variants]
    cfg = replace(Profile("sandbox").ablation, seeds=(seed,), variants=tuple(variants))
    clip = load_clip(cfg.stages.clip)
    rows = {r["model"]: r for r in run_ablation(cfg, clip, prepare_sandbox(cfg, clip), jobs=jobs)}
    picks = {}
    for n in names:
        table = [{**setting, "spec": spec, "val_CIDEr": rows[spec]["best_val_CIDEr"], "test_CIDEr": rows[spec]["CIDEr"]}
                 for spec, setting in specs[n]]
        best = max(table, key=lambda r: r["val_CIDEr"])
        picks[n] = {**{k: v for k, v in best.items() if k not in ("spec", "val_CIDEr", "test_CIDEr")},
                    "picked_on": "val CIDEr", "seed": seed, "table": table, "reproduce": f"workbench select --sweep {n}"}
    out = write_picks(picks)
    return {n: {"choice": out[n], "table": out[n]["table"]} for n in names}


def write_picks(picks: dict) -> dict:
    """Merge ``picks`` ({sweep: its choice}) into ``data/sandbox_selections.json`` (atomically, keeping the other
    sweeps' current choices), each stamped with the CLIP it was made on; returns the merged selections."""
    from ..utils.io import atomic_write_json
    out = {**selections(), **{n: {**p, "clip_sha256": sandbox_clip_sha256()} for n, p in picks.items()}}
    atomic_write_json(SELECTIONS, out)
    selections.cache_clear()
    return out


def budget_choice(curves: dict, curve_epochs: int) -> dict:
    """The budget read off ``curves`` ({method: history with "val_cider"}): the oracle's plateau epoch, and per
    method its best val CIDEr within the budget and over the curve, the epoch of the latter and the share reached."""
    from ..training import plateau_epoch
    oracle = curves["oracle"]["val_cider"]
    epochs = plateau_epoch(oracle)
    if epochs is None:
        raise ValueError(f"the oracle's val curve still rises at curve_epochs={curve_epochs} (best "
                         f"{100 * max(oracle):.1f} at epoch {oracle.index(max(oracle)) + 1}); pass a longer "
                         f"--curve-epochs, e.g. {2 * curve_epochs}.")
    table = []
    for m, h in curves.items():
        v = h["val_cider"]
        table.append({"method": m, "val_CIDEr_within_budget": max(v[:epochs]), "val_CIDEr_best": max(v),
                      "best_epoch": v.index(max(v)) + 1, "reached": max(v[:epochs]) / max(v) if max(v) > 0 else 1.0})
    return {"epochs": epochs, "curve_epochs": curve_epochs, "table": table}


def run_budget(jobs: int, seed: int, curve_epochs: int | None = None) -> dict:
    """The ``budget`` sweep: the compared rows' learning curves (resumable rows in ``rows-e<curve_epochs>``), the
    budget picked on the oracle's (``budget_choice``) and written to the selections."""
    from .runner import BUDGET_METHODS, CURVE_EPOCHS, learning_curves
    from ..backbones.clip import load_clip
    from .experiment import prepare_sandbox
    curve_epochs = curve_epochs or CURVE_EPOCHS
    cfg = replace(Profile("sandbox").ablation, seeds=(seed,))
    clip = load_clip(cfg.stages.clip)
    curves = learning_curves(cfg, clip, prepare_sandbox(cfg, clip), names=BUDGET_METHODS, epochs=curve_epochs,
                             seed=seed, jobs=jobs)
    choice = budget_choice(curves, curve_epochs)
    out = write_picks({"budget": {**choice, "picked_on": "val CIDEr (the oracle's curve, training.plateau_epoch)",
                                  "seed": seed,
                                  "reproduce": f"workbench select --sweep budget --curve-epochs {curve_epochs}"}})
    return {"choice": out["budget"], "table": choice["table"]}


def carried_markdown(rows: list) -> str:
    """``carryover.derived`` (or any list of such dicts) as a markdown table."""
    return markdown_table(["setting", "paper", "set on", "carried here", "invariant"],
                          [[r["name"], f"{r['paper']:g}", r["paper_backbone"], f"{r['value']:.4g}", r["invariant"]]
                           for r in rows])


def cxe_markdown(cos, target: R.Backbone, ws=(1, 2, 2.5, 3, 4, 5, 6)) -> str:
    """What each w of PCM-Net's Fig. 4c grid does to the pairs ``cos`` [N], on raw cosines and carried ones."""
    carried = R.cxe_cosines(cos, target)
    rows = []
    for w in ws:
        a, b = R.cxe_weight_profile(cos, w), R.cxe_weight_profile(carried, w)
        rows.append([f"{w:g}", f"{a['share_down_weighted']:.0%}", f"{a['mean_weight']:.3f}",
                     f"{b['share_down_weighted']:.0%}", f"{b['mean_weight']:.3f}", f"{b['p10_weight']:.3f}"])
    return markdown_table(["w", "down-weighted (raw)", "mean weight (raw)", "down-weighted (carried)",
                           "mean weight (carried)", "10th pct weight (carried)"], rows)


def markdown(report: dict) -> str:
    lines = []
    for n, r in report.items():
        if n == "budget":
            rows = [[t["method"], f"{100 * t['val_CIDEr_within_budget']:.1f}", f"{100 * t['val_CIDEr_best']:.1f}",
                     str(t["best_epoch"]), f"{t['reached']:.0%}"] for t in r["table"]]
            lines += [f"**budget** (picked on the oracle's val curve: {r['choice']['epochs']} epochs of "
                      f"{r['choice']['curve_epochs']})", "",
                      markdown_table(["method", "val CIDEr within the budget", "best val CIDEr", "at epoch",
                                      "reached"], rows), ""]
            continue
        keys = [k for k in r["table"][0] if k not in ("spec", "val_CIDEr", "test_CIDEr")]
        rows = [[f"{row[k]:g}" for k in keys] + [f"{100 * row['val_CIDEr']:.1f}", f"{100 * row['test_CIDEr']:.1f}"]
                for row in r["table"]]
        lines += [f"**{n}** (picked on val: " + ", ".join(f"{k} = {r['choice'][k]:g}" for k in keys) + ")", "",
                  markdown_table(keys + ["val CIDEr", "test CIDEr"], rows), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Re-select on the sandbox's val split the settings a paper selected "
                                             "on its own (CapDec's noise, SynTIC's FO budget).")
    ap.add_argument("--sweep", nargs="+", choices=SWEEPS, required=True)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve-epochs", type=int, default=None,
                    help="length of the learning curves of --sweep budget (default runner.CURVE_EPOCHS)")
    args = ap.parse_args(argv)
    run(args.sweep, jobs=args.jobs, seed=args.seed, curve_epochs=args.curve_epochs)


if __name__ == "__main__":
    main()
