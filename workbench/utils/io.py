"""Files and fingerprints: atomic writes (a kill mid-write never leaves a truncated file), content hashes of
files, config dicts and model weights (what keys every cache, row and checkpoint)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def stable_hash(obj) -> str:
    """A short hash of a JSON-serialisable object (config dicts), used to key caches."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def weights_fingerprint(*modules) -> str:
    """A short id of torch modules' weights (shape, sum and a few values of every tensor): cheap enough for
    Stable Diffusion, and it changes when a model is retrained under the same name or path."""
    digest = []
    for module in modules:
        if module is None:
            continue
        for name, t in module.state_dict().items():
            flat = t.detach().float().flatten()
            digest.append((name, tuple(t.shape), round(float(flat.sum()), 3), round(float(flat[:16].abs().sum()), 4)))
    return stable_hash(digest)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write_fn) -> Path:
    """Write through ``write_fn(tmp_path)`` to a temp file in the same folder, then rename over ``path``.

    A kill mid-write leaves the old file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    def _w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    return atomic_write(path, _w)
