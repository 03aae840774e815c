"""GenCrop's torch-free parts: the letterbox geometry, the subject it crops for, the exact-ratio fit and the
ordering of its proposals — shared by the torch model (:mod:`opencrop.models.gencrop`) and the onnxruntime path
(:class:`opencrop.models.onnx_runtime.OnnxGenCrop`), so both give the same boxes. Boxes are xyxy analysis pixels
unless said otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from opencrop.cues.types import Cues
from opencrop.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["Letterbox", "fit_ratio", "pick_subject", "propose_crops", "subject_mask"]


# ---------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Letterbox:
    """GenCrop's input transform: long side → ``size``, centred zero padding (after normalisation) to a square.

    Geometry of a ``w × h`` image (:meth:`geometry`): ``s = size / max(w, h)`` (``size / h`` when ``w == h``), the
    resized picture is ``round(s·w) × round(s·h)`` placed at ``(pad_x, pad_y) = ((size − new_w) // 2,
    (size − new_h) // 2)``. A point ``p`` of the image maps to ``s · p + pad`` in input pixels.
    """

    size: int = 256
    pixel_scale: float = 255.0
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def geometry(self, width: int, height: int) -> tuple[float, int, int, int, int]:
        """``(scale, pad_x, pad_y, new_w, new_h)`` for a ``width × height`` image."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if width > height:
            s = self.size / width
            nw, nh = self.size, max(1, round(s * height))
        else:
            s = self.size / height
            nw, nh = max(1, round(s * width)), self.size
        return s, (self.size - nw) // 2, (self.size - nh) // 2, nw, nh

    def to_input(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """xyxy image pixels ``[N, 4]`` → xyxy input pixels."""
        s, px, py, _, _ = self.geometry(width, height)
        return np.asarray(boxes, np.float64).reshape(-1, 4) * s + np.array([px, py, px, py])

    def from_input(self, boxes: np.ndarray, width: int, height: int, clamp: bool = True) -> np.ndarray:
        """xyxy input pixels ``[N, 4]`` → xyxy image pixels, clamped to the image (the valid region) by default."""
        s, px, py, _, _ = self.geometry(width, height)
        b = (np.asarray(boxes, np.float64).reshape(-1, 4) - np.array([px, py, px, py])) / s
        if clamp:
            b = np.clip(b, 0, np.array([width, height, width, height], np.float64))
        return b

    def valid(self, width: int, height: int) -> np.ndarray:
        """``[4]`` xyxy input pixels of the picture inside the padded square."""
        _, px, py, nw, nh = self.geometry(width, height)
        return np.array([px, py, px + nw, py + nh], np.float64)

    # -- torch (the model's preprocessing; torch is imported only here) ----------------------------------
    def resize(self, x: Tensor) -> Tensor:
        """``Tensor[C, h, w]`` float → resized to the picture size of :meth:`geometry` (bilinear, antialiased)."""
        import torch.nn.functional as F

        _, _, _, nw, nh = self.geometry(int(x.shape[2]), int(x.shape[1]))
        if (nh, nw) == tuple(x.shape[1:]):
            return x
        return F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]

    def normalize(self, x: Tensor) -> Tensor:
        """``Tensor[3, h, w]`` in 0–255 → ``/ pixel_scale`` and ImageNet-normalised."""
        import torch

        mean = torch.tensor(self.mean, dtype=x.dtype).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(3, 1, 1)
        return (x / self.pixel_scale - mean) / std

    def pad(self, x: Tensor) -> Tensor:
        """``Tensor[C, new_h, new_w]`` → ``Tensor[C, size, size]``, centred, zeros around."""
        import torch.nn.functional as F

        nh, nw = int(x.shape[1]), int(x.shape[2])
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        return F.pad(x, (px, self.size - px - nw, py, self.size - py - nh))

    def __call__(self, image: np.ndarray) -> tuple[Tensor, tuple[float, float]]:
        """``[H, W, 3]`` uint8 RGB → ``(Tensor[3, size, size], (s, s))`` (boxes also shift by the padding)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] RGB image, got shape {tuple(image.shape)}")
        import torch

        x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
        s = self.geometry(int(image.shape[1]), int(image.shape[0]))[0]
        return self.pad(self.normalize(self.resize(x))), (s, s)

    def mask(self, mask: np.ndarray) -> Tensor:
        """``[H, W]`` mask (bool or float) → ``Tensor[1, size, size]`` float in {0, 1} (resized, > 0.5, padded)."""
        import torch

        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
        return self.pad((self.resize(m) > 0.5).float())

    # -- numpy (the onnxruntime path: the same numbers without torch) -----------------------------------
    def array(self, image: np.ndarray) -> np.ndarray:
        """numpy :meth:`__call__`: ``[H, W, 3]`` uint8 RGB → ``[3, size, size]`` float32 (torch's antialiased
        bilinear as per-axis weight matrices, :func:`opencrop.models.onnx_runtime.resize_matrix`)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] RGB image, got shape {tuple(image.shape)}")
        x = self._resize_array(np.asarray(image, np.float32).transpose(2, 0, 1))
        mean = np.asarray(self.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(3, 1, 1)
        return self._pad_array((x / np.float32(self.pixel_scale) - mean) / std)

    def mask_array(self, mask: np.ndarray) -> np.ndarray:
        """numpy :meth:`mask`: ``[H, W]`` mask → ``[1, size, size]`` float32 in {0, 1}."""
        m = self._resize_array(np.ascontiguousarray(mask, dtype=np.float32)[None])
        return self._pad_array((m > 0.5).astype(np.float32))

    def _resize_array(self, x: np.ndarray) -> np.ndarray:
        from opencrop.models.onnx_runtime import resize_matrix

        _, h, w = x.shape
        _, _, _, nw, nh = self.geometry(w, h)
        if (nh, nw) == (h, w):
            return x.astype(np.float32)
        my, mx = resize_matrix(h, nh, True), resize_matrix(w, nw, True)
        return np.einsum("oh,chw,pw->cop", my, x.astype(np.float64), mx, optimize=True).astype(np.float32)

    def _pad_array(self, x: np.ndarray) -> np.ndarray:
        nh, nw = int(x.shape[1]), int(x.shape[2])
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        return np.pad(x, ((0, 0), (py, self.size - py - nh), (px, self.size - px - nw))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (the ONNX file's ``opencrop.preprocess``), with ``"kind": "letterbox"``."""
        return {"kind": "letterbox", "size": self.size, "pixel_scale": self.pixel_scale, "mean": list(self.mean),
                "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Letterbox:
        return cls(int(d["size"]), float(d["pixel_scale"]), tuple(d["mean"]), tuple(d["std"]))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- subject, ratio
def _valid_box(b: Any) -> np.ndarray | None:
    if b is None:
        return None
    a = np.asarray(b, np.float64).reshape(-1)
    if a.shape[0] != 4 or not np.all(np.isfinite(a)) or np.any(a < 0) or a[2] <= a[0] or a[3] <= a[1]:
        return None
    return a


def pick_subject(cues: Cues, width: int, height: int) -> tuple[np.ndarray, str]:
    """The subject GenCrop crops for → ``(box [4] xyxy analysis pixels, source)``, first found of:

    1. ``cues.subject_box`` (a dataset's subject), then ``cues.subjects`` (user ``--subject`` boxes: their union);
    2. ``cues.human_box`` (HCIC's human box on FLMS / FCDB);
    3. the most prominent detected person (largest ``area × score``);
    4. the most salient detected object (largest saliency mass inside the box × score);
    5. the salient region (bounding box of saliency ≥ half its maximum);
    6. the whole image (noted in ``cues.notes``: nothing to crop for).
    """
    b = _valid_box(cues.subject_box)
    if b is not None:
        return b, "subject_box"
    subj = np.asarray(cues.subjects, np.float64).reshape(-1, 4)
    if len(subj):
        return np.concatenate([subj[:, :2].min(0), subj[:, 2:].max(0)]), "user subject"
    b = _valid_box(cues.human_box)
    if b is not None:
        return b, "human_box"
    p = cues.people
    if len(p):
        pb = np.asarray(p.boxes, np.float64)
        area = np.maximum(pb[:, 2] - pb[:, 0], 0) * np.maximum(pb[:, 3] - pb[:, 1], 0)
        return pb[int(np.argmax(area * np.asarray(p.scores, np.float64)))], "person"
    sal = cues.saliency
    if len(cues.objects):
        ob = np.asarray(cues.objects.boxes, np.float64)
        mass = _box_mass(sal, ob, width, height) if sal is not None else (ob[:, 2] - ob[:, 0]) * (ob[:, 3] - ob[:, 1])
        return ob[int(np.argmax(mass * np.asarray(cues.objects.scores, np.float64)))], "salient object"
    if sal is not None and float(np.max(sal)) > 0:
        ys, xs = np.nonzero(sal >= 0.5 * float(np.max(sal)))
        sh, sw = sal.shape
        box = np.array([xs.min() / sw * width, ys.min() / sh * height, (xs.max() + 1) / sw * width,
                        (ys.max() + 1) / sh * height])
        return box, "salient region"
    cues.notes.append("gencrop: no subject given or detected; cropping for the whole image")
    return np.array([0.0, 0.0, float(width), float(height)]), "whole image"


def _box_mass(sal: np.ndarray, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sum of the saliency map inside each xyxy analysis-pixel box (integral image at the map's resolution)."""
    sh, sw = sal.shape
    ii = np.pad(np.cumsum(np.cumsum(np.asarray(sal, np.float64), 0), 1), ((1, 0), (1, 0)))
    x1 = np.clip(np.floor(boxes[:, 0] / width * sw), 0, sw).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2] / width * sw), 0, sw).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1] / height * sh), 0, sh).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3] / height * sh), 0, sh).astype(int)
    return ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]


