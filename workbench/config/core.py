"""Global switches, validation helpers and the preset mechanism shared by every stage's config.

This is the only module of the workbench that reads environment variables:

* ``WORKBENCH_SMOKE=1``  shrinks every notebook and job (sizes, steps, epochs) for CI.
* ``WORKBENCH_SCALE``    ``full`` (default: the README's tables), ``quick`` (the main job's half-hour run: one
  seed, smaller sets, shorter training; each notebook says what differs) or ``smoke`` (= ``WORKBENCH_SMOKE=1``).
* ``WORKBENCH_PROFILE``  picks the profile: ``sandbox`` (default), ``paper_b32`` or ``paper_l14``.
* ``WORKBENCH_PIPELINE``  a JSON file of ``PipelineConfig`` fields over a paper profile's (notebooks 02-05).
* ``WORKBENCH_CLIP_CHECKPOINT`` points a paper profile at a local open_clip checkpoint file.
* ``WORKBENCH_RUN_DIR`` (set by the main job) redirects figures to that run's folder.
* ``LOCAL_RANK`` (set by ``accelerate launch`` / ``torchrun``): the GPU of this process on its node.
"""
from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Optional

PROFILES = ("sandbox", "paper_b32", "paper_l14")
PRESETS = ("tiny",) + PROFILES


# ----------------------------------------------------------------------------- switches
def smoke() -> bool:
    """True when ``WORKBENCH_SMOKE`` is set to a truthy value (1/true/yes)."""
    return os.environ.get("WORKBENCH_SMOKE", "0").strip().lower() in ("1", "true", "yes", "on")


SCALES = ("full", "quick", "smoke")


def scale() -> str:
    """``smoke`` under ``WORKBENCH_SMOKE=1``, else ``WORKBENCH_SCALE`` (``full`` when unset)."""
    if smoke():
        return "smoke"
    name = os.environ.get("WORKBENCH_SCALE", "full").strip().lower() or "full"
    check_choice("WORKBENCH_SCALE", name, SCALES)
    return name


def scaled(full, smoke_value, quick=None):
    """The value of the current ``scale()``: ``smoke_value`` under smoke, ``quick`` (when given, else ``full``)
    under quick, else ``full``: the one knob notebooks and presets use to shrink."""
    s = scale()
    if s == "smoke":
        return smoke_value
    return quick if s == "quick" and quick is not None else full


def scale_note() -> str:
    """What the current scale changes against the full run (the notebooks print it in their parameters cell)."""
    return {"full": "full scale: the sizes, seeds and budgets of the README's tables.",
            "quick": "quick scale (the main job's half hour): 1,000 training captions (full: 4,000), 1 seed (3), 12 "
                     "epochs (24), 100 val / 300 test scenes (300 / 1,000), fewer images inspected, the leaderboard "
                     "group of methods (full: every registered row). Scores are lower than the README's and partly "
                     "rank how fast a method learns; the README's tables come from the full scale.",
            "smoke": "smoke scale (CI): a few dozen examples and one epoch; the numbers mean nothing."}[scale()]


def profile() -> str:
    """The active profile, from ``WORKBENCH_PROFILE`` (default ``sandbox``)."""
    name = os.environ.get("WORKBENCH_PROFILE", "sandbox").strip() or "sandbox"
    check_choice("WORKBENCH_PROFILE", name, PROFILES)
    return name


def pipeline_override_file() -> Optional[str]:
    """A JSON file of ``PipelineConfig`` fields that override a paper profile's pipeline (local checkpoints, other
    data, smaller sets), from ``WORKBENCH_PIPELINE``, or None."""
    return os.environ.get("WORKBENCH_PIPELINE", "").strip() or None


def clip_checkpoint_override() -> Optional[str]:
    """A local checkpoint path for the paper CLIP, from ``WORKBENCH_CLIP_CHECKPOINT``, or None."""
    value = os.environ.get("WORKBENCH_CLIP_CHECKPOINT", "").strip()
    return value or None


def local_rank() -> Optional[int]:
    """This process's index on its node under a launcher (``LOCAL_RANK``), or None without one."""
    value = os.environ.get("LOCAL_RANK", "").strip()
    return int(value) if value.isdigit() else None


def run_dir_override() -> Optional[str]:
    """The main job's run folder, from ``WORKBENCH_RUN_DIR``, or None."""
    return os.environ.get("WORKBENCH_RUN_DIR", "").strip() or None


# ----------------------------------------------------------------------------- validation helpers
def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}; pick one of those.")


def check_range(name: str, value, lo=None, hi=None) -> None:
    if isinstance(value, float) and value != value:
        raise ValueError(f"{name}={value!r} is not a number; give a finite value.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name}={value!r} is outside the allowed range {rng}; choose a value inside it.")


_PRESET_CLASSES: dict = {}      # class name -> every config class with presets (filled as the modules load)


def preset_class(name: str):
    """The config class called ``name`` (``"TrainConfig"``): every config class registers itself when its module
    loads, and the package's ``__init__`` loads them all before anything can ask."""
    return _PRESET_CLASSES[name]


class Preset:
    """Mixin: ``Cls.preset(name, **overrides)`` builds a named preset and applies overrides."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _PRESET_CLASSES[cls.__name__] = cls

    @classmethod
    def presets(cls) -> list:
        """Names of this stage's presets (the shared ones first, then stage-specific extras)."""
        extra = sorted(n[len("_preset_"):] for n in dir(cls) if n.startswith("_preset_"))
        return [p for p in PRESETS if p in extra] + [p for p in extra if p not in PRESETS]

    @classmethod
    def preset(cls, name: str, **overrides):
        builder = getattr(cls, f"_preset_{name}", None)
        if builder is None:
            raise ValueError(f"{cls.__name__}.preset(name)={name!r} is not one of {tuple(cls.presets())}; "
                             "pick one of those.")
        cfg = builder()
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"{cls.__name__}.preset({name!r}) got unknown overrides {sorted(unknown)}; "
                            f"valid fields: {sorted(known)}.")
        return replace(cfg, **overrides)


