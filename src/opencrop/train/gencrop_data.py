"""GenCrop training samples (systems.md §7.2): context windows of outpainted canvases, letterboxed to 256.

Records come from :func:`opencrop.data.gencrop.load_outpaint` (one per outpainted file that passed the bad-outpaint
and heuristic filters: hallucination and size rules). Per epoch each **stock photo** is one item and contributes
one random outpainted variant. For an item:

1. a context window holding the GT crop is sampled (:func:`sample_window`): long side ``U(1, 2)`` × the crop's long
   side (capped by the canvas), aspect from {1, 4/5, 3/4, 5/7, 2/3} for a portrait crop (9/16 added for a
   landscape one, as the reciprocal), with probability 20 % a portrait crop gets an inverted (landscape) window of
   at most 1.1 × the minimum scale; its position is biased to the extremes (25 %: 0 or 1, else uniform);
2. the window is letterboxed (:class:`~opencrop.models.gencrop.Letterbox`); crop, subject and valid region are
   mapped to input pixels (the subject clipped to the valid region);
3. augmentation (training only): colour jitter (0.125, 0.5, 0.5, 0.05: ``photometric_distort(..., "colorjitter")``),
   Gaussian blur 5×5 with σ ∈ U(0.1, 5), grayscale w.p. 0.05, elastic warp w.p. 0.5 (image and subject mask
   independently, torchvision's α = 50, σ = 5), subject-box jitter ±10 % of its size per edge, horizontal flip w.p.
   ``data.flip`` (0.5);
4. ``subject_mask_box`` = bounding box of the (warped) subject mask (the subject box when there is no polygon,
   the valid region when there is no subject).

Sample dict (input pixels of the ``S × S`` square, xyxy): ``image`` ``Tensor[C, S, S]`` (C = 4 with the subject
mask channel), ``crop``, ``valid``, ``subject_box`` (−1 when none), ``subject_mask_box`` ``Tensor[4]``, ``name``.
Randomness is a pure function of ``(seed, epoch, index)``; validation items use epoch 0 and no augmentation, so
every validation pass sees the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["GenCropSamples", "collate", "evaluate_samples", "make_datasets", "sample_window"]

PORTRAIT_ASPECTS = (1.0, 4 / 5, 3 / 4, 5 / 7, 2 / 3)  # w / h of the window for a portrait crop
LANDSCAPE_ASPECTS = (1.0, 4 / 5, 3 / 4, 5 / 7, 2 / 3, 9 / 16)  # h / w of the window for a landscape crop


def sample_window(crop: np.ndarray, width: int, height: int, rng: np.random.Generator, min_scale: float = 1.0,
                  max_scale: float = 2.0, invert_prob: float = 0.2, extreme_p: float = 0.25, tries: int = 1000
                  ) -> tuple[int, int, int, int]:
    """A context window ``(x, y, w, h)`` integer canvas pixels that holds ``crop`` (``[4]`` xyxy canvas pixels).

    See the module docstring. A portrait crop (h > w) draws its window height first, a landscape / square crop its
    width. After ``tries`` rejected draws the whole canvas is returned.
    """
    cx1, cy1, cx2, cy2 = (float(v) for v in crop)
    cw, ch = cx2 - cx1, cy2 - cy1
    portrait = ch > cw
    for _ in range(tries):
        if not portrait or rng.random() >= invert_prob:
            hi_scale = max_scale
            aspect = float(rng.choice(PORTRAIT_ASPECTS if portrait else LANDSCAPE_ASPECTS))
        else:
            hi_scale = 1.1 * min_scale
            aspect = 1.0 / float(rng.choice(LANDSCAPE_ASPECTS))
        if portrait:
            h = int(rng.uniform(min_scale * ch, max(min_scale * ch, min(hi_scale * ch, height))))
            w = int(aspect * h)
        else:
            w = int(rng.uniform(min_scale * cw, max(min_scale * cw, min(hi_scale * cw, width))))
            h = int(aspect * w)
        if h >= ch and w >= cw and h <= height and w <= width:
            break
    else:
        return 0, 0, int(width), int(height)

    def place(lo: float, hi: float) -> int:
        lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
        if hi_i <= lo_i:
            return max(0, lo_i)
        t = float(rng.integers(2)) if rng.random() < extreme_p else float(rng.uniform(0, 1))
        return round(t * (hi_i - lo_i)) + lo_i

    x = place(max(0.0, cx2 - w), min(width - w, cx1))
    y = place(max(0.0, cy2 - h), min(height - h, cy1))
    return x, y, w, h


# ---------------------------------------------------------------------------------------------- augmentation
def _gauss_kernel(sigma: float, size: int) -> Tensor:
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: Tensor, sigma: float, size: int) -> Tensor:
    """Separable Gaussian blur of ``Tensor[C, H, W]`` (reflect padding, as torchvision's ``gaussian_blur``)."""
    k = _gauss_kernel(sigma, size)
    c = x.shape[0]
    pad = size // 2
    y = F.pad(x[None], (pad, pad, 0, 0), mode="reflect" if x.shape[2] > pad else "replicate")
    y = F.conv2d(y, k.view(1, 1, 1, size).expand(c, 1, 1, size).contiguous(), groups=c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect" if x.shape[1] > pad else "replicate")
    return F.conv2d(y, k.view(1, 1, size, 1).expand(c, 1, size, 1).contiguous(), groups=c)[0]


def _elastic(x: Tensor, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 5.0) -> Tensor:
    """torchvision-style ElasticTransform of ``Tensor[C, H, W]``: a U(−1, 1) displacement field blurred with a
    Gaussian (σ, kernel ``8σ + 1``), scaled by ``α / size``, applied with bilinear ``grid_sample`` (zeros outside)."""
    h, w = x.shape[1:]
    g = np.random.default_rng(rng.integers(1 << 62))
    d = torch.from_numpy(g.uniform(-1, 1, size=(2, h, w)).astype(np.float32))
    ks = int(8 * sigma + 1)
    d = _blur(d, sigma, ks | 1)
    dx, dy = d[0] * alpha / w, d[1] * alpha / h
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx + dx, gy + dy], dim=-1)[None]
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def _augment_pixels(x: Tensor, rng: np.random.Generator) -> Tensor:
    """Colour jitter, blur, grayscale and elastic warp of ``Tensor[3, h, w]`` in 0–255 (module docstring)."""
    from opencrop.train.datasets import photometric_distort

    x = photometric_distort(x, rng, "colorjitter")
    x = _blur(x, float(rng.uniform(0.1, 5.0)), 5)
    if rng.random() < 0.05:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1).clone()
    if rng.random() < 0.5:
        x = _elastic(x, rng)
    return x


