"""Training / validation dataset over :class:`~opencrop.data.record.CropRecord` lists, and its collate function.

One item is one image: decoded through :func:`opencrop.io.load_frame` at the model's ``analysis_size`` — the same
frame, and so the same pixels, that evaluation and cropping give the model — resized per the model's
:class:`~opencrop.models.preprocess.Preprocess`, augmented (photometric distortion, horizontal flip **with** the
x1/x2 swap that the GAIC code forgets, systems.md §2.8), with up to ``crops_per_image`` annotated crops sampled
without replacement (GAIC: 64).

Sample dict (one image, ``K`` crops; see :mod:`opencrop.models.learned` for the collated form):

* ``image`` ``Tensor[3, H, W]`` float32, normalised network input;
* ``rois`` ``Tensor[K, 4]`` xyxy **input pixels**;
* ``mos`` ``Tensor[K]`` raw scores;
* ``human_box`` ``Tensor[4]`` xyxy input pixels, or all ``-1``;
* ``heatmap`` ``Tensor[1, 64, 64]`` in [0, 1], only when ``heatmap_dir`` is set (HCIC pseudo heat map
  ``<heatmap_dir>/<stem>.png``);
* ``object_boxes`` ``Tensor[D, 4]`` xyxy input pixels, only when the model ``needs`` ``"object_boxes"``
  (collated to ``Tensor[B, D_max, 4]`` padded with ``-1`` plus ``object_mask`` ``Tensor[B, D_max]`` bool);
* ``subject_box`` ``Tensor[4]`` xyxy input pixels or all ``-1``, only when the model ``needs`` ``"subject_box"``;
* ``name`` ``str``; ``scale`` ``Tensor[2]`` ``(sx, sy)``.

Randomness is a pure function of ``(seed, epoch, index)``, so results do not depend on worker count or on a
resume in the middle of training; call :meth:`CropDataset.set_epoch` before iterating each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError, DecodeError
from opencrop.models.preprocess import Preprocess

__all__ = ["HEATMAP_SIZE", "CropDataset", "batch_to", "collate", "photometric_distort", "read_frame", "read_image"]

HEATMAP_SIZE = 64
_PHOTOMETRIC = ("none", "ssd", "colorjitter")


def read_frame(path: str | Path, analysis_size: int) -> Any:
    """:func:`opencrop.io.load_frame` of a dataset image → :class:`~opencrop.io.Frame` (errors name the file)."""
    from opencrop.errors import OpenCropError
    from opencrop.io import load_frame

    try:
        return load_frame(path, analysis_size)
    except OpenCropError as e:
        raise DecodeError(path, f"cannot decode ({e})") from e


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` → ``[H, W, 3]`` uint8 RGB, as stored (for label images such as heat maps)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except FileNotFoundError as e:
        raise DecodeError(path, "no such image file") from e
    except Exception as e:  # PIL raises many types for corrupt files
        raise DecodeError(path, f"cannot decode ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------------------------- colour helpers
def _rgb_to_hsv(x: Tensor) -> Tensor:
    """``Tensor[3, H, W]`` RGB in [0, 1] → HSV with h in [0, 360), s and v in [0, 1]."""
    r, g, b = x[0], x[1], x[2]
    v, _ = x.max(0)
    mn, _ = x.min(0)
    d = v - mn
    s = torch.where(v > 0, d / v.clamp_min(1e-12), torch.zeros_like(v))
    dd = d.clamp_min(1e-12)
    h = torch.where(v == r, (g - b) / dd % 6, torch.where(v == g, (b - r) / dd + 2, (r - g) / dd + 4))
    h = torch.where(d > 0, h * 60.0, torch.zeros_like(h)) % 360.0
    return torch.stack([h, s, v])


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x[0] % 360.0, x[1], x[2]
    c = v * s
    hp = h / 60.0
    xx = c * (1 - (hp % 2 - 1).abs())
    z = torch.zeros_like(h)
    i = hp.floor().clamp(0, 5).long()
    rs = torch.stack([c, xx, z, z, xx, c])
    gs = torch.stack([xx, c, c, xx, z, z])
    bs = torch.stack([z, z, xx, c, c, xx])
    idx = i[None]
    rgb = torch.cat([rs.gather(0, idx), gs.gather(0, idx), bs.gather(0, idx)])
    return rgb + (v - c)[None]


def photometric_distort(x: Tensor, rng: np.random.Generator, style: str = "ssd") -> Tensor:
    """Random photometric distortion of ``x`` ``Tensor[3, H, W]`` RGB float in 0–255 (returns a new tensor).

    * ``"ssd"`` (GAIC, systems.md §2.4): each w.p. ½ — brightness ``+U(−32, 32)``; contrast ``×U(0.5, 1.5)``;
      saturation ``×U(0.5, 1.5)`` and hue ``+U(−18°, 18°)`` in HSV; contrast is applied before or after the HSV
      steps w.p. ½ each (SSD's random order).
    * ``"colorjitter"`` (HCIC, §3.5): brightness ×U(0.875, 1.125), contrast ×U(0.5, 1.5) about the mean grey,
      saturation ×U(0.5, 1.5), hue ±0.05 turn, in a random order.
    * ``"none"``: identity.
    """
    if style == "none":
        return x
    if style not in _PHOTOMETRIC:
        raise ValueError(f"photometric style must be one of {_PHOTOMETRIC}, got {style!r}")
    x = x.clone()
    if style == "ssd":
        if rng.random() < 0.5:
            x = x + float(rng.uniform(-32, 32))
        contrast_first = rng.random() < 0.5
        alpha = float(rng.uniform(0.5, 1.5)) if rng.random() < 0.5 else None
        if contrast_first and alpha is not None:
            x = x * alpha
        do_sat, do_hue = rng.random() < 0.5, rng.random() < 0.5
        sat, hue = float(rng.uniform(0.5, 1.5)), float(rng.uniform(-18, 18))
        if do_sat or do_hue:
            hsv = _rgb_to_hsv(x.clamp(0, 255) / 255.0)
            if do_sat:
                hsv[1] = (hsv[1] * sat).clamp(0, 1)
            if do_hue:
                hsv[0] = (hsv[0] + hue) % 360.0
            x = _hsv_to_rgb(hsv) * 255.0
        if not contrast_first and alpha is not None:
            x = x * alpha
        return x.clamp(0, 255)
    # colorjitter
    order = rng.permutation(4)
    b, c, s, h = (float(rng.uniform(0.875, 1.125)), float(rng.uniform(0.5, 1.5)),
                  float(rng.uniform(0.5, 1.5)), float(rng.uniform(-0.05, 0.05)))
    for op in order:
        if op == 0:
            x = (x * b).clamp(0, 255)
        elif op == 1:
            grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).mean()
            x = ((x - grey) * c + grey).clamp(0, 255)
        elif op == 2:
            grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
            x = ((x - grey) * s + grey).clamp(0, 255)
        else:
            hsv = _rgb_to_hsv(x / 255.0)
            hsv[0] = (hsv[0] + h * 360.0) % 360.0
            x = (_hsv_to_rgb(hsv) * 255.0).clamp(0, 255)
    return x


# ---------------------------------------------------------------------------------------------- dataset
class CropDataset(torch.utils.data.Dataset):
    """Images of scored crops → training / validation samples (module docstring).

    Args:
        records: records with ``image_path``, ``crops`` ``[N, 4]`` xyxy source pixels and ``scores`` ``[N]``;
            records without scored crops are dropped (their names in :attr:`skipped`).
        preprocess: the model's input preprocessing.
        crops_per_image: crops sampled per image (without replacement); ``None`` or 0 keeps all, in order.
        flip: horizontal-flip probability (0.5 in both GAIC and HCIC).
        photometric: ``"ssd"`` | ``"colorjitter"`` | ``"none"``.
        heatmap_dir: directory of HCIC pseudo heat maps ``<stem>.png`` (or ``<name>.png``); ``None`` = no heat map.
        seed: base seed of the per-item random generator.
        min_score: crops scoring below it are ignored (GAICD marks unannotated crops −2).
        analysis_size: long side of the decoded frame (the model's ``analysis_size``).
        needs: the model's ``needs``; record fields named there (``object_boxes``, ``subject_box``) are added.
    """

    def __init__(
        self,
        records: Sequence[CropRecord],
        preprocess: Preprocess,
        crops_per_image: int | None = 64,
        flip: float = 0.0,
        photometric: str = "none",
        heatmap_dir: str | Path | None = None,
        seed: int = 0,
        min_score: float = -1.0,
        analysis_size: int = 512,
        needs: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        if photometric not in _PHOTOMETRIC:
            raise ValueError(f"photometric must be one of {_PHOTOMETRIC}, got {photometric!r}")
        self.records: list[CropRecord] = []
        self.skipped: list[str] = []
        for r in records:
            ok = r.crops is not None and r.scores is not None and r.image_path is not None
            if ok:
                sc = np.asarray(r.scores, dtype=np.float64).reshape(-1)
                ok = bool(np.sum(np.isfinite(sc) & (sc >= min_score)) > 0)
            (self.records if ok else self.skipped).append(r if ok else r.name)  # type: ignore[arg-type]
        self.preprocess = preprocess
        self.crops_per_image = crops_per_image or None
        self.flip = float(flip)
        self.photometric = photometric
        self.heatmap_dir = Path(heatmap_dir) if heatmap_dir else None
        self.seed = int(seed)
        self.min_score = float(min_score)
        self.analysis_size = int(analysis_size)
        self.needs = frozenset(needs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the augmentation and crop sampling of the coming epoch depend on ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _heatmap(self, rec: CropRecord) -> Tensor:
        assert self.heatmap_dir is not None
        stem = Path(rec.name).stem
        for cand in (self.heatmap_dir / f"{stem}.png", self.heatmap_dir / f"{rec.name}.png"):
            if cand.is_file():
                hm = read_image(cand)[..., 0].astype(np.float32) / 255.0
                t = torch.from_numpy(hm)[None, None]
                return F.interpolate(t, size=(HEATMAP_SIZE, HEATMAP_SIZE), mode="bilinear",
                                     align_corners=False, antialias=True)[0].clamp(0, 1)
        raise DataFormatError(self.heatmap_dir / f"{stem}.png",
                              f"no pseudo heat map for {rec.name}; generate heat maps before training (HCIC §3.3)")

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frame = read_frame(rec.image_path, self.analysis_size)  # type: ignore[arg-type]
        x, (px, py) = self.preprocess.resize_image(frame.pixels)
        w_in = int(x.shape[2])
        # stored-pixel annotations → upright original → analysis → input pixels
        fx, fy = frame.scale
        sx, sy = px * fx, py * fy

        def to_input(b: Any) -> np.ndarray:
            return (frame.from_stored(b) * np.array([sx, sy, sx, sy])).astype(np.float32)

        crops = np.asarray(rec.crops, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(rec.scores, dtype=np.float32).reshape(-1)
        valid_box = (crops[:, 2] > crops[:, 0]) & (crops[:, 3] > crops[:, 1])
        keep = np.isfinite(scores) & (scores >= self.min_score) & valid_box
        crops, scores = crops[keep], scores[keep]
        if self.crops_per_image is not None and len(scores) > self.crops_per_image:
            sel = rng.permutation(len(scores))[: self.crops_per_image]
            crops, scores = crops[sel], scores[sel]
        rois = to_input(crops)
        human = np.full(4, -1.0, dtype=np.float32)
        if rec.human_box is not None and np.all(np.asarray(rec.human_box) >= 0):
            human = to_input(rec.human_box)[0]
        objects = None
        if "object_boxes" in self.needs:
            ob = np.zeros((0, 4)) if rec.object_boxes is None else np.asarray(rec.object_boxes, np.float64)
            ob = ob.reshape(-1, 4)
            objects = to_input(ob[(ob[:, 2] > ob[:, 0]) & (ob[:, 3] > ob[:, 1])])
        subject = None
        if "subject_box" in self.needs:
            subject = np.full(4, -1.0, dtype=np.float32)
            if rec.subject_box is not None and np.all(np.asarray(rec.subject_box) >= 0):
                subject = to_input(rec.subject_box)[0]

        x = photometric_distort(x, rng, self.photometric)
        heatmap = self._heatmap(rec) if self.heatmap_dir is not None else None
        if self.flip > 0 and rng.random() < self.flip:
            x = x.flip(-1)
            # mirror AND swap, so that x1 < x2 stays true (the GAIC code forgets the swap, systems.md §2.8)
            rois = np.stack([w_in - rois[:, 2], rois[:, 1], w_in - rois[:, 0], rois[:, 3]], axis=1)
            if human[0] >= 0:
                human = np.array([w_in - human[2], human[1], w_in - human[0], human[3]], dtype=np.float32)
            if objects is not None and len(objects):
                objects = np.stack([w_in - objects[:, 2], objects[:, 1], w_in - objects[:, 0], objects[:, 3]], axis=1)
            if subject is not None and subject[0] >= 0:
                subject = np.array([w_in - subject[2], subject[1], w_in - subject[0], subject[3]], dtype=np.float32)
            if heatmap is not None:
                heatmap = heatmap.flip(-1)
        sample: dict[str, Any] = {
            "image": self.preprocess.normalize(x).contiguous(),
            "rois": torch.from_numpy(np.ascontiguousarray(rois, dtype=np.float32)),
            "mos": torch.from_numpy(scores.astype(np.float32)),
            "human_box": torch.from_numpy(human),
            "name": rec.name,
            "scale": torch.tensor([sx, sy], dtype=torch.float32),
        }
        if heatmap is not None:
            sample["heatmap"] = heatmap.float()
        if objects is not None:
            sample["object_boxes"] = torch.from_numpy(np.ascontiguousarray(objects, dtype=np.float32))
        if subject is not None:
            sample["subject_box"] = torch.from_numpy(subject)
        return sample


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Samples → one batch (contract in :mod:`opencrop.models.learned`): images stacked, rois concatenated
    with their batch index prepended (``Tensor[K, 5]``), ``counts`` the crops per image.

    Raises:
        ValueError: the images differ in size (use batch size 1 with accumulation for aspect-kept inputs).
    """
    if not samples:
        raise ValueError("collate got an empty list of samples")
    sizes = {tuple(s["image"].shape) for s in samples}
    if len(sizes) > 1:
        raise ValueError(
            f"images of one batch differ in size {sorted(sizes)}; with the aspect-kept resize use "
            "train.batch_size: 1 and train.accumulate: N instead"
        )
    rois = [torch.cat([torch.full((len(s["rois"]), 1), float(i)), s["rois"]], dim=1) for i, s in enumerate(samples)]
    batch: dict[str, Any] = {
        "image": torch.stack([s["image"] for s in samples]),
        "rois": torch.cat(rois) if rois else torch.zeros((0, 5)),
        "mos": torch.cat([s["mos"] for s in samples]),
        "counts": torch.tensor([len(s["rois"]) for s in samples], dtype=torch.int64),
        "human_box": torch.stack([s["human_box"] for s in samples]),
        "name": [s["name"] for s in samples],
        "scale": torch.stack([s["scale"] for s in samples]),
    }
    if all("heatmap" in s for s in samples):
        batch["heatmap"] = torch.stack([s["heatmap"] for s in samples])
    if all("object_boxes" in s for s in samples):
        d = max(len(s["object_boxes"]) for s in samples)
        boxes = torch.full((len(samples), d, 4), -1.0)
        mask = torch.zeros((len(samples), d), dtype=torch.bool)
        for i, s in enumerate(samples):
            boxes[i, : len(s["object_boxes"])] = s["object_boxes"]
            mask[i, : len(s["object_boxes"])] = True
        batch["object_boxes"], batch["object_mask"] = boxes, mask
    if all("subject_box" in s for s in samples):
        batch["subject_box"] = torch.stack([s["subject_box"] for s in samples])
    return batch


def batch_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move every tensor of ``batch`` to ``device`` (non-blocking); other values unchanged."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}
