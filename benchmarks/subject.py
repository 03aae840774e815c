"""Subject benchmark: does each cropper keep the photo's main subject and its must-keep parts?

Real photos that ship inside installed packages (nothing is downloaded and no image is committed): scikit-image
``skimage.data`` (the files in its wheel), scikit-learn ``load_sample_images``, matplotlib ``sample_data`` and the
OpenCV sample pictures of Debian's ``opencv-doc`` package (``apt-get install opencv-doc``). A photo whose package
is missing is reported as skipped. Each photo has hand-marked boxes in ``benchmarks/subject_marks.json``
(xyxy pixels of the original image): ``subject`` (the main subject) and ``keep`` (faces, eyes, heads: parts that
must be whole).

For every photo, ratio (1:1, 4:5, 16:9, 9:16, 1.91:1) and method the crop is scored by

* ``fit``: the subject area inside the crop divided by the most subject area any window of that ratio inside the
  image can hold (1.0 = as much of the subject as fits); and
* ``whole``: every must-keep part is inside the crop (1 px slack), or, for a part larger than any window of that
  ratio, as much of it as fits (≥ 0.98 of the best window's share).

Methods: opencrop (the default cropper), libvips ``thumbnail crop=attention`` / ``entropy`` (pyvips), smartcrop.py
and the centre crop. Targets (issue 13): ≥ 95 % of crops with ``fit ≥ 0.9`` and ``whole``; no photo worse than
libvips attention. Contact sheets (one PNG per photo, every method side by side) go to ``--sheets``.

    python benchmarks/subject.py [--sheets /tmp/subject-sheets] [--methods opencrop vips-attention ...]
        [--out docs/benchmarks.md] [--photos chelsea rocket]
    python benchmarks/subject.py --timing 3    # opencrop's process CPU per photo instead (analysis; crops)

``--timing`` uses only the public API, so it also times another checkout: ``PYTHONPATH=<other>/src``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

RATIOS = ("1:1", "4:5", "16:9", "9:16", "1.91:1")
MARKS = Path(__file__).resolve().with_name("subject_marks.json")
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        a = getattr(data, name)()
        return a[0] if name == "stereo_motorcycle" else a

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as f:
            return np.asarray(Image.open(f).convert("RGB"))

    return load


def _opencv_doc(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        path = OPENCV_DATA / name
        if not path.exists():
            raise FileNotFoundError(f"{path} (apt-get install opencv-doc)")
        return np.asarray(Image.open(path).convert("RGB"))

    return load


#: photo name → (loader, source and licence as its package states it)
SOURCES: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    **{n: (_skimage(n), "scikit-image skimage.data (BSD-3 package; photo: see skimage/data/README.txt)")
       for n in ("astronaut", "camera", "chelsea", "coffee", "rocket", "stereo_motorcycle", "retina")},
    **{n: (_sklearn(n), "scikit-learn load_sample_image (BSD-3 package; china/flower CC-BY 2.0, Flickr)")
       for n in ("china.jpg", "flower.jpg")},
    "grace_hopper.jpg": (_matplotlib("grace_hopper.jpg"), "matplotlib sample_data (public domain, US Navy)"),
    **{n: (_opencv_doc(n), "Debian opencv-doc examples/data (OpenCV samples, Apache-2.0/BSD-3 package; "
           "individual photo provenance not stated: not redistributed)")
       for n in ("aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "building.jpg", "butterfly.jpg",
                 "chicky_512.png", "home.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg",
                 "squirrel_cls.jpg", "starry_night.jpg", "orange.jpg", "box_in_scene.png")},
}


@dataclass
class Photo:
    name: str
    pixels: np.ndarray  # [H, W, 3] uint8
    subject: np.ndarray  # [4] xyxy pixels
    keep: dict[str, np.ndarray]  # part name → [4] xyxy pixels
    source: str


def load_photos(only: list[str] | None = None) -> tuple[list[Photo], list[str]]:
    """The marked photos that load here, and a line for each that does not (missing package or file)."""
    marks = json.loads(MARKS.read_text())["photos"]
    photos, skipped = [], []
    for name, m in marks.items():
        if only and name not in only:
            continue
        load, source = SOURCES[name]
        try:
            a = np.asarray(load())
        except (ImportError, OSError) as e:
            skipped.append(f"{name}: {e}")
            continue
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        a = np.ascontiguousarray(a[..., :3].astype(np.uint8))
        if [a.shape[1], a.shape[0]] != m["size"]:
            raise ValueError(f"{name}: marks are for {m['size']}, the installed photo is {a.shape[1]}x{a.shape[0]}")
        photos.append(Photo(name, a, np.asarray(m["subject"], float),
                            {k: np.asarray(v, float) for k, v in m["keep"].items()}, source))
    return photos, skipped


# -- scoring --------------------------------------------------------------------------------------------------


def largest_windows(w: int, h: int, r: float) -> np.ndarray:
    """Every largest window of aspect ``r`` inside a ``w × h`` image, at each whole-pixel offset: ``[K, 4]`` xyxy."""
    ww, hh = (h * r, float(h)) if w / h > r else (float(w), w / r)
    xs = np.arange(0, max(w - ww, 0) + 1e-9, 1.0) if w - ww > 0.5 else np.zeros(1)
    ys = np.arange(0, max(h - hh, 0) + 1e-9, 1.0) if h - hh > 0.5 else np.zeros(1)
    x, y = (a.ravel() for a in np.meshgrid(xs, ys, indexing="ij"))
    return np.stack([x, y, x + ww, y + hh], axis=1)


def _kept(boxes: np.ndarray, part: np.ndarray, slack: float = 1.0) -> np.ndarray:
    """Fraction of ``part`` [4] inside each of ``boxes`` [N, 4] grown by ``slack`` px."""
    b = boxes + np.array([-slack, -slack, slack, slack])
    iw = np.clip(np.minimum(b[:, 2], part[2]) - np.maximum(b[:, 0], part[0]), 0, None)
    ih = np.clip(np.minimum(b[:, 3], part[3]) - np.maximum(b[:, 1], part[1]), 0, None)
    return iw * ih / max((part[2] - part[0]) * (part[3] - part[1]), 1e-9)


@dataclass
class Judge:
    """What the best windows of one ratio can do for one photo (the reference every crop is compared with)."""

    best_subject: float  # most subject area (fraction of the subject) any window holds
    best_part: np.ndarray  # [P] the most of each part any window holds
    best_count: int  # the most parts any one window holds as well as it can

    @classmethod
    def of(cls, p: Photo, r: float) -> Judge:
        h, w = p.pixels.shape[:2]
        win = largest_windows(w, h, r)
        best_s = float(_kept(win, p.subject, 0).max())
        parts = list(p.keep.values())
        if not parts:
            return cls(best_s, np.zeros(0), 0)
        k = np.stack([_kept(win, q) for q in parts], axis=1)  # [K, P]
        best_p = k.max(axis=0)
        count = int((k >= best_p - 0.02).sum(axis=1).max())
        return cls(best_s, best_p, count)

    def score(self, p: Photo, box: tuple[int, int, int, int]) -> tuple[float, bool]:
        """``(fit, whole)`` of one crop (see the module docstring)."""
        b = np.asarray(box, float)[None]
        fit = float(_kept(b, p.subject, 0)[0]) / max(self.best_subject, 1e-9)
        if not p.keep:
            return min(fit, 1.0), True
        k = np.array([_kept(b, q)[0] for q in p.keep.values()])
        return min(fit, 1.0), bool((k >= self.best_part - 0.02).sum() >= self.best_count)


# -- methods: each maps (photo, ratio) to an xyxy box of original pixels ----------------------------------------


def _max_window(w: int, h: int, r: float) -> tuple[int, int]:
    return (min(w, round(h * r)), h) if w / h > r else (w, min(h, round(w / r)))


def centre(p: Photo, r: float) -> tuple[int, int, int, int]:
    h, w = p.pixels.shape[:2]
    cw, ch = _max_window(w, h, r)
    x, y = (w - cw) // 2, (h - ch) // 2
    return x, y, x + cw, y + ch


def _vips(interesting: str) -> Callable[[Photo, float], tuple[int, int, int, int]]:
    def run(p: Photo, r: float) -> tuple[int, int, int, int]:
        import pyvips

        h, w = p.pixels.shape[:2]
        cw, ch = _max_window(w, h, r)
        im = pyvips.Image.new_from_memory(p.pixels.tobytes(), w, h, 3, "uchar")
        out = np.ndarray(buffer=im.smartcrop(cw, ch, interesting=interesting).write_to_memory(), dtype=np.uint8,
                         shape=(ch, cw, 3))
        # the crop spans the image along one axis; find where it starts along the other (exact pixel match)
        if cw < w:
            col = out[:, 0].astype(int)
            x = int(np.argmin([np.abs(p.pixels[:, i].astype(int) - col).sum() for i in range(w - cw + 1)]))
            return x, 0, x + cw, ch
        row = out[0].astype(int)
        y = int(np.argmin([np.abs(p.pixels[i].astype(int) - row).sum() for i in range(h - ch + 1)]))
        return 0, y, cw, y + ch

    return run


def smartcrop_py(p: Photo, r: float) -> tuple[int, int, int, int]:
    import smartcrop

    im = Image.fromarray(p.pixels)
    c = smartcrop.SmartCrop().crop(im, 100, max(1, round(100 / r)))["top_crop"]
    return c["x"], c["y"], c["x"] + c["width"], c["y"] + c["height"]


def opencrop_method() -> Callable[[Photo, float], tuple[int, int, int, int]]:
    from opencrop import Cropper

    cropper = Cropper()
    cache: dict[str, object] = {}

    def run(p: Photo, r: float) -> tuple[int, int, int, int]:
        if p.name not in cache:
            cache.clear()
            cache[p.name] = cropper.analyze(p.pixels)
        (c,) = cropper.crop(cache[p.name], ratios=[r])
        return tuple(int(v) for v in c.box)  # type: ignore[return-value]

    return run


METHODS: dict[str, Callable[[], Callable[[Photo, float], tuple[int, int, int, int]]]] = {
    "opencrop": opencrop_method,
    "vips-attention": lambda: _vips("attention"),
    "vips-entropy": lambda: _vips("entropy"),
    "smartcrop.py": lambda: smartcrop_py,
    "centre": lambda: centre,
}


def ratio_value(label: str) -> float:
    a, b = label.split(":")
    return float(a) / float(b)


# -- contact sheets ---------------------------------------------------------------------------------------------


def contact_sheet(p: Photo, results: dict[str, dict[str, tuple[tuple[int, int, int, int], float, bool]]],
                  path: Path, thumb: int = 220) -> None:
    """One PNG: a row per method, a column per ratio; each cell the photo with the crop (green = fit ≥ 0.9 and
    whole, red otherwise), the subject (white) and must-keep parts (yellow)."""
    h, w = p.pixels.shape[:2]
    s = thumb / max(w, h)
    tw, th = round(w * s), round(h * s)
    base = Image.fromarray(p.pixels).resize((tw, th), Image.Resampling.LANCZOS)
    methods = list(results)
    lab_w, head = 110, 18
    sheet = Image.new("RGB", (lab_w + len(RATIOS) * (tw + 6), head + len(methods) * (th + 20)), (30, 30, 30))
    d = ImageDraw.Draw(sheet)
    d.text((4, 3), p.name, fill=(255, 255, 255))
    for j, rl in enumerate(RATIOS):
        d.text((lab_w + j * (tw + 6) + 4, 3), rl, fill=(255, 255, 255))
    for i, m in enumerate(methods):
        y0 = head + i * (th + 20)
        d.text((4, y0 + th // 2), m, fill=(255, 255, 255))
        for j, rl in enumerate(RATIOS):
            box, fit, whole = results[m][rl]
            cell = base.copy()
            cd = ImageDraw.Draw(cell)
            cd.rectangle([float(v) * s for v in p.subject], outline=(255, 255, 255), width=1)
            for q in p.keep.values():
                cd.rectangle([float(v) * s for v in q], outline=(255, 230, 0), width=1)
            ok = fit >= 0.9 and whole
            cd.rectangle([float(v) * s for v in box], outline=(0, 220, 0) if ok else (255, 40, 40), width=3)
            x0 = lab_w + j * (tw + 6)
            sheet.paste(cell, (x0, y0))
            d.text((x0 + 2, y0 + th + 3), f"fit {fit:.2f}  {'whole' if whole else 'PART CUT'}",
                   fill=(150, 255, 150) if ok else (255, 120, 120))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


# -- main -------------------------------------------------------------------------------------------------------


def run(photos: list[Photo], methods: list[str], sheets: Path | None
        ) -> dict[str, dict[str, dict[str, tuple[tuple[int, int, int, int], float, bool]]]]:
    """``results[photo][method][ratio] = (box, fit, whole)``."""
    fns = {}
    for m in methods:
        try:
            fns[m] = METHODS[m]()
        except ImportError as e:
            print(f"skipping {m}: {e}", file=sys.stderr)
    out: dict[str, dict[str, dict[str, tuple[tuple[int, int, int, int], float, bool]]]] = {}
    for p in photos:
        judges = {rl: Judge.of(p, ratio_value(rl)) for rl in RATIOS}
        res: dict[str, dict[str, tuple[tuple[int, int, int, int], float, bool]]] = {}
        for m, fn in fns.items():
            res[m] = {}
            for rl in RATIOS:
                box = fn(p, ratio_value(rl))
                res[m][rl] = (box, *judges[rl].score(p, box))
        out[p.name] = res
        if sheets is not None:
            contact_sheet(p, res, sheets / f"{p.name.split('.')[0]}.png")
    return out


def summary(results: dict, methods: list[str]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Markdown table lines and per-method figures."""
    figs: dict[str, dict[str, float]] = {}
    for m in methods:
        cells = [(p, rl, *results[p][m][rl][1:]) for p in results if m in results[p] for rl in RATIOS]
        if not cells:
            continue
        n = len(cells)
        per_photo = {p: np.mean([f for q, _, f, _ in cells if q == p]) for p in results}
        worst = min(per_photo, key=lambda q: per_photo[q])
        figs[m] = {
            "n": n,
            "fit90": 100 * sum(f >= 0.9 for _, _, f, _ in cells) / n,
            "whole": 100 * sum(wh for *_, wh in cells) / n,
            "both": 100 * sum(f >= 0.9 and wh for _, _, f, wh in cells) / n,
            "mean_fit": float(np.mean([f for _, _, f, _ in cells])),
            "worst": worst,  # type: ignore[dict-item]
            "worst_fit": float(per_photo[worst]),
        }
    lines = ["| method | crops | fit ≥ 0.9 | every must-keep part whole | both | mean fit | worst photo (mean fit) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for m, f in figs.items():
        lines.append(f"| {m} | {f['n']} | {f['fit90']:.1f} % | {f['whole']:.1f} % | {f['both']:.1f} % | "
                     f"{f['mean_fit']:.3f} | {f['worst']} ({f['worst_fit']:.2f}) |")
    return lines, figs


def per_photo_lines(results: dict, methods: list[str], ref: str = "vips-attention") -> list[str]:
    """Per photo: each method's mean fit and number of crops failing (fit < 0.9 or a part cut)."""
    head = "| photo | " + " | ".join(methods) + " |"
    lines = [head, "|---|" + "---:|" * len(methods)]
    for p, res in results.items():
        cells = []
        for m in methods:
            if m not in res:
                cells.append("–")
                continue
            fits = [res[m][rl][1] for rl in RATIOS]
            bad = sum(not (res[m][rl][1] >= 0.9 and res[m][rl][2]) for rl in RATIOS)
            cells.append(f"{np.mean(fits):.2f} ({bad} bad)")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def failures(results: dict, method: str) -> list[str]:
    out = []
    for p, res in results.items():
        for rl in RATIOS:
            box, fit, whole = res[method][rl]
            if not (fit >= 0.9 and whole):
                out.append(f"{p} {rl}: fit {fit:.2f}{'' if whole else ', part cut'} box {list(box)}")
    return out


def timing(photos: list[Photo], reps: int) -> str:
    """Median over the photos of the best of ``reps`` runs of process CPU ms (all threads): ``Cropper.analyze``
    (decode, default cues, prepare) and the five ratios' crops of that analysis."""
    import time

    from opencrop import Cropper

    cropper = Cropper()
    ratios = [ratio_value(r) for r in RATIOS]
    cropper.crop(photos[0].pixels, ratios=ratios)  # warm-up: model files, runtimes
    ana = np.full((reps, len(photos)), np.inf)
    crp = np.full((reps, len(photos)), np.inf)
    for k in range(reps):
        for i, p in enumerate(photos):
            t = time.process_time()
            an = cropper.analyze(p.pixels)
            ana[k, i] = time.process_time() - t
            t = time.process_time()
            cropper.crop(an, ratios=ratios)
            crp[k, i] = time.process_time() - t
    a, c = ana.min(axis=0) * 1000, crp.min(axis=0) * 1000
    return (f"{len(photos)} photos, best of {reps}: analyze median {np.median(a):.1f} ms, five crops median "
            f"{np.median(c):.2f} ms (mean {c.mean():.2f}) process CPU per photo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--photos", nargs="*", help="only these photos (names as in subject_marks.json)")
    ap.add_argument("--sheets", type=Path, help="folder for one contact sheet PNG per photo")
    ap.add_argument("--out", type=Path, help="write the tables into this markdown file (docs/benchmarks.md)")
    ap.add_argument("--json", type=Path, help="write every box and score as JSON")
    ap.add_argument("--timing", type=int, metavar="REPS", help="time opencrop (REPS runs per photo) and exit")
    args = ap.parse_args(argv)
    photos, skipped = load_photos(args.photos)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    if args.timing:
        print(timing(photos, args.timing))
        return 0
    results = run(photos, args.methods, args.sheets)
    methods = [m for m in args.methods if any(m in r for r in results.values())]
    lines, _ = summary(results, methods)
    text = "\n".join(lines)
    print(text)
    print("\n".join(per_photo_lines(results, methods)))
    if "opencrop" in methods:
        print("\nopencrop crops below target:\n  " + "\n  ".join(failures(results, "opencrop")))
    if args.json:
        args.json.write_text(json.dumps({p: {m: {rl: {"box": list(v[0]), "fit": v[1], "whole": v[2]}
                                                 for rl, v in r.items()} for m, r in res.items()}
                                         for p, res in results.items()}, indent=1))
    if args.out:
        from latency import _write_section, machine  # same folder

        block = [
            "## Subject benchmark (does the crop keep the photo's subject?)", "",
            f"Measured {dt.date.today().isoformat()} on {machine()}.",
            f"Command: `python benchmarks/subject.py --out docs/benchmarks.md`. {len(photos)} photos × "
            f"{len(RATIOS)} ratios ({', '.join(RATIOS)}); marks in `benchmarks/subject_marks.json`."
            + (f" Skipped: {'; '.join(skipped)}." if skipped else ""), "",
            *lines, "", "Per photo: mean fit over the five ratios (crops below target).", "",
            *per_photo_lines(results, methods), "",
        ]
        _write_section(args.out, "subject", "\n".join(block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
