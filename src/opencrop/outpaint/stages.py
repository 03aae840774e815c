"""The pipeline stages (systems.md §7.1): caption → paint → filter → segment → select, over a folder of photos.

Layout of the output folder ``OUT`` (the published one, plus per-worker part files):

* ``captions/blip<ID>.txt`` — one caption per photo ``img<ID>.jpg`` (any ``<name>.jpg``: ID = name without "img");
* ``images/img<ID>_<X>_<Y>_<W>_<H>.jpg`` — ``variants`` outpaints per photo, the photo pasted at (X, Y, W, H)
  of the ``canvas²`` square (the GT crop);
* ``quality/part<i>of<n>.json`` — ``{file: P(bad)}``; ``bad.json`` — the files with ``P(bad) > 0.5``;
* ``segment/part<i>of<n>.json.gz`` — raw instances; merged into ``detect.json.gz`` (``{stem: [{"xywh", "score",
  "class", "mask_id"}]}``), ``mask.npz`` (``{mask_id: polygon [N, 2]}``) and ``subjects.json`` (``{ID:
  subject_xywh normalised to the photo}``: the most prominent instance of the photo itself, area × score);
* ``{train,val,test}.json`` — ``[{"id", "subject_xywh"}]`` by a stable hash of the ID (``select``).

Every stage skips items whose output exists (resumable), shows a progress line on stderr, and takes ``part=(i, n)``
to process the photos whose ID hashes to slice i of n, with their outpaints (parallel workers: ``--part 0/4`` …
``--part 3/4``; ``all --part i/n`` runs every stage on one fixed set of photos). Part files are merged by
whichever worker finishes (atomic writes), so the last one to finish leaves complete merged files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.data.gencrop import _OUTPAINT, parse_outpaint_name
from opencrop.errors import DataFormatError
from opencrop.io import write_atomic

__all__ = ["caption", "filter_bad", "list_photos", "paint", "run_all", "segment", "select"]

_PHOTO_EXT = (".jpg", ".jpeg", ".png")


class Progress:
    """A self-overwriting ``stage i/n`` line on stderr (one line every ~10 % when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.enabled, self.t0, self.shown = total, label, enabled, time.monotonic(), -1
        self.tty = sys.stderr.isatty()

    def step(self, done: int) -> None:
        if not self.enabled or self.total == 0:
            return
        tenth = done * 10 // self.total
        if not self.tty and tenth == self.shown and done < self.total:
            return
        self.shown = tenth
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        msg = f"{self.label} {done}/{self.total} ({rate:.1f}/s)"
        sys.stderr.write(("\r" + msg + ("\n" if done >= self.total else "")) if self.tty else msg + "\n")
        sys.stderr.flush()


def _slice(items: list, part: tuple[int, int] | None, key: Callable[[Any], str] = lambda it: it[0]) -> list:
    """The items whose photo ID (``key(item)``) falls in part ``(i, n)``: a stable hash of the ID modulo n, so a
    photo and all its outpaints belong to one worker in every stage, whatever files exist when it runs."""
    if part is None:
        return items
    i, n = part
    if not 0 <= i < n:
        raise ValueError(f"--part {i}/{n}: need 0 <= i < n")
    return [it for it in items if int(hashlib.sha256(key(it).encode()).hexdigest()[:8], 16) % n == i]


def _part_name(part: tuple[int, int] | None) -> str:
    i, n = part if part is not None else (0, 1)
    return f"part{i}of{n}"


def _read_image(path: Path) -> np.ndarray:
    from opencrop.train.datasets import read_image

    return read_image(path)


def list_photos(photos: str | Path) -> list[tuple[str, Path]]:
    """``[(ID, path)]`` of the photos in a folder, sorted by ID (``img<ID>.jpg`` → ID; other names: the stem)."""
    d = Path(photos)
    if not d.is_dir():
        raise DataFormatError(d, "not a folder of photos")
    out = []
    for p in sorted(d.iterdir()):
        if p.suffix.lower() in _PHOTO_EXT:
            sid = p.stem[3:] if p.stem.startswith("img") else p.stem
            if not re.fullmatch(r"[A-Za-z0-9-]+", sid):
                raise DataFormatError(p, "photo IDs must be letters, digits and '-' (the outpaint names use '_')")
            out.append((sid, p))
    if not out:
        raise DataFormatError(d, "no .jpg / .png photos")
    return out


def _batches(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# ---------------------------------------------------------------------------------------------- stages
def caption(photos: str | Path, out: str | Path, captioner: Callable[[list[np.ndarray]], list[str]],
            part: tuple[int, int] | None = None, batch_size: int = 8, progress: bool = True) -> int:
    """Write ``OUT/captions/blip<ID>.txt`` for every photo that has none → number written."""
    d = Path(out) / "captions"
    todo = [(sid, p) for sid, p in _slice(list_photos(photos), part) if not (d / f"blip{sid}.txt").is_file()]
    bar, done = Progress(len(todo), "caption", progress), 0
    for chunk in _batches(todo, batch_size):
        texts = captioner([_read_image(p) for _, p in chunk])
        for (sid, _), t in zip(chunk, texts, strict=True):
            write_atomic(d / f"blip{sid}.txt", (t.strip() + "\n").encode())
        done += len(chunk)
        bar.step(done)
    return done


def paint(photos: str | Path, out: str | Path, outpainter: Any, part: tuple[int, int] | None = None,
          variants: int = 5, canvas: int = 512, seed: int = 0, batch_size: int = 4, progress: bool = True) -> int:
    """Write ``variants`` outpaints per photo (minus those already there) → number written.

    The paste of variant k of photo ID is drawn from ``(seed, sha256(ID), k)``
    (:func:`~opencrop.outpaint.classical.paste_geometry`); the prompt is the photo's caption (empty if none).
    """
    from PIL import Image

    from opencrop.outpaint.classical import paste_geometry

    o = Path(out)
    img_dir = o / "images"
    have: dict[str, int] = {}
    if img_dir.is_dir():
        for f in img_dir.iterdir():
            if _OUTPAINT.match(f.name):
                sid = parse_outpaint_name(f.name)[0]
                have[sid] = have.get(sid, 0) + 1
    jobs = []
    for sid, p in _slice(list_photos(photos), part):
        for k in range(have.get(sid, 0), variants):
            jobs.append((sid, p, k))
    bar, done = Progress(len(jobs), "paint", progress), 0
    for chunk in _batches(jobs, batch_size):
        pasted, prompts, names, rngs = [], [], [], []
        for sid, p, k in chunk:
            rng = np.random.default_rng([seed, int(hashlib.sha256(sid.encode()).hexdigest()[:12], 16), k])
            photo = _read_image(p)
            x, y, w, h = paste_geometry(photo.shape[1], photo.shape[0], rng, canvas)
            pasted.append((np.asarray(Image.fromarray(photo).resize((w, h), Image.BICUBIC)), (x, y, w, h)))
            cap = o / "captions" / f"blip{sid}.txt"
            prompts.append(cap.read_text().strip() if cap.is_file() else "")
            names.append(f"img{sid}_{x}_{y}_{w}_{h}.jpg")
            rngs.append(rng)
        results = outpainter(pasted, prompts, canvas, rngs[0])
        for name, im in zip(names, results, strict=True):
            import io

            buf = io.BytesIO()
            Image.fromarray(im).save(buf, "JPEG", quality=95)
            write_atomic(img_dir / name, buf.getvalue())
        done += len(chunk)
        bar.step(done)
    return done


def _outpaints(out: Path) -> list[str]:
    d = out / "images"
    if not d.is_dir():
        raise DataFormatError(d, "no outpainted images yet (run `opencrop outpaint paint` first)")
    return sorted(f.name for f in d.iterdir() if _OUTPAINT.match(f.name))


def _merged_json(files: Iterable[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for f in files:
        with (gzip.open(f, "rt") if f.suffix == ".gz" else open(f)) as fh:
            merged.update(json.load(fh))
    return merged


def filter_bad(out: str | Path, classifier: Callable[[list[np.ndarray]], np.ndarray] | None,
               part: tuple[int, int] | None = None, threshold: float = 0.5, batch_size: int = 32,
               progress: bool = True) -> int:
    """Score every outpaint not scored yet (``quality/part*.json``) and rewrite ``bad.json`` (P(bad) >
    ``threshold``) from all parts → number scored. ``classifier=None`` keeps every image (an empty ``bad.json``,
    and a note on stderr)."""
    o = Path(out)
    if classifier is None:
        sys.stderr.write("filter: no bad-outpaint classifier (--quality); every outpaint is kept\n")
        if not (o / "bad.json").is_file():
            write_atomic(o / "bad.json", b"[]")
        return 0
    qdir = o / "quality"
    mine = qdir / f"{_part_name(part)}.json"
    scores = _merged_json(sorted(qdir.glob("part*.json"))) if qdir.is_dir() else {}
    own = _merged_json([mine]) if mine.is_file() else {}
    todo = [f for f in _slice(_outpaints(o), part, lambda f: parse_outpaint_name(f)[0]) if f not in scores]
    bar, done = Progress(len(todo), "filter", progress), 0
    for chunk in _batches(todo, batch_size):
        p = classifier([_read_image(o / "images" / f) for f in chunk])
        own.update({f: float(v) for f, v in zip(chunk, p, strict=True)})
        write_atomic(mine, json.dumps(own).encode())
        done += len(chunk)
        bar.step(done)
    scores = _merged_json(sorted(qdir.glob("part*.json"))) if qdir.is_dir() else {}
    write_atomic(o / "bad.json", json.dumps(sorted(f for f, v in scores.items() if v > threshold)).encode())
    return done


def segment(photos: str | Path, out: str | Path, segmenter: Callable[[np.ndarray], list[dict[str, Any]]],
            part: tuple[int, int] | None = None, progress: bool = True) -> int:
    """Instances of every photo (``photo:<ID>``) and outpaint (its stem) not segmented yet, then the merged
    ``detect.json.gz``, ``mask.npz`` and ``subjects.json`` → number segmented."""
    o = Path(out)
    sdir = o / "segment"
    mine = sdir / f"{_part_name(part)}.json.gz"
    seen = _merged_json(sorted(sdir.glob("part*.json.gz"))) if sdir.is_dir() else {}
    own = _merged_json([mine]) if mine.is_file() else {}
    items = [(sid, f"photo:{sid}", p) for sid, p in list_photos(photos)]
    items += [(parse_outpaint_name(f)[0], f.rsplit(".", 1)[0], o / "images" / f) for f in _outpaints(o)]
    todo = [(k, p) for _, k, p in _slice(items, part) if k not in seen]
    bar = Progress(len(todo), "segment", progress)
    for n, (key, p) in enumerate(todo, 1):
        dets = segmenter(_read_image(p))
        own[key] = [{"xyxy": [round(float(v), 2) for v in d["xyxy"]], "score": round(float(d["score"]), 4),
                     "class": d["class"], "polygon": np.round(np.asarray(d["polygon"]), 1).tolist()} for d in dets]
        if n % 20 == 0 or n == len(todo):
            write_atomic(mine, gzip.compress(json.dumps(own).encode(), mtime=0))
        bar.step(n)
    merge_segments(photos, o)
    return len(todo)


def merge_segments(photos: str | Path, out: str | Path) -> None:
    """Rebuild ``detect.json.gz``, ``mask.npz`` and ``subjects.json`` from every ``segment/part*`` file."""
    import io

    from opencrop.boxes import xyxy_to_xywh

    o = Path(out)
    raw = _merged_json(sorted((o / "segment").glob("part*.json.gz")))
    detect: dict[str, list] = {}
    masks: dict[str, np.ndarray] = {}
    subjects: dict[str, list[float]] = {}
    sizes = {sid: p for sid, p in list_photos(photos)}
    for key in sorted(raw):
        dets = raw[key]
        if key.startswith("photo:"):
            sid = key[6:]
            if not dets or sid not in sizes:
                continue
            from opencrop.data._common import image_size

            w, h = image_size(sizes[sid]) or (0, 0)
            b = np.array([d["xyxy"] for d in dets], np.float64)
            prom = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) * np.array([d["score"] for d in dets])
            best = b[int(np.argmax(prom))]
            if w and h:
                subjects[sid] = [round(float(v), 6) for v in xyxy_to_xywh(best / [w, h, w, h])]
            continue
        items = []
        for d in dets:
            mid = len(masks)
            masks[str(mid)] = np.asarray(d["polygon"], np.float64).reshape(-1, 2)
            items.append({"xywh": [round(float(v), 2) for v in xyxy_to_xywh(np.asarray(d["xyxy"], np.float64))],
                          "score": d["score"], "class": d["class"], "mask_id": mid})
        detect[key] = items
    write_atomic(o / "detect.json.gz", gzip.compress(json.dumps(detect).encode(), mtime=0))
    buf = io.BytesIO()
    np.savez_compressed(buf, **masks)
    write_atomic(o / "mask.npz", buf.getvalue())
    write_atomic(o / "subjects.json", json.dumps(subjects).encode())


def select(out: str | Path, val: float = 0.05, test: float = 0.05, bad_filter: bool = True,
           heuristic_filter: bool = True) -> dict[str, Any]:
    """Write ``{train,val,test}.json`` (photos with a subject, split by a stable hash of their ID) and apply the
    filters of :func:`~opencrop.data.gencrop.load_outpaint` → ``{split: {"photos", "kept", outcome counts}}``."""
    from opencrop.data.gencrop import load_outpaint

    o = Path(out)
    subj_file = o / "subjects.json"
    if not subj_file.is_file():
        raise DataFormatError(subj_file, "missing (run `opencrop outpaint segment` first)")
    subjects = json.loads(subj_file.read_text())
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for sid in sorted(subjects):
        h = int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        s = "val" if h < val else "test" if h < val + test else "train"
        splits[s].append({"id": sid, "subject_xywh": subjects[sid]})
    report: dict[str, Any] = {}
    for s, entries in splits.items():
        write_atomic(o / f"{s}.json", json.dumps(entries).encode())
        stats: dict[str, int] = {}
        load_outpaint(o, s, bad_filter=bad_filter, heuristic_filter=heuristic_filter, stats=stats)
        report[s] = {"photos": len(entries), **stats}
    return report


def run_all(photos: str | Path, out: str | Path, captioner: Any, outpainter: Any, classifier: Any, segmenter: Any,
            part: tuple[int, int] | None = None, variants: int = 5, canvas: int = 512, seed: int = 0,
            progress: bool = True) -> dict[str, Any]:
    """Every stage in order (``select`` only when this worker has the whole set, ``part`` None or n = 1)."""
    counts = {"caption": caption(photos, out, captioner, part, progress=progress),
              "paint": paint(photos, out, outpainter, part, variants, canvas, seed, progress=progress),
              "filter": filter_bad(out, classifier, part, progress=progress),
              "segment": segment(photos, out, segmenter, part, progress=progress)}
    res: dict[str, Any] = {"written": counts}
    if part is None or part[1] == 1:
        res["select"] = select(out)
    return res