def _mask_bbox(m: Tensor) -> Tensor | None:
    """xyxy pixel bounding box ``Tensor[4]`` of the non-zero pixels of ``Tensor[1, H, W]``, or ``None``."""
    ys = torch.nonzero(m[0].any(dim=1)).flatten()
    xs = torch.nonzero(m[0].any(dim=0)).flatten()
    if len(ys) == 0:
        return None
    return torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- dataset
class GenCropSamples(torch.utils.data.Dataset):
    """Training / validation samples over outpaint records (module docstring).

    Args:
        records: :func:`~opencrop.data.gencrop.load_outpaint` records (``gt_crops``, ``subject_box``,
            ``extra["source_id"]``, ``extra["subject_polygon"]``).
        letterbox: the model's :class:`~opencrop.models.gencrop.Letterbox`.
        use_subject: add the subject-mask channel.
        train: training items (a new draw every epoch, subject-box jitter, flips); else fixed windows (epoch 0).
        photometric: with ``train``, colour jitter / blur / grayscale / elastic warps.
        flip: horizontal-flip probability (training).
        invert_prob, min_scale, max_scale: window sampling (:func:`sample_window`).
        seed: base seed; items are a pure function of ``(seed, epoch, index)``.
    """

    def __init__(self, records: Sequence[CropRecord], letterbox: Any, use_subject: bool = False,
                 train: bool = False, photometric: bool = True, flip: float = 0.0, invert_prob: float = 0.2,
                 min_scale: float = 1.0, max_scale: float = 2.0, seed: int = 0) -> None:
        self.records = [r for r in records if r.gt_crops is not None and r.image_path is not None]
        self.skipped = [r.name for r in records if r.gt_crops is None or r.image_path is None]
        groups: dict[str, list[CropRecord]] = {}
        for r in sorted(self.records, key=lambda r: r.name):
            groups.setdefault(str(r.extra.get("source_id", r.name)), []).append(r)
        self.groups = [groups[k] for k in sorted(groups)]
        self.lb, self.use_subject, self.train, self.flip = letterbox, use_subject, bool(train), float(flip)
        self.photometric = bool(train and photometric)
        self.invert_prob, self.min_scale, self.max_scale = invert_prob, min_scale, max_scale
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.groups)

    collate = staticmethod(lambda samples: collate(samples))

    def __getitem__(self, index: int) -> dict[str, Any]:
        from opencrop.train.datasets import read_image

        epoch = self.epoch if self.train else 0
        rng = np.random.default_rng([self.seed, 4093, epoch, index])
        group = self.groups[index]
        rec = group[int(rng.integers(len(group)))]
        img = read_image(rec.image_path)
        H, W = img.shape[:2]
        crop = np.asarray(rec.gt_crops, np.float64).reshape(-1, 4)[0]
        if crop[0] < 0 or crop[1] < 0 or crop[2] > W or crop[3] > H or crop[2] <= crop[0] or crop[3] <= crop[1]:
            raise DataFormatError(rec.image_path, f"GT crop {crop.tolist()} does not fit the {W}x{H} canvas")
        x, y, w, h = sample_window(crop, W, H, rng, self.min_scale, self.max_scale, self.invert_prob)
        lb = self.lb
        px = torch.from_numpy(np.ascontiguousarray(img[y : y + h, x : x + w])).permute(2, 0, 1).float()
        px = lb.resize(px)
        if self.photometric:
            px = _augment_pixels(px, rng)
        image = lb.pad(lb.normalize(px.clamp(0, 255)))
        off = np.array([x, y, x, y], np.float64)
        to_in = lambda b: torch.from_numpy(lb.to_input(np.asarray(b, np.float64) - off, w, h)[0]).float()  # noqa: E731
        crop_in = to_in(crop)
        valid = torch.from_numpy(lb.valid(w, h)).float()
        subj = None
        if rec.subject_box is not None:
            subj = to_in(rec.subject_box)
            subj = torch.maximum(torch.minimum(subj, valid[[2, 3, 2, 3]]), valid[[0, 1, 0, 1]])
        mask = None
        poly = rec.extra.get("subject_polygon")
        if poly is not None and len(poly) >= 3:
            import cv2

            m = np.zeros((h, w), np.uint8)
            cv2.fillPoly(m, [np.round(np.asarray(poly) - np.array([x, y])).astype(np.int32)], 1)
            mask = lb.mask(m)
            if self.photometric and rng.random() < 0.5:
                mask = (_elastic(mask, rng) > 0.5).float()
        elif subj is not None and self.use_subject:
            mask = torch.zeros(1, lb.size, lb.size)
            b = subj.round().long()
            mask[:, b[1] : b[3], b[0] : b[2]] = 1.0
        if self.train and subj is not None:
            sw, sh = float(subj[2] - subj[0]), float(subj[3] - subj[1])
            j = torch.from_numpy(rng.uniform(-0.1, 0.1, size=4).astype(np.float32)) * torch.tensor([sw, sh, sw, sh])
            subj = torch.maximum(torch.minimum(subj + j.trunc(), valid[[2, 3, 2, 3]]), valid[[0, 1, 0, 1]])
        if self.train and rng.random() < self.flip:
            image = image.flip(2)
            mask = mask.flip(2) if mask is not None else None
            s = float(lb.size)
            fl = lambda b: torch.stack([s - b[2], b[1], s - b[0], b[3]])  # noqa: E731
            crop_in, valid = fl(crop_in), fl(valid)
            subj = fl(subj) if subj is not None else None
        mask_box = _mask_bbox(mask) if mask is not None else None
        if mask_box is None:
            mask_box = subj.clone() if subj is not None else valid.clone()
        if self.use_subject:
            image = torch.cat([image, mask if mask is not None else torch.zeros(1, lb.size, lb.size)], dim=0)
        return {"image": image, "crop": crop_in, "valid": valid,
                "subject_box": subj if subj is not None else torch.full((4,), -1.0),
                "subject_mask_box": mask_box, "name": rec.name}


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack GenCrop samples: every tensor field gets a leading batch dimension; ``name`` stays a list."""
    if not samples:
        raise ValueError("collate: empty batch")
    out: dict[str, Any] = {k: torch.stack([s[k] for s in samples]) for k in samples[0] if k != "name"}
    out["name"] = [s["name"] for s in samples]
    return out


def make_datasets(model: Any, train: Sequence[CropRecord], val: Sequence[CropRecord],
                  test: Sequence[CropRecord] | None, data_cfg: Any, seed: int
                  ) -> tuple[GenCropSamples, GenCropSamples, GenCropSamples | None]:
    """The trainer hook (:meth:`~opencrop.models.gencrop.GenCrop.training_datasets`): training samples with the
    GenCrop augmentations (``data.photometric: none`` turns off colour / blur / grayscale / elastic warps;
    ``data.flip`` is the flip probability), fixed validation / test windows."""
    lb, use = model.preprocess, bool(model.use_subject)
    photometric = getattr(data_cfg, "photometric", "colorjitter") != "none"
    tr = GenCropSamples(train, lb, use, train=True, photometric=photometric,
                        flip=float(getattr(data_cfg, "flip", 0.5)), seed=seed)
    va = GenCropSamples(val, lb, use, seed=seed + 1)
    te = GenCropSamples(test, lb, use, seed=seed + 2) if test else None
    return tr, va, te


@torch.no_grad()
def evaluate_samples(model: Any, dataset: GenCropSamples, device: torch.device | str = "cpu", amp: bool = False,
                     batch_size: int = 16) -> dict[str, float]:
    """IoU / BDE of the model's weighted crop against the GT crop of every (fixed) sample, measured in the
    window's valid region (:func:`opencrop.eval.metrics.iou_bde`), plus the mean loss."""
    from opencrop.eval.metrics import iou_bde
    from opencrop.train.datasets import batch_to

    was = model.training
    model.eval()
    dev = torch.device(device)
    preds, gts, ws, hs, loss, n = [], [], [], [], 0.0, 0
    try:
        for i in range(0, len(dataset), batch_size):
            batch = batch_to(collate([dataset[j] for j in range(i, min(len(dataset), i + batch_size))]), dev)
            with torch.autocast(dev.type, enabled=amp and dev.type == "cuda"):
                pred = model.predict_batch(batch).float().cpu().numpy()
                loss += float(model.compute_loss(batch)["loss"]) * len(pred)
            v = batch["valid"].float().cpu().numpy()
            off = v[:, [0, 1, 0, 1]]
            preds.extend(pred - off)
            gts.extend((batch["crop"].float().cpu().numpy() - off)[:, None, :])
            ws.extend(v[:, 2] - v[:, 0])
            hs.extend(v[:, 3] - v[:, 1])
            n += len(pred)
    finally:
        model.train(was)
    if n == 0:
        return {"iou": float("nan"), "bde": float("nan"), "loss": float("nan")}
    # GT crops are rounded input pixels and may overhang the valid region by < 1 px
    m = iou_bde(preds, [np.minimum(g, [[w, h, w, h]]) for g, w, h in zip(gts, ws, hs, strict=True)], ws, hs)
    return {"iou": m["iou"], "bde": m["bde"], "disp": m["disp"], "recall75": m["recall75"], "loss": loss / n}

