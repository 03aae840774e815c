"""What runs inside a worker process: load the croppers once, then crop jobs one at a time.

A worker talks to the service over one socket pair (pickled messages): it receives the
:class:`~opencrop.serve.settings.ServeSettings`, sends ``("ready", info)`` (or ``("error", message)``)
once its croppers are loaded, then answers each :class:`~opencrop.serve.params.CropJob` with one
:class:`JobResult`; ``None`` (or the pipe closing) ends it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from opencrop.serve.params import CropJob
from opencrop.serve.settings import ServeSettings

__all__ = ["JobResult", "load_croppers", "run_job", "worker_main"]

log = logging.getLogger("opencrop.serve.worker")


@dataclass
class JobResult:
    """A worker's answer: HTTP ``status``, and either a JSON ``body`` or ``image`` bytes of ``media_type``."""

    status: int
    body: dict[str, Any] | None = None
    image: bytes | None = None
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def load_croppers(settings: ServeSettings) -> dict[str, Any]:
    """One :class:`opencrop.Cropper` per served model, warmed up on a small picture (so that lazily loaded cue
    backends load now, not during the first request)."""
    import numpy as np

    from opencrop import Cropper

    croppers = {m: Cropper(model=m, weights=settings.weights.get(m), cues=settings.cues,
                           random_weights=settings.random_weights, degrade=settings.degrade)
                for m in settings.models}
    warm = np.full((96, 128, 3), 128, np.uint8)
    warm[24:72, 40:88] = (200, 60, 60)
    for c in croppers.values():
        c.crop(warm, ratios=["1:1"])
    return croppers


def _image_notes(loaded: Any) -> list[str]:
    notes = []
    if getattr(loaded, "n_frames", 1) > 1:
        notes.append(f"image has {loaded.n_frames} frames or pages: the first was cropped")
    if getattr(loaded, "has_alpha", False):
        notes.append("image has transparency: analysed over grey")
    return notes


def run_job(croppers: dict[str, Any], job: CropJob) -> JobResult:
    """Crop ``job`` with the loaded ``croppers``; every failure becomes a :class:`JobResult` with a 4xx/5xx status
    and an ``{"error": ...}`` body (a traceback goes to this process's log, never to the client).

    JSON body: ``{"width", "height", "model", "crops": [{"ratio", "box": [x1, y1, x2, y2], "score"}], "notes"}``
    with boxes in xyxy pixels of the upright original. Image result: the single crop, with headers
    ``X-Crop-Box`` (``x1,y1,x2,y2``), ``X-Crop-Score``, ``X-Image-Size`` (``WxH`` of the original) and
    ``X-Crop-Notes`` (a JSON list).
    """
    from opencrop.errors import DecodeError, ImageTooLargeError, ModelFileError, OpenCropError, UnsupportedImageError
    from opencrop.io import FORMAT_NAMES, MIME_TYPES, crop_image, encode_image

    t0 = time.perf_counter()
    cropper = croppers[job.model]
    try:
        res = cropper.run(job.data, ratios=list(job.ratios), size=job.size, subject=job.subject, focus=job.focus)
        frame = res.analysis.frame
        notes = [*job.notes, *_image_notes(frame), *res.notes]
        if job.format == "json":
            body = {**res.to_dict(), "model": job.model, "notes": notes}
            body.pop("image", None)  # the source name of an upload is always "<bytes>"
            return JobResult(200, body, seconds=time.perf_counter() - t0)
        c = res.crops[0]
        pic = c.image if c.image is not None else crop_image(frame, c.box, None)
        if pic.mode == "RGBA" and job.format == "jpeg":
            notes.append("JPEG has no transparency: composited onto white")
        if c.warning:
            notes.append(c.warning)
        data = encode_image(pic, job.format, job.quality)
        headers = {"X-Crop-Box": ",".join(str(v) for v in c.box), "X-Crop-Score": f"{c.score:.6f}",
                   "X-Image-Size": f"{frame.width}x{frame.height}", "X-Crop-Notes": json.dumps(notes)}
        if res.analysis.cues.degraded:
            headers["X-Crop-Degraded"] = ",".join(sorted(res.analysis.cues.degraded))
        media = MIME_TYPES[FORMAT_NAMES[job.format]]
        return JobResult(200, None, data, media, headers, time.perf_counter() - t0)
    except ImageTooLargeError as e:
        status, msg = 413, f"image too large: {e.problem}"
    except (DecodeError, UnsupportedImageError) as e:
        status, msg = 422, f"cannot read the image: {e.problem}"
    except ModelFileError as e:
        log.error("model file problem: %s", e)
        status, msg = 500, f"server model file problem: {e.problem}"
    except OpenCropError as e:
        status, msg = 422, str(e)
    except ValueError as e:  # the API's own parameter checks (e.g. a ratio that does not fit size)
        status, msg = 400, str(e)
    except MemoryError:
        status, msg = 503, "out of memory for this image; try a smaller one"
    except Exception as e:
        log.error("crop job failed:\n%s", traceback.format_exc())
        status, msg = 500, f"internal error ({type(e).__name__}); see the server log"
    return JobResult(status, {"error": msg}, seconds=time.perf_counter() - t0)


def worker_main(fd: int) -> None:
    """Entry point of a worker process, talking over the socket ``fd``: receive the :class:`ServeSettings`, load,
    report ready, serve jobs.

    SIGINT and SIGTERM are ignored: the parent decides when workers stop (after requests in flight finish),
    and a worker whose parent dies sees its pipe close and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    settings: ServeSettings = conn.recv()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {os.getpid()} %(levelname)s %(message)s")
    try:
        import torch

        torch.set_num_threads(settings.torch_threads)
        croppers = load_croppers(settings)
    except BaseException as e:  # reported to the parent, which names it and stops
        try:
            conn.send(("error", (type(e).__name__, f"{type(e).__name__}: {e}")))
        finally:
            conn.close()
        return
    degraded = {cue: why for c in croppers.values() for cue, why in c.degraded.items()}
    conn.send(("ready", {"pid": os.getpid(), "models": list(croppers), "degraded": degraded}))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        result = run_job(croppers, job)
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            break
    conn.close()
    logging.shutdown()
    os._exit(0)  # nothing left to flush: skip the slow interpreter teardown (torch, onnxruntime)
