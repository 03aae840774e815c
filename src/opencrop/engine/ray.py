"""``opencrop batch --engine ray``: the batch pipeline on Ray Data.

The driver (``opencrop batch``) plans the job exactly as the local engine does (inputs, output names, the resume
set) and hands the items still to do to a Ray Data pipeline: ``from_items`` → ``map_batches`` over an actor pool
whose actors each build **one** :class:`~opencrop.Cropper` (model and cue detectors loaded once per actor) and run
:func:`opencrop.commands._batch_record` on every item of their batches. Records stream back to the driver, which
appends them to ``OUT/results.jsonl`` as they arrive (a killed job resumes from there) and finally writes
``OUT/results.parquet``. A bad image is an error record, never a failed task; Ray Data shows its progress bars.

On a cluster (``--ray-address ray://head:10001`` or ``$RAY_ADDRESS``) every node needs opencrop installed
(``pip install 'opencrop[ray]'``, plus the model files) and the inputs and ``OUT`` on a file system that all
nodes see at the same path (the actors read and write the files themselves).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["require_ray", "run_ray"]


def require_ray() -> None:
    """Raise ``ImportError`` with the install command when Ray Data is not importable."""
    try:
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(f"--engine ray needs Ray Data ({e}); install it with: pip install 'opencrop[ray]'") from None


class CropActor:
    """One Ray actor: one loaded Cropper; ``__call__`` crops a batch ``{"image", "targets"}`` → ``{"record"}``
    (JSON strings, one per item)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from opencrop.commands import _make_cropper

        self.args = args
        self.cropper = _make_cropper(args)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from opencrop.commands import _batch_record

        out = [json.dumps(_batch_record(self.cropper, Path(str(image)), [Path(t) for t in json.loads(str(targets))],
                                        self.args))
               for image, targets in zip(batch["image"], batch["targets"], strict=True)]
        return {"record": np.array(out, dtype=object)}


def _init(address: str | None) -> None:
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) started or joined a cluster already
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:  # a fresh local instance on this machine's CPUs
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def run_ray(todo: list[tuple[Path, list[Path], argparse.Namespace]], args: argparse.Namespace
            ) -> Iterator[dict[str, Any]]:
    """Crop ``todo`` (``(path, targets, args)`` as planned by ``opencrop batch``) on Ray; yields the records in
    completion order. ``args.jobs`` actors (default: the cluster's CPUs, at most one per item), one CPU each."""
    if not todo:
        return
    require_ray()
    import ray

    _init(getattr(args, "ray_address", None))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = max(1, min(args.jobs or cpus, len(todo)))
    # small batches keep every actor busy to the end; an item is one whole image (≥ tens of ms), so the per-batch
    # overhead (≈ 1 ms) does not matter
    batch = max(1, min(16, len(todo) // (4 * actors)))
    items = [{"image": str(p), "targets": json.dumps([str(t) for t in targets])} for p, targets, _ in todo]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * actors)))
    ds = ds.map_batches(CropActor, fn_constructor_args=(args,), batch_size=batch, num_cpus=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=actors))
    for row in ds.iter_rows():
        yield json.loads(row["record"])