def subject_mask(cues: Cues, subject: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[H, W]`` bool subject mask for the 4th channel: the given one, else the person mask inside the subject
    box, else the filled box."""
    from PIL import Image

    def fit(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, np.float32)
        if m.shape != (height, width):
            m = np.asarray(Image.fromarray(m).resize((width, height), Image.BILINEAR))
        return m > 0.5

    x1, y1 = int(max(0, np.floor(subject[0]))), int(max(0, np.floor(subject[1])))
    x2, y2 = int(min(width, np.ceil(subject[2]))), int(min(height, np.ceil(subject[3])))
    box = np.zeros((height, width), bool)
    box[y1:y2, x1:x2] = True
    if cues.subject_mask is not None:
        return fit(cues.subject_mask)
    if cues.person_mask is not None:
        m = fit(cues.person_mask) & box
        if m.any():
            return m
    return box


def fit_ratio(boxes: np.ndarray, ratio: float, width: int, height: int, subject: np.ndarray | None = None
              ) -> np.ndarray:
    """Boxes ``[N, 4]`` xyxy → boxes of aspect exactly ``ratio`` (w / h) inside the ``width × height`` image.

    Each box keeps its centre and its area (``w' = √(A·r)``, ``h' = √(A/r)``); it is then grown, still at
    ``ratio``, until it holds the ``subject`` box when that fits the image at this ratio; shrunk to fit the
    image; and shifted (not squeezed) back inside it.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    r = float(ratio)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    area = np.maximum(b[:, 2] - b[:, 0], 1e-6) * np.maximum(b[:, 3] - b[:, 1], 1e-6)
    w = np.sqrt(area * r)
    wmax = min(float(width), float(height) * r)
    if subject is not None:
        s = np.asarray(subject, np.float64).reshape(4)
        # half-extents needed around the current centre to cover the subject, as widths at ratio r
        need_w = 2 * np.maximum(np.maximum(cx - s[0], s[2] - cx), 0)
        need_h = 2 * np.maximum(np.maximum(cy - s[1], s[3] - cy), 0)
        grown = np.maximum(w, np.maximum(need_w, need_h * r))
        w = np.where(grown <= wmax, grown, w)
    w = np.minimum(w, wmax)
    h = w / r
    x1 = np.clip(cx - w / 2, 0, width - w)
    y1 = np.clip(cy - h / 2, 0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def propose_crops(final: np.ndarray, proposals: np.ndarray, weights: np.ndarray, subject: np.ndarray,
                  width: int, height: int, ratio: float | None) -> tuple[np.ndarray, np.ndarray]:
    """GenCrop's answer to a request without boxes: the weighted crop first (score 1), then the proposals by gating
    weight (score = the weight), each fitted to ``ratio`` by :func:`fit_ratio` when one is asked for →
    ``(boxes [1 + P, 4], scores [1 + P])``."""
    order = np.argsort(-np.asarray(weights), kind="stable")
    boxes = np.concatenate([np.asarray(final, np.float64).reshape(1, 4), np.asarray(proposals, np.float64)[order]])
    scores = np.concatenate([[1.0], np.asarray(weights, np.float64)[order]])
    if ratio is not None:
        boxes = fit_ratio(boxes, float(ratio), width, height, subject)
    return boxes, scores

