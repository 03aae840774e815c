"""Where the default path's time goes: each piece of ``Cropper.crop`` timed alone on the photos of
``benchmarks/latency.py`` (process CPU ms, all threads; wall beside it), median of 7 after a warm-up, median over
photos. Pieces: decode + analysis image (``load_frame`` with the output hint), the same without the output hint
(the JPEG DCT-scaled to the analysis size only: what decoding for the cues first, to start them before the output's
decode, would cost), ``analyze()`` with the default cues,
faces / SSD (people + objects) / saliency alone, ``model.prepare``, scoring + refinement (``_best`` without an
output), the output resize (``crop_image``) and the JPEG encode.

    python benchmarks/latency_pieces.py [--ratio 1:1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cues_latency import _median_ms
from latency import TARGETS, _jpeg, photos


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratio", default="1:1", choices=sorted(TARGETS))
    args = ap.parse_args(argv)
    from opencrop import Cropper
    from opencrop.candidates import parse_ratio
    from opencrop.cues import analyze
    from opencrop.cues.faces import detect_faces
    from opencrop.cues.objects import detect_people_and_objects
    from opencrop.cues.saliency import saliency
    from opencrop.io import crop_image, load_frame

    def need(w: int, h: int) -> tuple[int, int]:  # as Cropper.analyze's output hint, for one ratio
        return int(np.ceil(size[0] * w / min(w, h * r))), int(np.ceil(size[1] * h / min(h, w / r)))

    ratio, size = args.ratio, TARGETS[args.ratio]
    r = parse_ratio(ratio)
    cr = Cropper()
    per: dict[str, list[tuple[float, float]]] = {}
    for data in photos().values():
        an = cr.analyze(data, output=([ratio], size))
        fr, px = an.frame, an.frame.pixels
        box = cr._best(an, ratio, r, None, 0).box
        pic = crop_image(fr, box, size)
        pieces = {
            "end to end": lambda: _jpeg(cr.crop(data, ratios=[ratio], size=size)[0].image),  # noqa: B023
            "decode + analysis image": lambda: load_frame(data, cr.analysis_size, output_need=need),  # noqa: B023
            "  decode at the analysis size only": lambda: load_frame(data, cr.analysis_size),  # noqa: B023
            "analyze() default cues": lambda: analyze(px, want=cr.cue_names),  # noqa: B023
            "  faces alone": lambda: detect_faces(px),  # noqa: B023
            "  SSD people + objects alone": lambda: detect_people_and_objects(px),  # noqa: B023
            "  saliency alone": lambda: saliency(px),  # noqa: B023
            "prepare": lambda: cr.model.prepare(fr, an.cues),  # noqa: B023
            "scoring + refinement": lambda: cr._best(an, ratio, r, None, 0),  # noqa: B023
            "output resize": lambda: crop_image(fr, box, size),  # noqa: B023
            "JPEG encode": lambda: _jpeg(pic),  # noqa: B023
        }
        for k, fn in pieces.items():
            per.setdefault(k, []).append(_median_ms(fn, 7)[::-1])  # (cpu, wall)
    print(f"| piece ({ratio}) | CPU ms | wall ms |\n|---|---:|---:|")
    for k, v in per.items():
        print(f"| {k} | {np.median([c for c, _ in v]):.1f} | {np.median([w for _, w in v]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
