"""Decoding: EXIF rotation, odd modes, bad files, shrink-on-load, atomic writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.errors import DecodeError, ImageTooLargeError, OpenCropError, UnsupportedImageError
from opencrop.io import crop_image, load_image, probe_image, save_image


def _manifest(shared_data: Path) -> list[dict]:
    return json.loads((shared_data / "odd-images" / "manifest.json").read_text())["files"]


def test_odd_images_follow_the_manifest(shared_data: Path) -> None:
    """Every file: decode → upright size as Pillow reports it; reject → one typed, catchable error."""
    for f in _manifest(shared_data):
        path = shared_data / "odd-images" / f["file"]
        pil = f["pillow"]
        if f["action"] in ("decode", "rotate"):
            img = load_image(path)
            want = pil.get("upright_size") or pil["size"]
            assert [img.width, img.height] == list(want), f["file"]
            assert img.pixels.dtype == np.uint8 and img.pixels.shape[2] == 3
            assert img.n_frames == pil.get("n_frames", 1), f["file"]
        elif f["action"] == "reject":
            with pytest.raises(OpenCropError) as e:
                load_image(path)
            assert f["file"] in str(e.value)
        else:  # decode_or_reject
            try:
                load_image(path)
            except UnsupportedImageError as e:
                assert "unsupported" in str(e)


def test_exif_orientations_become_upright(shared_data: Path) -> None:
    d = shared_data / "odd-images"
    ref = load_image(d / "orientation__Landscape_1.jpg").pixels.astype(float)
    for k in range(0, 9):
        px = load_image(d / f"orientation__Landscape_{k}.jpg").pixels.astype(float)
        assert px.shape == ref.shape
        assert np.abs(px - ref).mean() < 3, k  # a wrong transform differs by 35–85 levels


def test_probe_image_reads_the_header_as_load_image_does(shared_data: Path, tmp_path: Path) -> None:
    d = shared_data / "odd-images"
    box = np.array([[10.0, 20.0, 200.0, 150.0]])
    for k in range(1, 9):
        path = d / f"orientation__Landscape_{k}.jpg"
        full, head = load_image(path), probe_image(path)
        assert (head.width, head.height, head.orientation) == (full.width, full.height, full.orientation), k
        assert head.pixels.shape == (0, 0, 3)
        np.testing.assert_array_equal(head.from_stored(box), full.from_stored(box))
    with pytest.raises(DecodeError, match="not found"):
        probe_image(tmp_path / "missing.jpg")


def test_cmyk_matches_rgb_twin(shared_data: Path) -> None:
    d = shared_data / "odd-images"
    rgb = load_image(d / "icc__pil_sample_rgb.jpg").pixels.astype(float)
    for name in ("cmyk__pil_sample_cmyk.jpg", "cmyk__tiff_strip_cmyk_jpeg.tif"):
        assert np.abs(load_image(d / name).pixels.astype(float) - rgb).mean() < 8


def test_truncated_and_bomb_errors_are_typed(shared_data: Path) -> None:
    d = shared_data / "odd-images"
    with pytest.raises(DecodeError, match="truncated"):
        load_image(d / "corrupt__truncated_jpeg.jpg")
    with pytest.raises(ImageTooLargeError, match=r"exceeds (the )?limit"):
        load_image(d / "bomb__decompression_bomb.gif")


def test_sixteen_bit_is_scaled_not_saturated(shared_data: Path) -> None:
    img = load_image(shared_data / "odd-images" / "highbit__16bit.cropped.tif")
    assert img.pixels.std() > 5  # a naive convert('L') makes every pixel 255


def test_missing_empty_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.png").write_bytes(b"hello")
    with pytest.raises(UnsupportedImageError, match=r"text\.png"):
        load_image(tmp_path / "text.png")


def test_pixel_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(p)
    with pytest.raises(ImageTooLargeError):
        load_image(p, max_pixels=300 * 200 - 1)
    assert load_image(p, max_pixels=300 * 200).width == 300


def test_shrink_on_load_uses_jpeg_draft(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (2400, 3200, 3), dtype=np.uint8)).save(p, quality=80)
    img = load_image(p, analysis_size=512)
    assert (img.width, img.height) == (3200, 2400)
    assert max(img.pixels.shape[:2]) == 512
    # the output is cut from the full-resolution image
    out = crop_image(img, (100, 200, 1700, 1100))
    assert out.size == (1600, 900)
    # ... or from a DCT-reduced one that is still at least the requested size
    small = crop_image(img, (0, 0, 3200, 1800), size=(640, 360))
    assert small.size == (640, 360)


def test_inputs_bytes_pil_array_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    for src in (buf.getvalue(), Image.fromarray(a), a):
        img = load_image(src)
        assert (img.width, img.height) == (160, 120)
        np.testing.assert_array_equal(img.pixels, a)
    with pytest.raises(UnsupportedImageError):
        load_image(np.zeros((10, 10, 3), np.float32))


def test_save_is_atomic(tmp_path: Path) -> None:
    good = tmp_path / "out.jpg"
    save_image(Image.new("RGB", (8, 8), "red"), good)
    before = good.read_bytes()

    bad = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError):
        save_image(bad, tmp_path / "out.xyz")
    bad.save = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        save_image(bad, good)
    assert good.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]


def _photo(w: int, h: int) -> Image.Image:
    skd = pytest.importorskip("skimage.data")
    return Image.fromarray(skd.astronaut()).resize((w, h), Image.Resampling.LANCZOS)


@pytest.mark.parametrize(("src", "dst"), [((1000, 1000), (512, 512)), ((1500, 1000), (640, 360)),
                                          ((1000, 1500), (512, 512)), ((751, 500), (640, 360))])
def test_banded_resize_matches_whole(src: tuple[int, int], dst: tuple[int, int]) -> None:
    """The two-thread output resize is Pillow's bicubic resize up to the rounding of its two passes."""
    from opencrop.io import _resize

    im = _photo(*src)
    ref = np.asarray(im.resize(dst, Image.Resampling.BICUBIC, reducing_gap=2.0)).astype(float)
    out = np.asarray(_resize(im, dst, Image.Resampling.BICUBIC, reducing_gap=2.0)).astype(float)
    assert out.shape == ref.shape
    assert 10 * np.log10(255**2 / max(np.mean((out - ref) ** 2), 1e-12)) > 50


