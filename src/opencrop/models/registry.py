"""One registry for every crop model: ``create_model(name, pretrained=None, **cfg)``.

Model files register a factory with :func:`register_model`. Importing :mod:`opencrop.models` imports the torch-free
model files and names the learned ones with :func:`register_lazy`: their module (and torch, ≈ 1 s) is imported on
the first :func:`create_model` of that name, so the default cropper starts without torch. ``None``-valued kwargs
are dropped so an unset CLI option never overrides a model's own default (the timm convention).

Pretrained weights are **tags** after a dot (``"gaic.mobilenet_v2_gaicd_v1"``), described in
:mod:`opencrop.models.pretrained` and found by :func:`opencrop.modelfiles.resolve` like every other model file.
:func:`list_pretrained` lists them without importing torch.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["create_model", "is_model", "list_models", "list_pretrained", "register_lazy", "register_model"]

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


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names matching an fnmatch ``pattern``, sorted (lazy ones are not imported).

    ``pretrained=True``: the pretrained tags (``arch.tag``) instead, as :func:`list_pretrained`.
    """
    if pretrained:
        return list_pretrained(pattern)
    _ensure_loaded()
    return sorted(n for n in {*_REGISTRY, *_LAZY} if fnmatch.fnmatch(n, pattern))


def list_pretrained(pattern: str = "*") -> list[str]:
    """Pretrained tags (``arch.tag``) matching an fnmatch ``pattern``, sorted; whether their files are present is
    :func:`opencrop.modelfiles.locate`'s business (``opencrop models list`` shows it)."""
    from opencrop.models.pretrained import list_pretrained as tags

    return tags(pattern)


def is_model(name: str) -> bool:
    """Whether :func:`create_model` knows ``name``: a registered architecture or a pretrained tag."""
    _ensure_loaded()
    return name in _REGISTRY or name in _LAZY or name in list_pretrained()


def create_model(name: str, pretrained: bool | None = None, **cfg: Any) -> Any:
    """Build the model registered as ``name`` with keyword config ``cfg`` (``None`` values dropped).

    Args:
        name: an architecture (``"gaic"``) or a pretrained tag ``arch.tag`` (``"gaic.mobilenet_v2_gaicd_v1"``).
        pretrained: load trained weights from the tag's file (default for a tag; for an architecture, ``True``
            loads its first tag). ``pretrained=False`` with a tag builds the tag's architecture untrained.
        **cfg: the factory's keyword config; ``weights=PATH`` loads an opencrop model file (not together with
            ``pretrained=True``).

    Raises:
        KeyError: unknown name; the message lists the valid names and near matches.
        ValueError: ``pretrained=True`` for a model without tags, or together with ``weights``.
        opencrop.errors.ModelFileError: the tag's weight file is absent (the message says where it looked, the
            environment variable to set and the ``opencrop weights import`` command) or damaged.

    Example:
        >>> model = create_model("composition")
    """
    _ensure_loaded()
    if pretrained and cfg.get("weights") is not None:
        raise ValueError("pass either pretrained=True or weights=, not both")
    tag = None
    if name not in _REGISTRY and name not in _LAZY and name in list_pretrained():
        from opencrop.modelfiles import get_file

        tag = get_file(name)
        name = str(tag.model)
    if name not in _REGISTRY and name not in _LAZY:
        known = sorted({*_REGISTRY, *_LAZY})
        near = difflib.get_close_matches(name, [*known, *list_pretrained()], n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"unknown model {name!r}.{hint} Registered: {', '.join(known)} "
                       f"(pretrained tags: {', '.join(list_pretrained()) or 'none'}; see `opencrop models list`)")
    if tag is None and pretrained:
        from opencrop.modelfiles import get_file
        from opencrop.models.pretrained import default_tag

        dt = default_tag(name)
        if dt is None:
            raise ValueError(f"model {name!r} has no pretrained tags (tags: {', '.join(list_pretrained()) or 'none'});"
                             " pass weights=FILE instead")
        tag = get_file(dt)
    if tag is not None:
        if pretrained is False:  # the tag's architecture, untrained
            cfg = {**tag.config, **cfg}
        elif cfg.get("weights") is not None:
            raise ValueError(f"{tag.name!r} loads the tag's weights: pass either the tag or weights=, not both")
        else:
            cfg = {**cfg, "weights": tag.name}
    if name not in _REGISTRY:
        try:
            importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as e:
            from opencrop.errors import EXTRAS, MissingExtraError

            if e.name and e.name.split(".")[0] in EXTRAS:
                raise MissingExtraError(f"model {name!r}", e.name) from None
            raise
        if name not in _REGISTRY:
            raise RuntimeError(f"importing {_LAZY[name]} did not register model {name!r}")
    return _REGISTRY[name](**{k: v for k, v in cfg.items() if v is not None})


def _ensure_loaded() -> None:
    import opencrop.models  # noqa: F401  (registers every model, the learned ones lazily)
