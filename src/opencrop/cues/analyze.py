"""Run the requested cues on one analysis image; a missing backend is an error unless the caller degrades."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from opencrop.cues._runtime import BackendUnavailable, note_once
from opencrop.cues.types import Cues, Detections
from opencrop.errors import CueUnavailableError

__all__ = ["ALL_CUES", "DEFAULT_CUES", "analyze", "available", "check"]

ALL_CUES = frozenset({"faces", "people", "objects", "saliency", "person_mask"})
DEFAULT_CUES = frozenset({"faces", "people", "objects", "saliency"})

#: fallback when a backend cannot run: what the cropper is left with
_FALLBACK = {
    "faces": "no face detection; crops rely on people/saliency",
    "people": "no person detection; crops rely on faces/saliency",
    "objects": "no object detection; crops rely on saliency",
    "person_mask": "no person mask",
}


def _guarded(cues: tuple[str, ...], fn, out: Cues, degrade: bool):
    """``fn()``; when its backend is unavailable, :class:`CueUnavailableError`, or with ``degrade`` ``None`` after
    noting (once per process in the log, always in ``out.notes`` and ``out.degraded``) that ``cues`` are off."""
    try:
        return fn()
    except BackendUnavailable as e:
        if not degrade:
            raise CueUnavailableError({cue: str(e) for cue in cues}) from None
        for cue in cues:
            note = f"degraded: {cue} unavailable ({e}); {_FALLBACK[cue]}"
            out.notes.append(note)
            if cue not in out.degraded:
                out.degraded.append(cue)
            note_once(note)
        return None


def analyze(image: np.ndarray, want: Iterable[str] = DEFAULT_CUES, degrade: bool = False) -> Cues:
    """Run the cues in ``want`` on ``image`` (``[H, W, 3]`` uint8 RGB, typically ≤ 512 px long side).

    ``want`` ⊆ ``{"faces", "people", "objects", "saliency", "person_mask"}``. A cue whose runtime or model file
    is unavailable (missing, or failing its sha256) raises :class:`~opencrop.errors.CueUnavailableError`; with
    ``degrade`` it is left empty instead, named in ``Cues.degraded`` and explained in ``Cues.notes`` (logged once
    per process), and the cropper relies on what remains (saliency always works: it needs only numpy/scipy). The
    person mask is only computed when a face or person was found, and is limited to their (enlarged) boxes: the
    selfie model also lights up cats and cups.

    Returns:
        :class:`Cues` at the image's resolution; boxes xyxy float pixels of ``image``.
    Raises:
        ValueError: ``image`` is not ``[H, W, 3]`` uint8, or ``want`` names an unknown cue.
        CueUnavailableError: a wanted cue cannot run and ``degrade`` is False.
    """
    from opencrop.cues.faces import _check_image

    want = set(want)
    unknown = want - ALL_CUES
    if unknown:
        raise ValueError(f"unknown cue(s) {sorted(unknown)}; choose from {sorted(ALL_CUES)}")
    _check_image(image)
    h, w = image.shape[:2]
    cues = Cues(width=w, height=h)
    ssd = _ssd_job(image, want)
    pending = None
    if ssd is not None and want & {"faces", "saliency"}:  # the SSD runs on the other core meanwhile
        pending = _pool().submit(ssd)
    if "saliency" in want:  # first: the face detector may wait for the SSD's people (below)
        from opencrop.cues.saliency import saliency

        cues.saliency = saliency(image)
    if "faces" in want:
        from opencrop.cues.faces import detect_faces

        people = _people_of(pending) if pending is not None and "people" in want else None
        cues.faces = _guarded(("faces",), lambda: detect_faces(image, people=people), cues, degrade) or Detections()
    if ssd is not None:
        names = tuple(c for c in ("people", "objects") if c in want)
        run = pending.result if pending is not None else ssd
        both = _guarded(names, run, cues, degrade)
        if both is not None:
            from opencrop.cues.objects import runtime

            ran = runtime(objects="objects" in want)  # loaded already: the pass ran
            cues.runtimes.update(dict.fromkeys(names, ran))
            if "people" in want:
                cues.people = both[0]
            if "objects" in want:
                cues.objects = both[1]
                if len(both) > 2:
                    cues.proposals = both[2]
    if "person_mask" in want and (len(cues.faces) or len(cues.people)):
        from opencrop.cues.segmentation import person_mask

        m = _guarded(("person_mask",), lambda: person_mask(image), cues, degrade)
        if m is not None:
            cues.person_mask = _restrict(m, cues)
    return cues


def _ssd_job(image: np.ndarray, want: set[str]) -> Callable[[], tuple[Detections, ...]] | None:
    """The SSD call ``want`` needs: people, objects and the weaker object proposals from one pass, or people alone
    (person head only)."""
    if "objects" in want:
        from opencrop.cues.objects import detect_with_proposals

        return lambda: detect_with_proposals(image)
    if "people" in want:
        from opencrop.cues.objects import detect_people

        return lambda: (detect_people(image), Detections())
    return None


def _people_of(pending) -> Callable[[], np.ndarray | None]:
    """The person boxes of the SSD job ``pending`` (a future of ``(people, objects)``), ``None`` if it failed:
    the face detector runs its small-face tiles only over detected people without a face."""

    def get() -> np.ndarray | None:
        try:
            return pending.result()[0].boxes
        except BackendUnavailable:
            return None  # reported once by the caller's own wait on the job

    return get


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One background worker for the SSD pass (its runtime releases the GIL; it is serialised by its own lock)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opencrop-ssd")
        return _POOL


def _restrict(mask: np.ndarray, cues: Cues) -> np.ndarray | None:
    """``mask`` zeroed outside the person boxes and the face boxes (faces enlarged ×3 wide, ×4 down for bodies)."""
    h, w = mask.shape
    keep = np.zeros((h, w), dtype=bool)
    boxes = [cues.people.boxes]
    if len(cues.faces):
        f = cues.faces.boxes
        fw, fh = f[:, 2] - f[:, 0], f[:, 3] - f[:, 1]
        boxes.append(np.stack([f[:, 0] - fw, f[:, 1] - 0.5 * fh, f[:, 2] + fw, f[:, 3] + 4 * fh], axis=1))
    for x1, y1, x2, y2 in np.concatenate(boxes):
        keep[max(0, int(y1)) : min(h, int(np.ceil(y2))), max(0, int(x1)) : min(w, int(np.ceil(x2)))] = True
    out = np.where(keep, mask, 0.0).astype(np.float32)
    return out if out.max() > 0.5 else None


def check(want: Iterable[str] = ALL_CUES) -> dict[str, str]:
    """The cues of ``want`` that cannot run here, each with why (loads their backends; cheap after the first call).

    An empty dict means every wanted cue works. Raises ``ValueError`` for an unknown cue name.
    """
    from opencrop.cues.faces import _FULL_NET, _SHORT_NET
    from opencrop.cues.objects import ensure_available
    from opencrop.cues.segmentation import _NET as SELFIE

    want = set(want)
    unknown = want - ALL_CUES
    if unknown:
        raise ValueError(f"unknown cue(s) {sorted(unknown)}; choose from {sorted(ALL_CUES)}")
    loaders = {"faces": (_SHORT_NET.get, _FULL_NET.get), "people": (ensure_available,),
               "objects": (lambda: ensure_available(objects=True),), "person_mask": (SELFIE.get,), "saliency": ()}
    missing: dict[str, str] = {}
    for cue in sorted(want):
        for load in loaders[cue]:
            try:
                load()
            except BackendUnavailable as e:
                missing[cue] = str(e)
                break
    return missing


def available() -> dict[str, str | None]:
    """For each cue, ``None`` if it can run here, else why not (:func:`check` over every cue)."""
    missing = check(ALL_CUES)
    return {cue: missing.get(cue) for cue in sorted(ALL_CUES)}
