"""Metrics (defined once), the evaluation runner and the published reference numbers.

Imported lazily so ``import opencrop.eval`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PAPER_TABLES", "crop_iou_disp", "evaluate", "gaicd_metrics", "iou_bde", "set_prediction_metrics"]

_LAZY = {
    "crop_iou_disp": "opencrop.eval.metrics",
    "gaicd_metrics": "opencrop.eval.metrics",
    "iou_bde": "opencrop.eval.metrics",
    "set_prediction_metrics": "opencrop.eval.metrics",
    "evaluate": "opencrop.eval.runner",
    "PAPER_TABLES": "opencrop.eval.paper_numbers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opencrop.eval' has no attribute {name!r}")
