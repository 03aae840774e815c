"""Image decoding and encoding.

* Decode JPEG / PNG / WebP / TIFF / BMP / GIF / ICO / TGA / AVIF (whatever Pillow reads; the first frame of
  animations, with the frame count reported), apply the EXIF (or XMP) orientation so everything downstream sees
  the upright image, convert CMYK / LAB / 16-bit / float / palette / 1-bit / alpha deliberately, and convert an
  embedded ICC profile to sRGB (an unusable profile is ignored).
* **Shrink on load** for analysis: JPEGs are DCT-scaled by libjpeg (``Image.draft``) to the smallest size that
  still covers the analysis size, so analysis cost is flat in megapixels. The output crop is cut later from the
  full-resolution image (or from a DCT-scaled one that is still at least as large as the requested output).
* A pixel limit guards against decompression bombs; every failure is a typed error naming the file.
"""

from __future__ import annotations

import io as _io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from opencrop._threads import cpus, in_parallel
from opencrop.errors import DecodeError, ImageTooLargeError, UnsupportedImageError
from opencrop.limits import DEFAULT_MAX_PIXELS as _DEFAULT_MAX_PIXELS

__all__ = [
    "DEFAULT_ANALYSIS_SIZE",
    "DEFAULT_MAX_PIXELS",
    "Frame",
    "ImageInput",
    "LoadedImage",
    "crop_image",
    "encode_image",
    "load_frame",
    "load_image",
    "probe_image",
    "save_image",
    "write_atomic",
]

#: long side, in pixels, of the image the models analyse
DEFAULT_ANALYSIS_SIZE = 512
#: refuse images with more pixels than this (decompression-bomb guard); ``load_image(max_pixels=...)`` overrides
#: (see :mod:`opencrop.limits`)
DEFAULT_MAX_PIXELS = _DEFAULT_MAX_PIXELS

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]  # noqa: UP007

# Our limit is checked before any pixel is decoded; Pillow's process-wide bomb limit is left alone (an input limit
# above it is refused in opencrop.limits). Its warning below that limit is silenced per call in load_image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_SRGB = ImageCms.createProfile("sRGB")


