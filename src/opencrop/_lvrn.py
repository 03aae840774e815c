"""LVRN's predefined normalised anchors (Lu et al., IEEE Access 2019), regenerated from the published rule.

Placeholder module: the regeneration is being written (see issue 2, item 4). Until then
:func:`lvrn_anchors` raises, so nothing can silently use wrong anchors.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lvrn_anchors"]


def lvrn_anchors() -> np.ndarray:
    """``[1745, 4]`` normalised xyxy anchors."""
    raise RuntimeError("lvrn_anchors() is not built yet")
