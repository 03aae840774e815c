"""Output resize: OpenCV's two-tap bilinear (the output path below a 2× shrink) against Pillow's bicubic.

On the seven photos of ``benchmarks/latency.py`` (JPEG q92, ≈ 1.5 MP), for 1:1 → 512×512 and 16:9 → 640×360, the
largest centred window is cut the way :func:`opencrop.io.crop_image` does (decoded with shrink-on-load as far as
the window stays ≥ the output) and resized by (a) ``crop_image`` (OpenCV bilinear for factors below 2), (b) Pillow
bicubic with a reducing gap of 2 (the former output path, one thread). Reported per ratio: process CPU ms of the
resize alone (median of 9 after a warm-up, median over photos), PSNR of (a) against (b), and PSNR of each against
a float Lanczos resize of the window from the full-resolution decode (the best this pixel grid can be).

    python benchmarks/output_resize.py
"""

from __future__ import annotations

import functools
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cues_latency import _median_ms
from latency import TARGETS, photos


def _psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def _cpu_ms(fn, reps: int = 9) -> float:
    return _median_ms(fn, reps)[1]


def main() -> int:
    import io

    from opencrop.io import crop_image, load_frame

    print("| ratio | photo | decoded | window | new ms | bicubic ms | new vs bicubic dB | new vs ideal dB "
          "| bicubic vs ideal dB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    agg: dict[str, list[tuple[float, ...]]] = {r: [] for r in TARGETS}
    for ratio, (ow, oh) in TARGETS.items():
        r = ow / oh
        for name, data in photos().items():
            fr = load_frame(data)
            w, h = fr.width, fr.height
            cw, ch = (h * r, h) if w / h > r else (w, w / r)
            box = (round((w - cw) / 2), round((h - ch) / 2), round((w + cw) / 2), round((h + ch) / 2))
            bw, bh = box[2] - box[0], box[3] - box[1]
            full, f = fr.full((int(np.ceil(ow * w / bw)), int(np.ceil(oh * h / bh))))
            px = tuple(round(v * f) for v in box)
            new = crop_image(fr, box, (ow, oh))
            bic = full.resize((ow, oh), Image.Resampling.BICUBIC, box=px, reducing_gap=2.0)
            hi = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
            ideal = np.stack([np.asarray(Image.fromarray(hi[..., c], "F").resize((ow, oh), Image.Resampling.LANCZOS,
                                                                                  box=box)) for c in range(3)], -1)
            fr._decoded = (full, f)  # the decode is reused, as in the pipeline: time the resize alone
            row = (_cpu_ms(functools.partial(crop_image, fr, box, (ow, oh))),
                   _cpu_ms(functools.partial(full.resize, (ow, oh), Image.Resampling.BICUBIC, box=px,
                                             reducing_gap=2.0)),
                   _psnr(new, bic), _psnr(new, ideal), _psnr(bic, ideal))
            agg[ratio].append(row)
            print(f"| {ratio} | {name} | {full.size[0]}×{full.size[1]} | {px[2] - px[0]}×{px[3] - px[1]} | "
                  + " | ".join(f"{v:.1f}" for v in row) + " |")
    for ratio, rows in agg.items():
        med = [statistics.median(v[i] for v in rows) for i in range(5)]
        print(f"{ratio}: median new {med[0]:.1f} ms vs bicubic {med[1]:.1f} ms; new vs bicubic min "
              f"{min(v[2] for v in rows):.1f} dB (median {med[2]:.1f}); vs ideal median new {med[3]:.1f} dB, "
              f"bicubic {med[4]:.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
