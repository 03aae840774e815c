"""The contract between the Cropper and any crop model.

A crop model looks at an image once (:meth:`CropModel.prepare`) and then scores any number of boxes against
that analysis (:meth:`CropModel.score`). This is how one backbone pass serves every candidate of every ratio.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from opencrop.cues.types import Cues

__all__ = ["CropModel"]


@runtime_checkable
class CropModel(Protocol):
    """Scores crops of one image.

    ``image`` is ``[H, W, 3]`` uint8 RGB (the analysis image, usually shrunk on load); ``boxes`` are ``[N, 4]``
    xyxy float pixels of that same image. Higher scores are better; scores are comparable within one image.
    """

    name: str
    #: which cues the model uses: subset of {"faces", "people", "objects", "saliency", "person_mask"}
    needs: frozenset[str]

    def prepare(self, image: np.ndarray, cues: Cues | None = None) -> Any: ...

    def score(self, prepared: Any, boxes: np.ndarray) -> np.ndarray: ...
