"""The one device resolver: ``resolve_device("auto")`` picks cuda (under a launcher the process's own GPU,
``cuda:<LOCAL_RANK>``), then mps, then cpu; ``ProcessState``: which of the launched processes this is."""
from __future__ import annotations

from typing import Optional

import torch

_ALLOWED = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"``/``"mps"`` into an available ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            from ..config import local_rank
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


class ProcessState:
    """This process's place among the launched ones (``accelerate launch`` / ``torchrun``): given by hand, or from
    accelerate's ``PartialState`` (one plain process: index 0 of 1). Synthesis and feature extraction split their
    shards by it."""

    def __init__(self, process_index: Optional[int], num_processes: Optional[int]):
        self.manual = process_index is not None or num_processes is not None
        if self.manual:
            if process_index is None or num_processes is None or not 0 <= process_index < num_processes:
                raise ValueError(f"process_index={process_index!r} and num_processes={num_processes!r} must be "
                                 "given together with 0 <= process_index < num_processes.")
            self.process_index, self.num_processes, self._state = process_index, num_processes, None
        else:
            from accelerate import PartialState
            self._state = PartialState(cpu=not torch.cuda.is_available())     # CPU: gloo under a launcher
            self.process_index, self.num_processes = self._state.process_index, self._state.num_processes
        self.is_main_process = self.process_index == 0

    def wait_for_everyone(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()
