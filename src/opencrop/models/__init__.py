"""Crop models: one file per system, all registered through :func:`create_model`."""

from opencrop.models import baselines, composition  # noqa: F401  (registers "composition", baselines)
from opencrop.models import gafic as _gafic  # noqa: F401  (registers "gafic")
from opencrop.models import gaic as _gaic  # noqa: F401  (registers "gaic")
from opencrop.models import hcic as _hcic  # noqa: F401  (registers "hcic")
from opencrop.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