@dataclass
class Frame:
    """One decoded image and its three coordinate frames: **stored** (pixels as in the file), **original**
    (upright: the EXIF orientation applied; every box a user sees) and **analysis** (the shrunk copy models and
    cues look at). Full resolution is decoded again only on demand (:meth:`full`).

    Attributes:
        source: file path, or ``"<bytes>"`` / ``"<PIL image>"`` / ``"<array>"``.
        width, height: upright full-resolution size in pixels (EXIF orientation applied).
        pixels: ``[h, w, 3]`` uint8 RGB analysis image (long side ≤ the requested analysis size).
        format: Pillow format name (``"JPEG"``…) or ``None`` for in-memory pixels.
        n_frames: number of frames/pages in the file (the first is used).
        has_alpha: whether the image has transparency (analysis pixels are composited onto grey).
        orientation: the EXIF orientation (1–8) that maps stored to upright pixels (1 = none).

    Box conversions (all xyxy float pixels, ``[N, 4]`` arrays): :meth:`to_analysis` / :meth:`to_original`
    between original and analysis pixels; :meth:`from_stored` from stored-pixel boxes (dataset annotations are
    in the file's stored pixels) to original pixels.
    """

    source: str
    width: int
    height: int
    pixels: np.ndarray
    format: str | None = None
    n_frames: int = 1
    has_alpha: bool = False
    orientation: int = 1
    _data: bytes | None = field(default=None, repr=False)
    _path: Path | None = field(default=None, repr=False)
    _full: Image.Image | None = field(default=None, repr=False)
    _decoded: tuple[Image.Image, float] | None = field(default=None, repr=False)

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: analysis pixels per original pixel."""
        return self.pixels.shape[1] / self.width, self.pixels.shape[0] / self.height

    @property
    def analysis_size(self) -> tuple[int, int]:
        """``(w, h)`` of the analysis image."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def stored_size(self) -> tuple[int, int]:
        """``(w, h)`` as stored in the file (before the EXIF orientation)."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)

    def to_analysis(self, boxes: Any) -> np.ndarray:
        """Original-pixel xyxy boxes ``[N, 4]`` → analysis pixels (float64)."""
        sx, sy = self.scale
        return np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])

    def to_original(self, boxes: Any) -> np.ndarray:
        """Analysis-pixel xyxy boxes ``[N, 4]`` → original pixels (float64)."""
        sx, sy = self.scale
        return np.asarray(boxes, np.float64).reshape(-1, 4) / np.array([sx, sy, sx, sy])

    def from_stored(self, boxes: Any) -> np.ndarray:
        """Stored-pixel xyxy boxes ``[N, 4]`` → original (upright) pixels, following the EXIF orientation."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self.orientation == 1:
            return b.copy()
        sw, sh = self.stored_size
        x1, y1, x2, y2 = b.T
        # corners mapped through the same transpose Pillow applies (see _TRANSPOSE)
        o = self.orientation
        if o == 2:
            nx1, ny1, nx2, ny2 = sw - x2, y1, sw - x1, y2
        elif o == 3:
            nx1, ny1, nx2, ny2 = sw - x2, sh - y2, sw - x1, sh - y1
        elif o == 4:
            nx1, ny1, nx2, ny2 = x1, sh - y2, x2, sh - y1
        elif o == 5:  # transpose
            nx1, ny1, nx2, ny2 = y1, x1, y2, x2
        elif o == 6:  # rotate 270 (clockwise 90)
            nx1, ny1, nx2, ny2 = sh - y2, x1, sh - y1, x2
        elif o == 7:  # transverse
            nx1, ny1, nx2, ny2 = sh - y2, sw - x2, sh - y1, sw - x1
        else:  # 8: rotate 90 (counter-clockwise)
            nx1, ny1, nx2, ny2 = y1, sw - x2, y2, sw - x1
        return np.stack([nx1, ny1, nx2, ny2], axis=1)

    def full(self, min_size: tuple[int, int] | None = None) -> tuple[Image.Image, float]:
        """The upright image at full resolution, or DCT-reduced while still ≥ ``min_size`` ``(w, h)``.

        Returns ``(image, factor)`` where ``factor`` = returned pixels per original pixel (1.0 or 1/2, 1/4, 1/8).
        The mode is ``RGB`` or ``RGBA``.
        """
        if self._full is not None:
            return self._full, 1.0
        if self._decoded is not None:
            pic, f = self._decoded
            if f == 1.0 or (min_size is not None and pic.size[0] >= min_size[0] and pic.size[1] >= min_size[1]):
                return pic, f
        src: Any = self._path if self._path is not None else _io.BytesIO(self._data or b"")
        im = _open(src, self.source)
        with im:
            orient = _orientation(im, self.source)
            if min_size is not None and im.format == "JPEG":
                tw, th = min_size
                if orient in (5, 6, 7, 8):
                    tw, th = th, tw
                _draft(im, (tw, th))
            w0 = im.size[0]
            rgb = _decode_rgb(im, self.source, for_analysis=False)
            rgb = _apply_orientation(rgb, orient)
        stored_w = self.height if orient in (5, 6, 7, 8) else self.width
        return rgb, w0 / stored_w


#: the former name of :class:`Frame`
LoadedImage = Frame


def _open(src: Any, name: str) -> Image.Image:
    try:
        return Image.open(src)
    except FileNotFoundError:
        raise DecodeError(name, "file not found") from None
    except IsADirectoryError:
        raise DecodeError(name, "is a directory, not an image") from None
    except PermissionError:
        raise DecodeError(name, "permission denied") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(name, f"decompression bomb rejected: {e}") from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(
            name, "not a recognised image (unsupported format such as HEIF, or not an image at all)"
        ) from None
    except (ValueError, SyntaxError, OSError, EOFError) as e:
        raise DecodeError(name, f"cannot open: {e}") from None


def _orientation(im: Image.Image, name: str) -> int:
    try:
        o = im.getexif().get(0x0112, 1)
    except Exception:  # corrupt EXIF must not lose the picture
        o = 1
    if o == 1 or not isinstance(o, int) or not 1 <= o <= 8:
        xmp = _xmp_orientation(im)
        o = xmp if xmp else (o if isinstance(o, int) and 1 <= o <= 8 else 1)
    return o


def _xmp_orientation(im: Image.Image) -> int | None:
    raw = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
    if not raw:
        return None
    text = raw.decode("utf-8", "ignore") if isinstance(raw, (bytes, bytearray)) else str(raw)
    import re

    m = re.search(r'tiff:Orientation(?:="|>)\s*([1-8])', text)
    return int(m.group(1)) if m else None


