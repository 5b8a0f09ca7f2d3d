"""The one checkpoint mechanism of the resumable loops (CLIP pretraining, diffusion training, captioner training).

A checkpoint is a torch-saved dict written atomically (temp file + rename, so a kill never leaves a
truncated file) and tagged with the key of the run that wrote it (a hash of its config and whatever else
identifies it). ``load`` hands it back only to that same run: a checkpoint of another run is reported and
ignored (the run starts afresh and overwrites it), never half-applied.

    ck = Checkpoint(run_dir / "unet.pt", key)
    state = ck.load()                      # None, or the dict saved by this run
    ck.save(model=..., opt=..., step=...)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .io import atomic_write


class Checkpoint:
    def __init__(self, path: str | Path, key: str):
        self.path, self.key = Path(path), key

    def load(self, fresh: bool = False, quiet: bool = False) -> Optional[dict]:
        """The saved state of this run, or None (no file, ``fresh``, or a file written by another run: said unless
        ``quiet``)."""
        if fresh or not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("key", state.get("config_hash")) != self.key:      # "config_hash": older checkpoints
            if not quiet:
                print(f"ignoring {self.path}: it was written by another run (config, model or data changed); "
                      "starting afresh")
            return None
        return state

    def save(self, **state) -> Path:
        payload = {**state, "key": self.key}
        return atomic_write(self.path, lambda tmp: torch.save(payload, tmp))
