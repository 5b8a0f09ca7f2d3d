"""The main job: execute the notebooks top to bottom and keep executed copies and figures.

    python -m workbench.run_notebooks              # full mode, every notebook in notebooks/
    python -m workbench.run_notebooks --smoke      # WORKBENCH_SMOKE=1 (what CI runs through nbmake)
    python -m workbench.run_notebooks --only 01

Outputs go to ``runs/main/<timestamp>/``: ``notebooks/*.ipynb`` (executed) and ``figures/*.png``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .paths import REPO_ROOT, atomic_write, runs_dir


def notebook_paths(only=None) -> list:
    paths = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
        if not paths:
            raise ValueError(f"--only {only} matches no notebook in notebooks/.")
    return paths


def run(only=None, smoke: bool = False, timeout: int = 3600) -> Path:
    import nbformat
    from nbclient import NotebookClient
    out = runs_dir() / "main" / time.strftime("%Y%m%d-%H%M%S")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_RUN_DIR"] = str(out)     # plots.save writes figures here
    if smoke:
        os.environ["WORKBENCH_SMOKE"] = "1"
    for path in notebook_paths(only):
        t0 = time.time()
        print(f"running {path.name} ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        atomic_write(out / "notebooks" / path.name, lambda tmp: nbformat.write(nb, tmp))
        print(f"  done in {time.time() - t0:.0f} s -> {out / 'notebooks' / path.name}", flush=True)
    print(f"executed notebooks and figures are in {out}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="shrink everything (WORKBENCH_SMOKE=1)")
    ap.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 02")
    args = ap.parse_args(argv)
    run(args.only, args.smoke)


if __name__ == "__main__":
    main()
