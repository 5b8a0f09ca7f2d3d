"""The main job: execute the notebooks top to bottom and keep executed copies, figures and timings.

    workbench run                      # quick scale: about 15 min on 2 cores
    workbench run --scale full         # the README's tables (hours)
    workbench run --scale smoke        # WORKBENCH_SMOKE=1 (what CI runs through nbmake)
    workbench run --only 01

It prints up front which notebooks it runs at which scale and about how long each takes (the last measured run
on this machine, ``runs/main/timings-<scale>.json``, else the times measured for the README), and at the end
where everything is. Outputs go to ``runs/main/<timestamp>/``: ``notebooks/*.ipynb`` (executed),
``figures/*.png`` and ``timings.json``; the experiments' rows and caches stay under ``runs/ablation/``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ..utils.paths import REPO_ROOT, runs_dir
from ..utils.io import atomic_write, atomic_write_json

# The README's measured quick run (a fresh clone, runs/ empty, 2 cores, world v6: 845 s); the plan shows these until
# this machine has measured its own
MEASURED = {"quick": {"01_modality_gap.ipynb": 21, "02_synthesis.ipynb": 17, "03_patch_concepts.ipynb": 15,
                      "04_training.ipynb": 54, "05_evaluation.ipynb": 444, "06_methods.ipynb": 294}}


def notebook_paths(only=None) -> list:
    paths = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
        if not paths:
            raise ValueError(f"--only {only} matches no notebook in notebooks/.")
    return paths


def expected_seconds(scale: str) -> dict:
    """{notebook name: seconds} of the last measured run at ``scale`` on this machine, else ``MEASURED``."""
    path = runs_dir() / "main" / f"timings-{scale}.json"
    return json.loads(path.read_text()) if path.exists() else dict(MEASURED.get(scale, {}))


def plan(paths: list, scale: str) -> str:
    times = expected_seconds(scale)
    lines = [f"main job at {scale} scale: {len(paths)} notebook(s)"]
    for p in paths:
        t = times.get(p.name)
        lines.append(f"  {p.name:32s} {'about ' + _minutes(t) if t else 'not measured yet'}")
    known = [times[p.name] for p in paths if p.name in times]
    if known:
        lines.append(f"  {'total':32s} about {_minutes(sum(known))}" + ("" if len(known) == len(paths) else
                                                                         " (measured notebooks only)"))
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run(only=None, scale: str = "quick", timeout: int = 7200) -> Path:
    import nbformat
    from nbclient import NotebookClient

    from ..config import SCALES, check_choice
    check_choice("scale", scale, SCALES)
    paths = notebook_paths(only)
    out = runs_dir() / "main" / time.strftime("%Y%m%d-%H%M%S")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_RUN_DIR"] = str(out)     # plots.save writes figures here
    os.environ["WORKBENCH_SCALE"] = scale
    if scale == "smoke":
        os.environ["WORKBENCH_SMOKE"] = "1"
    else:
        os.environ.pop("WORKBENCH_SMOKE", None)
    print(plan(paths, scale), flush=True)
    timings, t_all = {}, time.time()
    for path in paths:
        t0 = time.time()
        print(f"running {path.name} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        atomic_write(out / "notebooks" / path.name, lambda tmp: nbformat.write(nb, tmp))
        timings[path.name] = round(time.time() - t0, 1)
        atomic_write_json(out / "timings.json", timings)
        print(f"  done in {_minutes(timings[path.name])} -> {out / 'notebooks' / path.name}", flush=True)
    if not only:                                  # a whole run: the next plan reads these times
        atomic_write_json(runs_dir() / "main" / f"timings-{scale}.json", timings)
    print(f"\nmain job finished in {_minutes(time.time() - t_all)} at {scale} scale:\n"
          f"  executed notebooks (tables and figures inline): {out / 'notebooks'}\n"
          f"  figures (PNG):                                  {out / 'figures'}\n"
          f"  per-notebook times:                             {out / 'timings.json'}\n"
          f"  experiment rows and caches:                     {runs_dir() / 'ablation'}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="quick", help="quick (default, about 15 min), full (the README's "
                                                     "tables) or smoke (CI)")
    ap.add_argument("--full", action="store_true", help="the same as --scale full")
    ap.add_argument("--smoke", action="store_true", help="the same as --scale smoke (WORKBENCH_SMOKE=1)")
    ap.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 02")
    args = ap.parse_args(argv)
    scale = "full" if args.full else "smoke" if args.smoke else args.scale
    run(args.only, scale)


if __name__ == "__main__":
    main()
