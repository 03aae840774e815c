"""Service settings: one frozen dataclass, filled by ``opencrop serve`` options (or by tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opencrop._threads import cpus

__all__ = ["ServeSettings"]


def _default_workers() -> int:
    return max(1, cpus())


@dataclass(frozen=True)
class ServeSettings:
    """Everything the service needs to start.

    Attributes:
        host, port: where to listen (``port=0`` picks a free port).
        models: crop models every worker loads; the first is the default for requests without ``model=``.
        weights: weight file per model name (learned models only).
        cues: ``"auto"``, ``False`` (none) or a tuple of cue names, as :class:`opencrop.Cropper` takes them.
        degrade: serve even when a cue a model uses cannot run (missing/corrupt model file); every answer then says
            so (``degraded`` in JSON, ``X-Crop-Degraded`` on images) and ``/healthz`` lists it. Without it
            such a cue stops the start.
        random_weights: let a learned model without trained weights run (its crops are random; every answer's
            ``notes`` says so); otherwise such a model stops the start.
        workers: worker processes (each holds one loaded :class:`opencrop.Cropper` per model).
        queue: requests that may wait for a busy pool beyond the ``workers`` being served; more get 503.
        threads_per_worker: torch intra-op threads in each worker (default: CPUs / workers, at least 1).
        max_body: request body limit in bytes (413 beyond it).
        max_output_pixels: limit on ``size=WxH`` (width × height) of a requested output image (400 beyond it).
        max_ratios: most ratios one request may ask for.
        timeout: seconds a request may wait for a worker, and seconds a crop job may run before its worker is
            killed and replaced (504).
        body_timeout: seconds a client has to send the whole request body (408 beyond it).
        max_connections: open connections beyond which the server answers 503 at once.
        keep_alive: seconds an idle keep-alive connection stays open.
        graceful_timeout: seconds a shutdown waits for requests in flight.
        cors_origins: origins allowed to call the service from a browser (``"*"`` for any); none by default.
        access_log: log one line per request (logger ``opencrop.serve.access``).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = ("composition",)
    weights: dict[str, str] = field(default_factory=dict)
    cues: bool | str | tuple[str, ...] = "auto"
    random_weights: bool = False
    degrade: bool = False
    workers: int = field(default_factory=_default_workers)
    queue: int | None = None
    threads_per_worker: int | None = None
    max_body: int = 50_000_000
    max_output_pixels: int = 50_000_000
    max_ratios: int = 16
    timeout: float = 30.0
    body_timeout: float = 60.0
    max_connections: int = 256
    keep_alive: int = 5
    graceful_timeout: float = 30.0
    cors_origins: tuple[str, ...] = ()
    access_log: bool = True

    def __post_init__(self) -> None:
        checks = [
            (bool(self.models), "models: give at least one model"),
            (self.workers >= 1, f"workers: must be at least 1, got {self.workers}"),
            (self.queue is None or self.queue >= 0, f"queue: must be 0 or more, got {self.queue}"),
            (self.threads_per_worker is None or self.threads_per_worker >= 1,
             f"threads_per_worker: must be at least 1, got {self.threads_per_worker}"),
            (self.max_body >= 1, f"max_body: must be at least 1 byte, got {self.max_body}"),
            (self.max_output_pixels >= 1, f"max_output_pixels: must be at least 1, got {self.max_output_pixels}"),
            (self.max_ratios >= 1, f"max_ratios: must be at least 1, got {self.max_ratios}"),
            (self.timeout > 0, f"timeout: must be positive, got {self.timeout}"),
            (self.body_timeout > 0, f"body_timeout: must be positive, got {self.body_timeout}"),
            (self.max_connections >= 1, f"max_connections: must be at least 1, got {self.max_connections}"),
            (0 <= self.port <= 65535, f"port: must be 0..65535, got {self.port}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ValueError(problem)
        unknown = set(self.weights) - set(self.models)
        if unknown:
            raise ValueError(f"weights: given for {sorted(unknown)}, which are not served (models: "
                             f"{', '.join(self.models)})")

    @property
    def queue_size(self) -> int:
        """Waiting places beyond the workers (default: 4 per worker)."""
        return 4 * self.workers if self.queue is None else self.queue

    @property
    def torch_threads(self) -> int:
        """Intra-op threads per worker, so that all workers together use the machine's CPUs once."""
        return self.threads_per_worker or max(1, cpus() // self.workers)