def test_banded_reduce_is_exact_and_single_cpu_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from opencrop import io as oio

    for size in ((1501, 999), (1225, 1225)):
        im = _photo(*size)
        for f in (2, 3):
            np.testing.assert_array_equal(np.asarray(oio._reduce(im, f)), np.asarray(im.reduce(f)))
    im = _photo(1000, 1000)
    monkeypatch.setattr(oio, "cpus", lambda: 1)
    assert oio._in_two_bands("RGB", (10, 10), lambda y0, y1: Image.new("RGB", (10, y1 - y0))) is None
    np.testing.assert_array_equal(np.asarray(oio._resize(im, (512, 512), Image.Resampling.BICUBIC)),
                                  np.asarray(im.resize((512, 512), Image.Resampling.BICUBIC)))


def test_output_resize_of_a_box_matches_crop_then_resize() -> None:
    """crop_image resamples the box straight from the full image: like crop-then-resize but for the filter seeing
    real pixels past the box edges instead of repeated edge ones."""
    from opencrop.io import _resize

    im = _photo(1500, 1000)
    box = (300, 0, 1300, 1000)
    for size, gap in (((512, 512), 2.0), ((200, 200), 2.0), ((700, 700), None)):  # banded, reduced first, upscaled
        ref = np.asarray(im.crop(box).resize(size, Image.Resampling.BICUBIC, reducing_gap=gap)).astype(float)
        out = np.asarray(_resize(im, size, Image.Resampling.BICUBIC, reducing_gap=gap, box=box)).astype(float)
        assert out.shape == ref.shape
        assert 10 * np.log10(255**2 / max(np.mean((out - ref) ** 2), 1e-12)) > 45
        inner = (slice(8, -8), slice(8, -8))
        assert np.abs(out[inner] - ref[inner]).max() <= 2


def test_output_shrink_below_2x_is_bilinear_close_to_bicubic_and_exact_size(tmp_path: Path) -> None:
    """A JPEG output whose shrink-on-load left a factor below 2 is resized with OpenCV's two-tap bilinear: the exact
    size, and within 40 dB of Pillow's bicubic; larger factors and RGBA images keep Pillow's bicubic."""
    from opencrop import io as oio

    p = tmp_path / "photo.jpg"
    _photo(1500, 1000).save(p, quality=92)
    img = load_image(p, output_need=lambda w, h: (1000, 1000))
    box = (250, 0, 1250, 1000)
    out = crop_image(img, box, size=(512, 512))
    full, f = img.full((1000, 1000))
    assert f == 1.0 and out.size == (512, 512) and out.mode == "RGB"
    ref = np.asarray(full.resize((512, 512), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)).astype(float)
    assert 10 * np.log10(255**2 / np.mean((np.asarray(out, float) - ref) ** 2)) > 40
    calls: list[tuple[int, int]] = []
    real = oio._shrink_linear
    try:
        oio._shrink_linear = lambda im, b, s: calls.append(s) or real(im, b, s)  # type: ignore[assignment]
        assert crop_image(img, box, size=(300, 300)).size == (300, 300)  # factor 3.3: Pillow
        rgba = load_image(np.dstack([np.asarray(full), np.full(full.size[::-1], 200, np.uint8)]))
        assert crop_image(rgba, box, size=(512, 512)).mode == "RGBA"  # premultiplied by Pillow
        assert calls == []
        crop_image(img, box, size=(640, 640))
        assert calls == [(640, 640)]
    finally:
        oio._shrink_linear = real  # type: ignore[assignment]
