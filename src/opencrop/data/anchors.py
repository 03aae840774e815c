"""LVRN's predefined anchors file (Lu et al., IEEE Access 2019), loaded safely.

``pdefined_anchors.pkl`` is a pickled list of 1,745 ``[x1, y1, x2, y2]`` **normalised xyxy** boxes. Unpickling can
run code, so the file's SHA-256 is checked first and the unpickler only accepts plain lists and floats.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from opencrop.data._common import sha256_file
from opencrop.errors import DataFormatError

__all__ = ["LVRN_PKL_SHA256", "load_lvrn_pkl"]

#: SHA-256 of luwr1022/listwise-view-ranking ``pdefined_anchors.pkl`` (blob a86b019d275d)
LVRN_PKL_SHA256 = "dbb268450422fe9972815deb3826e3175eccd4d968af01b1d573b2eba217a40b"


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:  # plain containers only
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def load_lvrn_pkl(path: str | Path, sha256: str | None = LVRN_PKL_SHA256) -> np.ndarray:
    """Read LVRN's ``pdefined_anchors.pkl`` → ``[1745, 4]`` normalised xyxy float64.

    Raises :class:`DataFormatError` when the SHA-256 differs (pass ``sha256=None`` to skip the check for a
    regenerated file) or the content is not a list of 4-number boxes in [0, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "LVRN anchor file not found")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise DataFormatError(path, f"sha256 {got} differs from the published file's {sha256}")
    try:
        with path.open("rb") as f:
            obj = _NoGlobals(f, encoding="latin1").load()
        a = np.asarray(obj, dtype=np.float64)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataFormatError(path, f"not a pickled list of boxes: {e}") from e
    if a.ndim != 2 or a.shape[1] != 4 or a.shape[0] == 0:
        raise DataFormatError(path, f"expected [N, 4] boxes, got shape {a.shape}")
    if a.min() < 0 or a.max() > 1 or ((a[:, 2] <= a[:, 0]) | (a[:, 3] <= a[:, 1])).any():
        raise DataFormatError(path, "anchors must be normalised xyxy in [0, 1] with x2 > x1, y2 > y1")
    return a
