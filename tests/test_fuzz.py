"""A bounded fuzz test over mutated image files (issue 14, item 2): every mutant of every seed file either crops to
valid boxes or raises a typed :class:`~opencrop.errors.OpenCropError` — never an untyped exception, a hang or a box
outside the image. Deterministic (fixed seed), so a failure names a case that reproduces."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from opencrop.api import Cropper
from opencrop.errors import OpenCropError

REPO = Path(__file__).resolve().parents[1]
#: mutants per seed file (bundled seeds); the odd-image seeds from ../shared get fewer each
PER_SEED = 200
PER_ODD_SEED = 10


def _bundled_seeds() -> dict[str, bytes]:
    """Small valid files in every format the decoder front end handles, made from the bundled photo."""
    with Image.open(REPO / "examples" / "astronaut.jpg") as im:
        small = im.convert("RGB").resize((96, 64))
    seeds = {"astronaut.jpg": (REPO / "examples" / "astronaut.jpg").read_bytes()}
    for fmt, kw in (("PNG", {}), ("WEBP", {"quality": 80}), ("GIF", {}), ("TIFF", {}), ("BMP", {}),
                    ("JPEG", {"progressive": True, "quality": 70})):
        buf = io.BytesIO()
        (small.convert("P") if fmt == "GIF" else small).save(buf, format=fmt, **kw)
        seeds[f"small.{fmt.lower()}"] = buf.getvalue()
    rgba = small.convert("RGBA")
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    seeds["alpha.png"] = buf.getvalue()
    return seeds


def _mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of ``data``: bit flips, a header overwrite, truncation, insertion, deletion, a copy."""
    b = bytearray(data)
    n = len(b)
    kind = int(rng.integers(6))
    if kind == 0:  # flip a few bits anywhere
        for i in rng.integers(0, n, int(rng.integers(1, 16))):
            b[i] ^= 1 << int(rng.integers(8))
        return "flip", bytes(b)
    if kind == 1:  # overwrite bytes near the start (headers: sizes, chunk lengths, markers)
        i = int(rng.integers(0, min(n, 64)))
        b[i : i + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        return "header", bytes(b)
    if kind == 2:
        return "truncate", bytes(b[: int(rng.integers(0, n))])
    if kind == 3:
        i = int(rng.integers(0, n))
        return "insert", bytes(b[:i] + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
                               + b[i:])
    if kind == 4:
        i = int(rng.integers(0, n))
        return "delete", bytes(b[:i] + b[i + int(rng.integers(1, 256)) :])
    i, j = sorted(int(v) for v in rng.integers(0, n, 2))
    return "repeat", bytes(b[:j] + b[i:j] + b[j:])  # a repeated segment (duplicated chunks / markers)


def _odd_seeds(root: Path | None) -> dict[str, bytes]:
    if root is None or not (root / "data" / "odd-images").is_dir():
        return {}
    out = {}
    for p in sorted((root / "data" / "odd-images").iterdir()):
        if p.suffix.lower() not in (".md", ".json") and p.stat().st_size <= 400_000:
            out[p.name] = p.read_bytes()
    return out


def test_mutated_files_crop_or_fail_with_a_typed_error(shared_or_none: Path | None) -> None:
    seeds = _bundled_seeds()
    odd = _odd_seeds(shared_or_none)  # ../shared's odd images too, when present
    # bounded work: a mutant may declare a huge canvas; 4 MP keeps one case within a second
    cropper = Cropper(cues=False, max_pixels=4_000_000)
    rng = np.random.default_rng(14)
    cases = [(name, data, PER_SEED) for name, data in seeds.items()]
    cases += [(name, data, PER_ODD_SEED) for name, data in odd.items()]
    counts = {"ok": 0, "typed error": 0}
    failures: list[str] = []
    slowest = 0.0
    for name, data, k in cases:
        for i in range(k):
            kind, mutant = _mutate(data, rng)
            t0 = time.perf_counter()
            try:
                res = cropper.run(mutant, ratios=["16:9", "1:1", "1000:1"], size=None)
            except OpenCropError:
                counts["typed error"] += 1
            except Exception as e:  # exactly what this test looks for
                failures.append(f"{name} mutant {i} ({kind}): {type(e).__name__}: {e}")
            else:
                f = res.analysis.frame
                for c in res.crops:
                    x1, y1, x2, y2 = c.box
                    if not (0 <= x1 < x2 <= f.width and 0 <= y1 < y2 <= f.height):
                        failures.append(f"{name} mutant {i} ({kind}): box {c.box} outside {f.width}x{f.height}")
                counts["ok"] += 1
            slowest = max(slowest, time.perf_counter() - t0)
    total = sum(counts.values()) + len(failures)
    print(f"\nfuzz: {total} mutants of {len(cases)} seed files: {counts['ok']} cropped, {counts['typed error']} typed "
          f"errors, {len(failures)} untyped; slowest case {slowest:.2f} s")
    assert not failures, "\n".join(failures[:20])
    assert counts["ok"] > 0 and counts["typed error"] > 0  # the mutations exercise both outcomes
    assert slowest < 10.0
