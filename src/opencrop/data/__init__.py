"""Dataset adapters (one module per on-disk format), the synthetic generator and ``load_dataset``.

Every adapter yields :class:`CropRecord` with boxes in **xyxy float pixels** of the image as stored on disk.
Adapters are imported lazily so ``import opencrop.data`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from opencrop.data.record import CropRecord

__all__ = [
    "FORMATS",
    "CropRecord",
    "load_cpc",
    "load_dataset",
    "load_fcdb",
    "load_flms",
    "load_flms_design",
    "load_gaicd",
    "load_gencrop",
    "load_human_boxes",
    "load_lvrn_pkl",
    "load_object_boxes",
    "load_sacd",
]

_LAZY = {
    "FORMATS": "opencrop.data.registry",
    "load_dataset": "opencrop.data.registry",
    "load_gaicd": "opencrop.data.gaicd",
    "load_cpc": "opencrop.data.cpc",
    "load_fcdb": "opencrop.data.fcdb",
    "load_flms": "opencrop.data.flms",
    "load_flms_design": "opencrop.data.flms",
    "load_sacd": "opencrop.data.sacd",
    "load_gencrop": "opencrop.data.gencrop",
    "load_human_boxes": "opencrop.data.human",
    "load_object_boxes": "opencrop.data.s2cnet",
    "load_lvrn_pkl": "opencrop.data.anchors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opencrop.data' has no attribute {name!r}")
