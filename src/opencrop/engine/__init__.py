"""Batch engines of ``opencrop batch``: the same per-image pipeline (:func:`opencrop.commands._batch_record`) run
by different executors.

* ``local`` (default): this process, or ``--jobs N`` worker processes (:func:`opencrop.commands._run_jobs`);
* ``ray``: Ray Data ``map_batches`` over a pool of actors that each hold one loaded :class:`~opencrop.Cropper`
  (:mod:`opencrop.engine.ray`), on a local Ray instance or a cluster (``--ray-address``).

Both read the same inputs (:mod:`opencrop.engine.inputs`: a folder, a list file, a Parquet/CSV manifest), name
outputs the same way, append the same records to ``OUT/results.jsonl`` (so ``--resume`` works across engines) and
the Ray engine also writes ``OUT/results.parquet`` (:mod:`opencrop.engine.results`).
"""

ENGINES = ("local", "ray")

__all__ = ["ENGINES"]