_TRANSPOSE = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_270],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}


def _apply_orientation(im: Image.Image, orient: int) -> Image.Image:
    for t in _TRANSPOSE.get(orient, []):
        im = im.transpose(t)
    return im


def _draft(im: Image.Image, size: tuple[int, int]) -> None:
    """DCT-scale a JPEG on load to the smallest scale still ≥ ``size`` (stored orientation)."""
    mode = im.mode if im.mode in ("RGB", "L") else None
    try:
        im.draft(mode, size)
    except Exception:  # draft is an optimisation only
        pass


def _convert_icc(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "L", "CMYK"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").lower()
        if "srgb" in desc:
            return im
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode=out_mode)
    except Exception:  # unusable profile: ignore it, keep the pixels
        return im


_HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _high_bit_to_8(im: Image.Image, for_analysis: bool) -> Image.Image:
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        a = (np.nan_to_num(a, nan=lo) - lo) / max(hi - lo, 1e-12) * 255.0
    else:  # 16/32-bit integer grey: full-range scaling to 8 bits
        a = a / 257.0 if a.max() > 255 or im.mode.startswith("I;16") else a
        if for_analysis and a.max() - a.min() < 32:  # nearly flat at 8 bits: stretch for analysis only
            lo, hi = a.min(), a.max()
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")


