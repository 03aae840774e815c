"""Crop models: one file per system, all registered through :func:`create_model`."""

from opencrop.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
from opencrop.models import hcic as _hcic  # noqa: E402, F401  (registers "hcic")
from opencrop.models import gafic as _gafic  # noqa: E402, F401  (registers "gafic")
