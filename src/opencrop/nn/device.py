"""The one parser of a ``--device`` string: a :class:`torch.device` that can run here, or a clear error."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``spec`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; ``None`` = CUDA when available, else CPU) as a device
    this machine has. ``"cuda"`` means ``cuda:<local_rank>`` (one GPU per distributed rank).

    Raises:
        ValueError: an unknown device type, a malformed index, no CUDA (or MPS) here, or an index beyond the
            GPUs present — each naming ``spec`` and what is available.
    """
    if spec is None or spec == "":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    text = str(spec).strip().lower()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {spec!r}: not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r}: CUDA is not available here (torch {torch.__version__}); use --device "
                             f"cpu")
        n = torch.cuda.device_count()
        index = local_rank if dev.index is None else dev.index
        if index >= n:
            raise ValueError(f"device {spec!r}: only {n} CUDA device(s) here (cuda:0 … cuda:{n - 1})")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {spec!r}: MPS is not available here; use --device cpu")
        return dev
    raise ValueError(f"device {spec!r}: opencrop runs on cpu, cuda or mps")
