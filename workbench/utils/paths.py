"""Path resolver: where the repository, shipped data, caches and runs live.

Notebooks run from their own folder (nbmake does that), so every path goes through here and is
anchored at the repository root, never at the current directory.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_path(path: str | os.PathLike) -> Path:
    """An absolute path: ``path`` itself when absolute, else relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def data_dir() -> Path:
    """Shipped, committed data (sandbox weights and their manifests)."""
    return REPO_ROOT / "data"


def runs_dir() -> Path:
    """Generated outputs (git-ignored): caches, checkpoints, executed notebooks, figures."""
    d = REPO_ROOT / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_dir(kind: str) -> Path:
    d = runs_dir() / "cache" / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def figures_dir() -> Path:
    """Where ``plots.save`` writes figures; ``WORKBENCH_RUN_DIR`` (set by the main job) redirects it."""
    from ..config import run_dir_override
    override = run_dir_override()
    base = Path(override) if override else runs_dir()
    d = base / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d
