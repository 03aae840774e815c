"""Pluggable backends of the outpainting pipeline, one small class per stage and kind.

=========  ===============================  ==================================================================
stage      backend                          what it needs
=========  ===============================  ==================================================================
caption    ``blip2`` :class:`Blip2Captioner`   ``transformers`` (extra ``outpaint``) + a local model directory
           ``none`` :class:`NoCaptioner`       nothing (empty prompts; the CPU outpainter ignores them)
paint      ``cpu`` :class:`CpuOutpainter`      NumPy + OpenCV (:mod:`opencrop.outpaint.classical`)
           ``sd2`` :class:`SD2Outpainter`      ``diffusers`` + a local Stable-Diffusion-2-inpainting directory
filter     ``resnet50`` :class:`QualityFilter` an opencrop model file or the published ``quality_model/model.pt``
           ``none`` (no filtering: every image is kept, and the stage says so)
segment    ``cues`` :class:`CueSegmenter`      opencrop's person detector + person mask (person mask ∩ boxes)
           ``yolov8`` :class:`YoloSegmenter`   ``ultralytics`` + a local ``yolov8*-seg.pt`` file
=========  ===============================  ==================================================================

Nothing downloads: every model is loaded from a path the user gives (``local_files_only=True``), and a missing
optional package raises :class:`MissingExtraError` naming the ``outpaint`` extra.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.errors import ModelFileError, OpenCropError

__all__ = [
    "NEGATIVE_PROMPT",
    "Blip2Captioner",
    "CpuOutpainter",
    "CueSegmenter",
    "MissingExtraError",
    "NoCaptioner",
    "QualityFilter",
    "SD2Outpainter",
    "YoloSegmenter",
    "require",
]

#: run_outpaint.py's negative prompt (systems.md §7.1 step 2)
NEGATIVE_PROMPT = ("unrealistic, unnatural, collage, multiple images, ugly, deformed, disfigured, watermark, "
                   "signature, picture-frame, image border, photo album, photo gallery")


class MissingExtraError(OpenCropError, ImportError):
    """An optional dependency of the pipeline is not installed."""


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` telling how to install the ``outpaint`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed: "
                                f"pip install 'opencrop[outpaint]' ({e})") from e


def _model_dir(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise ModelFileError(None, f"{what}: give the local model directory (nothing is downloaded)")
    p = Path(path)
    if not p.is_dir():
        raise ModelFileError(p, f"{what}: not a directory (expected a save_pretrained folder)")
    return p


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- captioning
class NoCaptioner:
    """Empty captions (for the CPU outpainter, which uses no prompt)."""

    name = "none"

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        return ["" for _ in images]


class Blip2Captioner:
    """BLIP-2 captions (``Salesforce/blip2-opt-6.7b`` in the paper) from a local ``save_pretrained`` directory
    holding the model and its processor. fp16 on CUDA, fp32 on CPU; greedy ``generate``."""

    name = "blip2"

    def __init__(self, model_dir: str | Path | None, device: str | None = None, max_new_tokens: int = 30) -> None:
        tf = require("transformers", "BLIP-2 captioning")
        import torch

        d = _model_dir(model_dir, "blip2")
        self.device = _device(device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            self.processor = tf.AutoProcessor.from_pretrained(d, local_files_only=True)
            self.model = tf.Blip2ForConditionalGeneration.from_pretrained(d, local_files_only=True, dtype=dtype)
        except OSError as e:
            raise ModelFileError(d, f"cannot load a BLIP-2 model and processor: {e}") from e
        self.model.to(self.device).eval()
        self.dtype, self.max_new_tokens = dtype, int(max_new_tokens)

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        import torch
        from PIL import Image

        x = self.processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")
        x = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)) for k, v in x.items()}
        with torch.inference_mode():
            ids = self.model.generate(**x, max_new_tokens=self.max_new_tokens)
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]


# ---------------------------------------------------------------------------------------------- outpainting
class CpuOutpainter:
    """The classical offline outpainter (:func:`opencrop.outpaint.classical.extend_fill`); prompts are ignored."""

    name = "cpu"

    def __call__(self, pasted: list[tuple[np.ndarray, tuple[int, int, int, int]]], prompts: list[str],
                 canvas: int, rng: np.random.Generator) -> list[np.ndarray]:
        from opencrop.outpaint.classical import extend_fill

        return [extend_fill(photo, xywh, canvas, rng) for photo, xywh in pasted]


class SD2Outpainter:
    """Stable-Diffusion-2 inpainting (``StableDiffusionInpaintPipeline``) from a local directory: mask = 1 outside
    the pasted photo, prompt = the caption, :data:`NEGATIVE_PROMPT`, ``steps`` (50) and ``guidance`` (4) as the
    paper; the safety checker is not loaded. fp16 on CUDA. The photo is pasted back exactly afterwards (the VAE
    round trip would otherwise alter the GT region)."""

    name = "sd2"

    def __init__(self, model_dir: str | Path | None, device: str | None = None, steps: int = 50,
                 guidance: float = 4.0) -> None:
        df = require("diffusers", "Stable-Diffusion-2 outpainting")
        import torch

        d = _model_dir(model_dir, "sd2")
        self.device = _device(device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            self.pipe = df.StableDiffusionInpaintPipeline.from_pretrained(
                d, local_files_only=True, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False)
        except (OSError, ValueError) as e:
            raise ModelFileError(d, f"cannot load a Stable-Diffusion inpainting pipeline: {e}") from e
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance = int(steps), float(guidance)

    def __call__(self, pasted: list[tuple[np.ndarray, tuple[int, int, int, int]]], prompts: list[str],
                 canvas: int, rng: np.random.Generator) -> list[np.ndarray]:
        import torch
        from PIL import Image

        images, masks = [], []
        for photo, (x, y, w, h) in pasted:
            rgb = np.zeros((canvas, canvas, 3), np.uint8)
            rgb[y : y + h, x : x + w] = photo
            m = np.full((canvas, canvas), 255, np.uint8)
            m[y : y + h, x : x + w] = 0
            images.append(Image.fromarray(rgb))
            masks.append(Image.fromarray(m))
        gen = torch.Generator("cpu").manual_seed(int(rng.integers(1 << 62)))
        out = self.pipe(prompt=list(prompts), negative_prompt=[NEGATIVE_PROMPT] * len(prompts), image=images,
                        mask_image=masks, height=canvas, width=canvas, num_inference_steps=self.steps,
                        guidance_scale=self.guidance, generator=gen, output_type="np").images
        res = []
        for arr, (photo, (x, y, w, h)) in zip(out, pasted, strict=True):
            a = (np.clip(np.asarray(arr), 0, 1) * 255).round().astype(np.uint8)
            a[y : y + h, x : x + w] = photo
            res.append(a)
        return res


# ---------------------------------------------------------------------------------------------- bad filter
class QualityFilter:
    """``P(bad)`` of outpainted images with the ResNet-50 classifier (:mod:`opencrop.outpaint.quality`) from an
    opencrop model file (``opencrop train configs/gencrop_quality.yaml``) or the published ``model.pt``."""

    name = "resnet50"

    def __init__(self, weights: str | Path | None, device: str | None = None) -> None:
        from opencrop.models.learned import load_checkpoint_file
        from opencrop.outpaint.quality import QualityClassifier

        if weights is None:
            raise ModelFileError(None, "filter: give --quality FILE (a trained classifier or quality_model/model.pt)")
        try:
            load_checkpoint_file(weights)
            from opencrop.models import create_model

            self.model = create_model("outpaint_quality", weights=weights)
        except ModelFileError as e:
            if not Path(weights).is_file() or "not an opencrop checkpoint" not in e.problem:
                raise
            self.model = QualityClassifier()
            self.model.load_published(weights)
        self.model.to(_device(device)).eval()

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        return self.model.p_bad(images)


# ---------------------------------------------------------------------------------------------- segmentation
def _polygon(mask: np.ndarray) -> np.ndarray | None:
    """Largest external contour ``[N, 2]`` (x, y pixels) of a bool mask, or ``None``."""
    import cv2

    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return None
    c = max(cs, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    return c if len(c) >= 3 else None


def _box_polygon(b: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in b)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


class CueSegmenter:
    """Instances from opencrop's cues: for ``cls="person"`` the person detector's boxes, each with the person
    mask inside its box (its polygon; the box itself when the mask is empty there); for another COCO class the
    object detector's boxes of that label (box polygons)."""

    name = "cues"

    def __init__(self, cls: str = "person") -> None:
        self.cls = cls

    def __call__(self, image: np.ndarray) -> list[dict[str, Any]]:
        from opencrop.cues import analyze

        if self.cls == "person":
            cues = analyze(image, want={"people", "person_mask"})
            dets = cues.people
            pm = cues.person_mask
        else:
            cues = analyze(image, want={"objects"})
            keep = [i for i, lab in enumerate(cues.objects.labels) if lab == self.cls]
            dets, pm = cues.objects, None
            dets = type(dets)(dets.boxes[keep], dets.scores[keep], [self.cls] * len(keep))
        notes = [n for n in cues.notes if "unavailable" in n]
        if notes:
            raise OpenCropError("segment (cues): " + "; ".join(notes))
        out = []
        h, w = image.shape[:2]
        for b, s in zip(np.asarray(dets.boxes, np.float64), np.asarray(dets.scores), strict=True):
            poly = None
            if pm is not None:
                x1, y1 = max(0, int(b[0])), max(0, int(b[1]))
                x2, y2 = min(w, int(np.ceil(b[2]))), min(h, int(np.ceil(b[3])))
                m = np.zeros((h, w), bool)
                m[y1:y2, x1:x2] = pm[y1:y2, x1:x2] > 0.5
                poly = _polygon(m)
            out.append({"xyxy": b, "score": float(s), "class": self.cls,
                        "polygon": poly if poly is not None else _box_polygon(b)})
        return out


