"""The one device resolver: ``resolve_device("auto")`` picks cuda (under a launcher the process's own GPU,
``cuda:<LOCAL_RANK>``), then mps, then cpu."""
from __future__ import annotations

import torch

_ALLOWED = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"``/``"mps"`` into an available ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            from .config import local_rank
            rank = local_rank()                   # accelerate launch / torchrun: one GPU per process
            return torch.device(f"cuda:{rank}" if rank is not None else "cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in _ALLOWED:
        raise ValueError(f"device={device!r} is not understood; use one of {_ALLOWED} (or 'cuda:N').")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here; "
                         "use device='auto' or 'cpu'.")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} was asked for but MPS is not available; use 'auto' or 'cpu'.")
    return torch.device(name)
