"""One registry for every crop model: ``create_model(name, **cfg)``.

Model files register a factory with :func:`register_model`. Importing :mod:`opencrop.models` imports the torch-free
model files and names the learned ones with :func:`register_lazy`: their module (and torch, ≈ 1 s) is imported on
the first :func:`create_model` of that name, so the default cropper starts without torch. ``None``-valued kwargs
are dropped so an unset CLI option never overrides a model's own default (the timm convention).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["create_model", "is_model", "list_models", "register_lazy", "register_model"]

_REGISTRY: dict[str, Callable[..., Any]] = {}
_LAZY: dict[str, str] = {}  # name → module that registers it when imported


def register_model(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``fn`` under ``name`` (default: the function's name). Duplicates are an error."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            raise ValueError(f"model {key!r} is registered twice ({_REGISTRY[key].__module__}, {fn.__module__})")
        _REGISTRY[key] = fn
        return fn

    return deco


def register_lazy(name: str, module: str) -> None:
    """Register ``name`` as built by a factory that importing ``module`` registers (imported on first use)."""
    _LAZY[name] = module


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch ``pattern``, sorted (lazy ones are not imported)."""
    _ensure_loaded()
    return sorted(n for n in {*_REGISTRY, *_LAZY} if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY or name in _LAZY


def create_model(name: str, **cfg: Any) -> Any:
    """Build the model registered as ``name`` with keyword config ``cfg`` (``None`` values dropped).

    Raises:
        KeyError: unknown name; the message lists the valid names and near matches.

    Example:
        >>> model = create_model("composition")
    """
    _ensure_loaded()
    if name not in _REGISTRY and name in _LAZY:
        importlib.import_module(_LAZY[name])
        if name not in _REGISTRY:
            raise RuntimeError(f"importing {_LAZY[name]} did not register model {name!r}")
    if name not in _REGISTRY:
        known = sorted({*_REGISTRY, *_LAZY})
        near = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"unknown model {name!r}.{hint} Registered: {', '.join(known)}")
    return _REGISTRY[name](**{k: v for k, v in cfg.items() if v is not None})


def _ensure_loaded() -> None:
    import opencrop.models  # noqa: F401  (registers every model, the learned ones lazily)
