"""Checkpoint files: the one place that writes and reads opencrop model files and training-run checkpoints.

A checkpoint is ``torch.save`` of a dict (read back with ``weights_only=True``):

==================  ===================================================================================
key                 meaning
==================  ===================================================================================
``model``           the state dict (``{name: Tensor}``)
``config``          ``{"name": registry name, **kwargs}``: rebuilds the model through ``create_model``
``opencrop_version`` the version that wrote it
``source``          where the weights come from (``"opencrop train …"``, ``"lld533/… mobilenet_….pth"``)
``model_sha256``    :func:`state_digest` of ``model``, added by :func:`save_atomic`; checked on every load
==================  ===================================================================================

Training-run checkpoints (``last.pt``) add optimiser, scheduler, RNG states etc. (:mod:`opencrop.train.trainer`).

``torch.load`` notices a truncated file, but not a flipped byte inside a tensor (the zip records are not
checksummed on read): ``model_sha256`` is what turns a damaged file into a :class:`~opencrop.errors.ModelFileError`
instead of silently wrong weights. Files written before checksums existed (no ``model_sha256``) still load.

:func:`build_with_weights` is the one builder of every learned model: ``weights`` is a checkpoint path or a
pretrained tag (``"gaic.mobilenet_v2_gaicd_v1"``, resolved by :func:`opencrop.modelfiles.resolve`), and the model
records where its weights came from in ``model.weights_source`` (``None`` = random initialisation).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from opencrop.errors import ModelFileError

__all__ = [
    "build_with_weights",
    "checkpoint_of",
    "load_checkpoint_file",
    "load_state",
    "load_weights",
    "opencrop_version",
    "save_atomic",
    "save_weights",
    "state_digest",
]

DIGEST_KEY = "model_sha256"


def opencrop_version() -> str:
    """The installed opencrop version (``"0.1.0+src"`` when running from a source tree)."""
    try:
        from importlib.metadata import version

        return version("opencrop")
    except Exception:  # not installed (running from a source tree)
        return "0.1.0+src"


def state_digest(state: Mapping[str, Any]) -> str:
    """Hex sha256 of a state dict's content: for every key in sorted order its name, dtype, shape and raw bytes.

    Independent of the file's serialisation (the same weights give the same digest however they are saved).
    """
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        if isinstance(v, Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        else:  # ``_extra_state`` and the like
            h.update(f"{k}\0{v!r}\0".encode())
    return h.hexdigest()


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``path.tmp``, fsync, then ``os.replace``: a kill leaves the old file or the new one, never
    half. A dict with a ``"model"`` state dict is written with its ``"model_sha256"`` (:func:`state_digest`)."""
    p = Path(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = {**obj, DIGEST_KEY: state_digest(obj["model"])}
    tmp = p.with_name(p.name + ".tmp")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with a :class:`ModelFileError` naming the file
    when it is missing or unreadable (for released weight files that are not opencrop checkpoints)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ModelFileError(path, "no such weight file") from e
    except Exception as e:
        raise ModelFileError(path, f"cannot read as a torch checkpoint ({type(e).__name__}: {e})") from e


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an opencrop model or run checkpoint (``torch.load``, ``weights_only=True``) → its dict, with its
    ``model_sha256`` checked when it has one.

    Raises:
        ModelFileError: missing, truncated or otherwise unreadable, not a dict with a ``"model"`` state dict, or
            damaged (the weights no longer match the digest recorded when the file was written).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(p, "no such weight file")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(
            p, f"cannot read as a torch checkpoint: truncated, damaged or not a checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        hint = ""
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
            hint = " (this looks like a bare state dict; convert it with `opencrop weights import`)"
        raise ModelFileError(p, f"not an opencrop checkpoint: expected a dict with a 'model' state dict{hint}")
    want = ckpt.get(DIGEST_KEY)
    if want is not None:
        got = state_digest(ckpt["model"])
        if got != want:
            raise ModelFileError(
                p,
                f"damaged: its weights have sha256 {got[:12]}…, not the {str(want)[:12]}… recorded when it was "
                "written (a truncated copy, a disk or transfer error); copy, re-import or re-train it",
            )
    return ckpt


def checkpoint_of(model: nn.Module, source: str = "opencrop") -> dict[str, Any]:
    """Model file content of a learned model: ``{"model", "config", "opencrop_version", "source"}``."""
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": {"name": model.name, **model.config},
        "opencrop_version": opencrop_version(),
        "source": source,
    }


def save_weights(model: nn.Module, path: str | os.PathLike[str], source: str = "opencrop") -> Path:
    """Write :func:`checkpoint_of` ``model`` to ``path`` with :func:`save_atomic` (parent folders created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return save_atomic(checkpoint_of(model, source), p)


def load_state(
    model: nn.Module, state: Mapping[str, Tensor], source: str | os.PathLike[str] | None = None, strict: bool = True
) -> None:
    """``model.load_state_dict(state)`` with a :class:`ModelFileError` that names every mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:5]))
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s): " + ", ".join(missing[:5]))
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(unexpected[:5]))
    if problems:
        raise ModelFileError(
            source,
            f"weights do not fit {model.name} with config {model.config}: " + " | ".join(problems)
            + " (was the model built with the same backbone / reddim / batchnorm?)",
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)