def _decode_rgb(im: Image.Image, name: str, for_analysis: bool) -> Image.Image:
    """Load the first frame and return it as RGB or RGBA (sRGB)."""
    try:
        im.seek(0)
        im.load()
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(name, f"decompression bomb rejected: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e)
        if "truncated" in msg.lower():
            raise DecodeError(name, f"truncated image data ({msg})") from None
        raise DecodeError(name, f"corrupt image data ({msg})") from None
    mode = im.mode
    has_trns = "transparency" in im.info
    if mode in _HIGH_BIT:
        trns = im.info.get("transparency") if isinstance(im.info.get("transparency"), int) else None
        grey = _high_bit_to_8(im, for_analysis)
        if trns is not None:
            alpha = np.where(np.asarray(im) == trns, 0, 255).astype(np.uint8)
            out = Image.merge("RGBA", (grey, grey, grey, Image.fromarray(alpha, "L")))
        else:
            out = grey.convert("RGB")
    elif mode == "1":
        out = im.convert("L").convert("RGBA" if has_trns else "RGB")
    elif mode in ("P", "PA", "LA", "La", "RGBa") or (mode in ("L", "RGB") and has_trns):
        out = im.convert("RGBA")
    elif mode == "RGBA":
        out = _convert_icc(im)
    elif mode in ("CMYK", "LAB", "YCbCr", "HSV", "RGBX", "L"):
        out = _convert_icc(im) if mode in ("CMYK", "L") else im
        out = out.convert("RGB")
    else:
        out = _convert_icc(im)
        if out.mode != "RGB":
            out = out.convert("RGB")  # (an RGB image is used as it is: convert would copy every pixel)
    if out.mode == "RGB" and mode in ("RGB",):
        out = _convert_icc(out)
    if out.mode == "RGBA" and out.getextrema()[3][0] == 255:
        out = out.convert("RGB")
    return out


def _composite_grey(im: Image.Image) -> Image.Image:
    if im.mode != "RGBA":
        return im
    bg = Image.new("RGBA", im.size, (128, 128, 128, 255))
    return Image.alpha_composite(bg, im).convert("RGB")


def _analysis_from(pil: Image.Image, analysis_size: int) -> np.ndarray:
    w, h = pil.size
    s = analysis_size / max(w, h)
    if s < 1:
        tw, th = max(1, round(w * s)), max(1, round(h * s))
        factor = min(w // tw, h // th)
        if factor >= 2:
            pil = _reduce(pil, factor)
        pil = pil.resize((tw, th), Image.Resampling.BILINEAR)  # whole: banding would move pixels by a level
    pil = _composite_grey(pil)
    return np.ascontiguousarray(np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB")))


def load_image(
    src: ImageInput,
    analysis_size: int = DEFAULT_ANALYSIS_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    output_need: Callable[[int, int], tuple[int, int]] | None = None,
) -> Frame:
    """Decode ``src`` (path, bytes, PIL image or ``[H, W, 3]`` uint8 array) into a :class:`Frame`.

    ``output_need(width, height) -> (w, h)``: the smallest upright full-image size the coming output crops will
    need. A JPEG is then DCT-scaled once to cover both that and the analysis size, so the output usually reuses
    this single decode instead of decoding again.

    Raises:
        DecodeError: missing, truncated or corrupt file.
        UnsupportedImageError: not an image Pillow can identify, or zero-size.
        ImageTooLargeError: more than ``max_pixels`` pixels (checked before decoding pixel data).
    """
    if isinstance(src, np.ndarray):
        return _from_array(src, analysis_size, max_pixels)
    if isinstance(src, Image.Image):
        name = "<PIL image>"
        _check_size(src.size, name, max_pixels)
        orient = _orientation(src, name)
        rgb = _apply_orientation(_decode_rgb(src.copy(), name, False), orient)
        return Frame(name, rgb.size[0], rgb.size[1], _analysis_from(rgb, analysis_size), None, 1,
                     rgb.mode == "RGBA", orient, _full=rgb)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, path, name = bytes(src), None, "<bytes>"
        if not data:
            raise DecodeError(name, "empty input")
        handle: Any = _io.BytesIO(data)
    else:
        path = Path(src)
        data, name, handle = None, str(path), path
        if path.is_file() and path.stat().st_size == 0:
            raise DecodeError(name, "empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the picture itself is fine
        im = _open(handle, name)
        with im:
            _check_size(im.size, name, max_pixels)
            n_frames = getattr(im, "n_frames", 1)
            orient = _orientation(im, name)
            w0, h0 = im.size
            if im.format == "JPEG":
                s = min(1.0, analysis_size / max(w0, h0))
                tw, th = max(1, int(w0 * s)), max(1, int(h0 * s))
                if output_need is not None:
                    up = (h0, w0) if orient in (5, 6, 7, 8) else (w0, h0)
                    nw, nh = output_need(*up)
                    if orient in (5, 6, 7, 8):
                        nw, nh = nh, nw
                    tw, th = max(tw, min(w0, nw)), max(th, min(h0, nh))
                _draft(im, (tw, th))
            fmt = im.format
            decoded_w = im.size[0]
            reusable = im.mode not in _HIGH_BIT  # analysis-only contrast stretch must not reach the output
            rgb = _apply_orientation(_decode_rgb(im, name, True), orient)
    up_w, up_h = (h0, w0) if orient in (5, 6, 7, 8) else (w0, h0)
    if up_w <= 0 or up_h <= 0:
        raise UnsupportedImageError(name, f"zero-size image ({up_w}×{up_h})")
    # keep the decoded (possibly DCT-reduced) picture: the output crop reuses it when it is large enough
    return Frame(name, up_w, up_h, _analysis_from(rgb, analysis_size), fmt, n_frames, rgb.mode == "RGBA", orient,
                 _data=data, _path=path, _decoded=(rgb, decoded_w / w0) if reusable else None)


def probe_image(path: str | os.PathLike) -> Frame:
    """Read only the header of the image file ``path`` → a :class:`Frame` whose ``width`` / ``height`` (upright)
    and ``orientation`` are set and whose ``pixels`` are empty (``[0, 0, 3]``): enough for :meth:`Frame.from_stored`
    (e.g. to normalise dataset annotations) without decoding the picture.

    Raises:
        DecodeError: missing or corrupt file. UnsupportedImageError: not an image, or zero-size.
    """
    name = str(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = _open(Path(path), name)
        with im:
            orient = _orientation(im, name)
            w0, h0 = im.size
    up_w, up_h = (h0, w0) if orient in (5, 6, 7, 8) else (w0, h0)
    if up_w <= 0 or up_h <= 0:
        raise UnsupportedImageError(name, f"zero-size image ({up_w}×{up_h})")
    return Frame(name, up_w, up_h, np.zeros((0, 0, 3), np.uint8), orientation=orient, _path=Path(path))


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise UnsupportedImageError(name, f"zero-size image ({w}×{h})")
    if w * h > max_pixels:
        raise ImageTooLargeError(name, f"{w}×{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,}")


#: the name the pipeline uses: ``load_frame(src, analysis_size)`` → :class:`Frame`
load_frame = load_image


def _from_array(a: np.ndarray, analysis_size: int, max_pixels: int) -> Frame:
    name = "<array>"
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise UnsupportedImageError(name, f"expected an HxWx3 (or HxWx4) array, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise UnsupportedImageError(name, f"expected uint8 pixels, got {a.dtype}")
    _check_size((a.shape[1], a.shape[0]), name, max_pixels)
    pil = Image.fromarray(np.ascontiguousarray(a), "RGBA" if a.shape[2] == 4 else "RGB")
    return Frame(name, a.shape[1], a.shape[0], _analysis_from(pil, analysis_size), None, 1,
                       a.shape[2] == 4, _full=pil)


def crop_image(img: Frame, box: np.ndarray | tuple[float, ...], size: tuple[int, int] | None = None
               ) -> Image.Image:
    """Cut ``box`` (xyxy original pixels) from the full-resolution image; resize to ``size`` ``(w, h)`` exactly.

    With ``size`` the JPEG is DCT-scaled on load only as far as the crop stays at least ``size`` large.
    The box is rounded to whole pixels and clipped to the image.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    min_size = None
    if size is not None:
        bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        min_size = (int(np.ceil(size[0] * img.width / bw)), int(np.ceil(size[1] * img.height / bh)))
    full, f = img.full(min_size)
    fw, fh = full.size
    px = (max(0, round(x1 * f)), max(0, round(y1 * f)), min(fw, round(x2 * f)), min(fh, round(y2 * f)))
    if px[2] <= px[0] or px[3] <= px[1]:
        raise ValueError(f"{img.source}: empty crop box {tuple(box)}")
    if size is None or (px[2] - px[0], px[3] - px[1]) == tuple(size):
        return full.crop(px)
    tw, th = int(size[0]), int(size[1])
    if full.mode in ("RGB", "L") and tw <= px[2] - px[0] < 2 * tw and th <= px[3] - px[1] < 2 * th:
        return _shrink_linear(full, px, (tw, th))
    # bicubic with a reducing gap of 2: Pillow's own thumbnail choice, ~30 % faster than Lanczos at equal look.
    # Resampling the box straight from the full image skips a copy of the crop (the filter then also sees the
    # pixels just outside the box instead of repeating the edge ones).
    return _resize(full, (tw, th), Image.Resampling.BICUBIC, reducing_gap=2.0, box=px)


def _shrink_linear(im: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image.Image:
    """``box`` (xyxy integer pixels of ``im``, RGB or L) shrunk by less than 2× per side to ``size`` ``(w, h)``
    with OpenCV's two-tap bilinear filter (half-pixel centres, as Pillow).

    Used for the output whenever shrink-on-load left a factor below 2 (the usual case for JPEGs: the decode is
    DCT-scaled until one more halving would make the crop smaller than the output): ≈ 2 ms instead of ≈ 10 for
    Pillow's bicubic at 1000² → 512². On the seven latency photos the outputs are ≥ 41 dB PSNR from the bicubic
    ones and 1.4 / 1.7 dB (median, 1:1 / 16:9) further from a Lanczos resize of the full-resolution original
    (``docs/benchmarks.md``). Larger factors (no shrink-on-load: PNG, WebP …) keep Pillow's bicubic, whose
    support widens with the factor; a 2-tap filter would alias there."""
    import cv2

    a = np.asarray(im.crop(box))
    return Image.fromarray(cv2.resize(a, size, interpolation=cv2.INTER_LINEAR))


#: a resize or reduce reading at least this many pixels runs as two horizontal bands on two threads
PARALLEL_MIN_PIXELS = 250_000


def _in_two_bands(mode: str, size: tuple[int, int], band: Callable[[int, int], Image.Image]) -> Image.Image | None:
    """The ``size`` ``(w, h)`` image whose output rows ``[y0, y1)`` ``band(y0, y1)`` computes, built from two
    bands on two threads (Pillow releases the GIL while resampling). ``None`` when this process may use only
    one CPU or the image has a single row: the caller then runs the operation whole."""
    h = size[1]
    mid = h // 2
    if cpus() < 2 or mid == 0:
        return None
    top, bottom = in_parallel([lambda: band(0, mid), lambda: band(mid, h)])
    out = Image.new(mode, size)
    out.paste(top, (0, 0))
    out.paste(bottom, (0, mid))
    return out


def _resize(im: Image.Image, size: tuple[int, int], resample: Image.Resampling, reducing_gap: float | None = None,
            box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """``im.resize(size, resample, box, reducing_gap)`` (``box`` xyxy pixels of ``im``, default all of it), in two
    bands on two threads when the box is large.

    Each band resamples its own part of the box with the same filter on the same sampling grid (the support reaches
    across the band edge as in the whole resize); only the rounding between Pillow's two 8-bit passes can differ
    (it may run them in the other order for a band): > 50 dB PSNR against the whole resize on photos. Not used for
    the analysis image, whose pixels must not move."""
    x1, y1, x2, y2 = box if box is not None else (0, 0, *im.size)
    w, h = x2 - x1, y2 - y1
    tw, th = size
    # Pillow's reducing_gap first box-reduces by int(scale / gap) when that is ≥ 2: keep that case whole
    reduces = reducing_gap is not None and (w / tw / reducing_gap >= 2 or h / th / reducing_gap >= 2)
    if not reduces and w * h >= PARALLEL_MIN_PIXELS and im.mode in ("RGB", "RGBA", "L"):
        sy = h / th

        def band(b0: int, b1: int) -> Image.Image:
            return im.resize((tw, b1 - b0), resample, box=(x1, y1 + b0 * sy, x2, y2 if b1 == th else y1 + b1 * sy))

        out = _in_two_bands(im.mode, size, band)
        if out is not None:
            return out
    return im.resize(size, resample, box=(x1, y1, x2, y2), reducing_gap=reducing_gap)


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """``im.reduce(factor)`` (mean of each ``factor × factor`` block), in two bands on two threads when large;
    bands split on block rows, so the pixels are exactly the same."""
    w, h = im.size
    size = (-(-w // factor), -(-h // factor))
    if w * h >= PARALLEL_MIN_PIXELS and im.mode in ("RGB", "RGBA", "L"):
        out = _in_two_bands(im.mode, size, lambda y0, y1: im.reduce(factor, (0, y0 * factor, w, min(h, y1 * factor))))
        if out is not None:
            return out
    return im.reduce(factor)


_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
            ".bmp": "BMP", ".gif": "GIF"}


#: Pillow format name per output format name, for :func:`encode_image`
FORMAT_NAMES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF",
                "bmp": "BMP", "gif": "GIF"}
#: MIME type per Pillow format
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
              "BMP": "image/bmp", "GIF": "image/gif"}


def encode_image(im: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """The one image encoder of every surface (files, the service): ``im`` as ``fmt`` (``"jpg"``, ``"png"``,
    ``"webp"`` … or a Pillow name) → bytes. JPEG/BMP outputs of RGBA images are composited onto white."""
    name = FORMAT_NAMES.get(fmt.lower().lstrip("."), fmt.upper())
    if name not in MIME_TYPES:
        raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(sorted(FORMAT_NAMES))}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    if im.mode == "RGBA" and name in ("JPEG", "BMP"):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im).convert("RGB")
    buf = _io.BytesIO()
    kw: dict[str, Any] = {"quality": int(quality)} if name in ("JPEG", "WEBP") else {}
    im.save(buf, format=name, **kw)
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes, check: Callable[[bytes], None] | None = None) -> Path:
    """Write ``data`` to ``path`` so that it cannot lie: a temp file in the target folder, every byte written
    (a short write or a full disk is an ``OSError`` naming the file), flushed and fsynced, its size checked,
    read back and ``check``-ed, then renamed over the target and the folder fsynced. On any failure the temp file
    is removed and an existing good file at ``path`` is untouched. The file follows the process umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(f"{path}: short write ({len(data) - len(view)} of {len(data)} bytes)")
                view = view[n:]
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != len(data):
            raise OSError(f"{path}: wrote {size} of {len(data)} bytes")
        if check is not None:
            check(Path(tmp).read_bytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the data itself is synced
    return path


def _check_decodes(name: str) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        try:
            with Image.open(_io.BytesIO(data)) as im:
                im.verify()
        except Exception as e:
            raise OSError(f"{name}: the written image does not decode back ({e})") from None

    return check


def save_image(im: Image.Image, path: str | os.PathLike, quality: int = 90) -> Path:
    """Encode ``im`` to ``path`` (format from the suffix) with :func:`encode_image` and write it with
    :func:`write_atomic`, checking that the written file decodes: a failed or short write is an ``OSError``
    naming the file and never replaces a good one."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown output format {path.suffix!r}; use one of {', '.join(sorted(_FORMATS))}")
    return write_atomic(path, encode_image(im, fmt, quality), _check_decodes(str(path)))
