"""Crop models: one file per system, all registered through :func:`create_model`.

The learned models (torch) are registered by name and imported on first use; the default ``composition`` model and
the baselines need no torch.
"""

from opencrop.models import baselines, composition  # noqa: F401  (registers "composition", baselines)
from opencrop.models.registry import (
    create_model,
    is_model,
    list_models,
    list_pretrained,
    register_lazy,
    register_model,
)

for _name in ("gaic", "hcic", "gafic", "s2cnet", "gencrop"):
    register_lazy(_name, f"opencrop.models.{_name}")
register_lazy("setcrop", "opencrop.models.setcrop")
register_lazy("outpaint_quality", "opencrop.outpaint.quality")  # GenCrop's bad-outpaint classifier (not a cropper)

__all__ = ["create_model", "is_model", "list_models", "list_pretrained", "register_lazy", "register_model"]