class YoloSegmenter:
    """ultralytics YOLOv8-seg (``yolov8x-seg.pt`` in the paper) from a local weight file, one COCO class kept."""

    name = "yolov8"

    def __init__(self, weights: str | Path | None, cls: str = "person", device: str | None = None) -> None:
        ul = require("ultralytics", "YOLOv8 segmentation")
        if weights is None or not Path(weights).is_file():
            raise ModelFileError(weights, "yolov8: give --yolo FILE, a local yolov8*-seg.pt (nothing is downloaded)")
        self.model = ul.YOLO(str(weights))
        names = {v: k for k, v in self.model.names.items()}
        if cls not in names:
            raise ValueError(f"yolov8: class {cls!r} is not one of the model's classes")
        self.cls, self.cls_id, self.device = cls, int(names[cls]), device

    def __call__(self, image: np.ndarray) -> list[dict[str, Any]]:
        r = self.model(image[..., ::-1].copy(), verbose=False, device=self.device)[0]  # ultralytics takes BGR
        out = []
        for i, box in enumerate(r.boxes):
            if int(box.cls) != self.cls_id:
                continue
            poly = np.asarray(r.masks[i].xy[0], np.float64) if r.masks is not None else None
            b = np.asarray(box.xyxy[0].tolist(), np.float64)
            out.append({"xyxy": b, "score": float(box.conf), "class": self.cls,
                        "polygon": poly if poly is not None and len(poly) >= 3 else _box_polygon(b)})
        return out