def load_weights(model: nn.Module, path: str | os.PathLike[str], strict: bool = True) -> dict[str, Any]:
    """Load an opencrop model file or training-run checkpoint into ``model`` and set ``model.weights_source`` to
    the path; returns the checkpoint dict.

    Raises:
        ModelFileError: unreadable or damaged file, a checkpoint of another model, missing / unexpected keys or
            shape mismatches (the message lists them).
    """
    ckpt = load_checkpoint_file(path)
    _apply(model, ckpt, path, strict)
    return ckpt


def _apply(model: nn.Module, ckpt: dict[str, Any], path: str | os.PathLike[str], strict: bool = True) -> None:
    cfg = ckpt.get("config") or {}
    other = cfg.get("name") if isinstance(cfg, dict) else None
    if other is not None and other != model.name:
        raise ModelFileError(path, f"checkpoint is for model {other!r}, not {model.name!r}")
    load_state(model, ckpt["model"], source=path, strict=strict)
    model.weights_source = str(path)


def _pretrained_tag(weights: str | os.PathLike[str]) -> str | None:
    """``weights`` when it names a registered pretrained tag (and is not an existing path), else ``None``."""
    if not isinstance(weights, str) or Path(weights).exists():
        return None
    from opencrop.models.pretrained import list_pretrained

    return weights if weights in list_pretrained() else None


def build_with_weights(cls: type, weights: str | os.PathLike[str] | None, **cfg: Any) -> Any:
    """``cls(**cfg)``, untrained (``weights_source`` ``None``) when ``weights`` is ``None``.

    With ``weights`` (an opencrop model file, or a pretrained tag such as ``"gaic.mobilenet_v2_gaicd_v1"`` whose file
    :func:`opencrop.modelfiles.resolve` finds) the file's saved config is the default architecture, explicit ``cfg``
    keys override it, no ImageNet weights are fetched, the weights are loaded, ``weights_source`` is set to the tag
    or the path, and the model is returned in eval mode. Every learned model's registry builder uses this.
    ``precision`` (``"fp32"`` / ``"bf16"``, an inference option, not part of the saved config) is applied with
    :meth:`~opencrop.models.learned.LearnedCropModel.set_precision`.

    Raises:
        ValueError: a ``precision`` the model does not support.
        ModelFileError: a tag whose file is absent (the message names the tag, the file, where it looked, the
            environment variable and the import command), a tag of another model, or a missing / damaged / unfitting
            file.
    """
    precision = cfg.pop("precision", None)
    if precision is not None:  # checked before building (and loading weights)
        if not hasattr(cls, "check_precision"):
            raise TypeError(f"{getattr(cls, 'name', cls.__name__)}: takes no precision option")
        cls.check_precision(precision)
    model = _build(cls, weights, **cfg)
    return model if precision is None else model.set_precision(precision)


def _build(cls: type, weights: str | os.PathLike[str] | None, **cfg: Any) -> Any:
    if weights is None:
        return cls(**cfg)
    tag = _pretrained_tag(weights)
    path: str | os.PathLike[str] = weights
    if tag is not None:
        from opencrop import modelfiles

        mf = modelfiles.get_file(tag)
        if mf.model != cls.name:
            raise ModelFileError(tag, f"pretrained tag for model {mf.model!r}, not {cls.name!r}")
        path = modelfiles.resolve(tag)
    elif isinstance(weights, str) and weights.startswith(f"{cls.name}.") and not Path(weights).exists():
        from opencrop.models.pretrained import list_pretrained

        known = ", ".join(list_pretrained(f"{cls.name}.*")) or "none"
        raise ModelFileError(weights, f"no such weight file, nor a pretrained tag of {cls.name} (tags: {known})")
    ckpt = load_checkpoint_file(path)
    saved = dict(ckpt.get("config") or {})
    saved.pop("name", None)
    model = cls(**{**saved, **cfg, "pretrained_backbone": False})
    _apply(model, ckpt, path)
    model.weights_source = tag or str(path)
    return model.eval()
