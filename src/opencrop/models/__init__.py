"""Crop models: one file per system, all registered through :func:`create_model`."""

from opencrop.models import composition  # noqa: F401  (registers "composition")
from opencrop.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
