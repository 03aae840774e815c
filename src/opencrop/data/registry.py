"""``load_dataset("FORMAT:DIR")``: one entry point over every adapter, dispatched by format name."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencrop.data.record import CropRecord

__all__ = ["FORMATS", "get_loader", "load_dataset", "parse_spec"]

#: format name → (module, loader function, default split, what the records carry)
FORMATS: dict[str, tuple[str, str, str | None, str]] = {
    "gaicd": ("opencrop.data.gaicd", "load_gaicd", "test", "scored crops (MOS)"),
    "cpc": ("opencrop.data.cpc", "load_cpc", "all", "scored crops (mean votes)"),
    "fcdb": ("opencrop.data.fcdb", "load_fcdb", "test", "ground-truth crops"),
    "flms": ("opencrop.data.flms", "load_flms", "test", "ground-truth crops"),
    "flms-design": ("opencrop.data.flms", "load_flms_design", None, "ground-truth crops + layout region"),
    "sacd": ("opencrop.data.sacd", "load_sacd", "test", "ground-truth crops + subject"),
    "gencrop": ("opencrop.data.gencrop", "load_gencrop", "test", "ground-truth crops + subject"),
}
_ALIASES = {
    "gaicd-v1": "gaicd",
    "gaicd-v2": "gaicd",
    "gaic": "gaicd",
    "gaic-journal": "gaicd",
    "flms_design": "flms-design",
    "unsplash": "gencrop",
}


def _canon(fmt: str) -> str:
    f = fmt.strip().lower()
    f = _ALIASES.get(f, f)
    if f not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    return f


def get_loader(fmt: str) -> Callable[..., list[CropRecord]]:
    """The loader function of a format name (aliases such as ``gaicd-v2`` accepted)."""
    mod, fn, _, _ = FORMATS[_canon(fmt)]
    return getattr(importlib.import_module(mod), fn)


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"gaicd:/data/GAICD"`` → ``("gaicd", Path("/data/GAICD"))``."""
    if ":" not in spec:
        raise ValueError(f"dataset spec {spec!r} must be FORMAT:DIR, e.g. gaicd:/data/GAICD")
    fmt, path = spec.split(":", 1)
    return _canon(fmt), Path(path)


def load_dataset(spec: str, split: str | None = None, **kwargs: Any) -> list[CropRecord]:
    """Load ``"FORMAT:DIR"`` with that format's loader; ``split=None`` uses the format's default split.

    Keyword arguments the loader does not take (e.g. ``subset`` for SACD) raise ``TypeError`` unless ``None``.
    """
    fmt, path = parse_spec(spec)
    loader = get_loader(fmt)
    params = inspect.signature(loader).parameters
    default_split = FORMATS[fmt][2]
    if "split" in params:
        kwargs["split"] = split if split is not None else default_split
    elif split not in (None, "test", "all"):
        raise ValueError(f"format {fmt!r} has no splits")
    unknown = [k for k, v in kwargs.items() if k not in params and v is not None]
    if unknown:
        raise TypeError(f"format {fmt!r} does not take {', '.join(unknown)}")
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    if kwargs.get("subset") == "human" and fmt not in ("gaicd", "cpc", "fcdb", "flms"):
        raise ValueError(f"format {fmt!r} has no human subset")
    return loader(path, **kwargs)
