"""Person mask: MediaPipe selfie segmentation (general 256² model) run with the ai-edge-litert interpreter."""

from __future__ import annotations

import numpy as np
from PIL import Image

from opencrop.cues._files import SELFIE
from opencrop.cues._runtime import Lazy, tflite_interpreter
from opencrop.modelfiles import resolve

__all__ = ["person_mask"]


class _Selfie:
    def __init__(self) -> None:
        self.it = tflite_interpreter(str(resolve(SELFIE.name)))
        d = self.it.get_input_details()[0]
        self.inp = d["index"]
        self.h, self.w = int(d["shape"][1]), int(d["shape"][2])
        self.out = self.it.get_output_details()[0]["index"]


_NET: Lazy[_Selfie] = Lazy(_Selfie)


def person_mask(image: np.ndarray, min_coverage: float = 0.005) -> np.ndarray | None:
    """Probability that each pixel belongs to a person: float32 ``[H, W]`` in [0, 1] at ``image``'s size.

    ``image`` is ``[H, W, 3]`` uint8 RGB (stretched to the model's 256² input, as MediaPipe does). Returns ``None``
    when less than ``min_coverage`` of the image is person (mask mean), so callers can skip an empty mask.
    The model is trained on selfies and people at portrait distance; it is weaker on small, distant people.

    Raises:
        BackendUnavailable: ai-edge-litert or the model file is missing.
    """
    from opencrop.cues.faces import _check_image

    _check_image(image)
    net = _NET.get()
    x = np.asarray(Image.fromarray(image).resize((net.w, net.h), Image.BILINEAR), dtype=np.float32) / 255.0
    with _NET.lock:
        net.it.set_tensor(net.inp, x[None])
        net.it.invoke()
        m = net.it.get_tensor(net.out)[0, :, :, 0].copy()
    h, w = image.shape[:2]
    m = np.asarray(Image.fromarray(np.clip(m, 0, 1).astype(np.float32)).resize((w, h), Image.BILINEAR))
    m = np.clip(m, 0.0, 1.0).astype(np.float32)
    return m if float(m.mean()) >= min_coverage else None
