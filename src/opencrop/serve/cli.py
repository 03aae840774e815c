"""``opencrop serve``: the HTTP service (needs the ``serve`` extra: ``pip install 'opencrop[serve]'``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["register"]

#: (import name, distribution) of what ``opencrop serve`` needs beyond the default install
_EXTRA = (("starlette", "starlette"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart"))


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 0 to 65535") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: must be from 0 to 65535 (0 picks a free port)")
    return v


def _at_least(low: float, kind: type = int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a {kind.__name__}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be at least {low:g}")
        return v

    return parse


def _megabytes(text: str) -> int:
    return int(_at_least(0.001, float)(text) * 1_000_000)


def register(sub: argparse._SubParsersAction, group: Callable[..., argparse._SubParsersAction]) -> None:
    p = sub.add_parser("serve", help="HTTP service: POST an image to /crop, or open / in a browser",
                       description="Serve the cropper over HTTP (needs: pip install 'opencrop[serve]'). "
                                   "API: /docs and /openapi.json; web page: /.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--model", "-m", action="append", default=None, metavar="NAME",
                   help="crop model; repeat to serve several (requests pick one with model=; default composition)")
    p.add_argument("--weights", action="append", default=[], metavar="[MODEL=]PATH",
                   help="weight file of a learned model (MODEL= when several models are served)")
    p.add_argument("--degrade", action="store_true",
                   help="serve even when a detector cannot run (missing/corrupt model file); every answer and "
                   "/healthz say so. Without it that stops the start")
    p.add_argument("--random-weights", action="store_true",
                   help="allow a learned model without trained weights (its crops are random; every answer says so)")
    p.add_argument("--no-cues", action="store_true", help="no face/person/object/saliency cues")
    p.add_argument("--cues", help="comma-separated cues to run (default: the model's, when available)")
    p.add_argument("--workers", type=_at_least(1), default=None, metavar="N",
                   help="worker processes (default: one per CPU)")
    p.add_argument("--queue", type=_at_least(0), default=None, metavar="N",
                   help="requests that may wait for a worker; more get 503 (default: 4 per worker)")
    p.add_argument("--max-body-mb", type=_megabytes, default=50_000_000, metavar="MB",
                   help="request body limit in MB (default 50; 413 beyond)")
    p.add_argument("--timeout", type=_at_least(0.001, float), default=30.0, metavar="S",
                   help="seconds a request may wait for a worker and a crop may run (default 30; 503/504)")
    p.add_argument("--body-timeout", type=_at_least(0.001, float), default=60.0, metavar="S",
                   help="seconds a client has to send its whole upload (default 60; 408)")
    p.add_argument("--max-connections", type=_at_least(1), default=256, metavar="N",
                   help="open connections beyond which the server answers 503 (default 256)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from ORIGIN (e.g. https://example.org, or * for any); repeatable")
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_serve, _parser=p)


def _missing_extra() -> list[str]:
    import importlib

    missing = []
    for mod, dist in _EXTRA:
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(dist)
    return missing


def _settings(args: argparse.Namespace) -> Any:
    from opencrop.serve.settings import ServeSettings

    models = tuple(args.model or ["composition"])
    weights: dict[str, str] = {}
    for w in args.weights:
        name, eq, path = w.partition("=")
        if eq and name in models:
            weights[name] = path
        elif len(models) == 1:
            weights[models[0]] = w
        else:
            raise ValueError(f"--weights {w!r}: with several models, write MODEL=PATH (models: {', '.join(models)})")
    cues: Any = "auto"
    if args.no_cues:
        cues = False
    elif args.cues:
        from opencrop.cues import ALL_CUES

        cues = tuple(c.strip() for c in args.cues.split(",") if c.strip())
        unknown = set(cues) - ALL_CUES
        if unknown:
            raise ValueError(f"--cues: unknown cue(s) {sorted(unknown)}; choose from {sorted(ALL_CUES)}")
    from opencrop.models import is_model, list_models, list_pretrained

    for m in models:
        if not is_model(m):
            raise ValueError(f"--model {m!r}: unknown model; registered: {', '.join(list_models())}; pretrained "
                             f"tags: {', '.join(list_pretrained())}")
    kw: dict[str, Any] = {} if args.workers is None else {"workers": args.workers}
    return ServeSettings(
        host=args.host, port=args.port, models=models, weights=weights, cues=cues,
        random_weights=args.random_weights, degrade=args.degrade, queue=args.queue,
        max_body=args.max_body_mb, timeout=args.timeout, body_timeout=args.body_timeout,
        max_connections=args.max_connections, cors_origins=tuple(args.cors_origin),
        access_log=not args.no_access_log, **kw)


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _serve(args: argparse.Namespace) -> int:
    missing = _missing_extra()
    if missing:
        print(f"opencrop serve: error: the HTTP service needs {', '.join(missing)}, which "
              f"{'is' if len(missing) == 1 else 'are'} not installed: pip install 'opencrop[serve]'", file=sys.stderr)
        return 2
    try:
        settings = _settings(args)
    except ValueError as e:
        args._parser.error(str(e))  # usage error: exits 2 with the usage line
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from opencrop.serve.pool import WorkerPool, WorkerStartError
    from opencrop.serve.server import listen, serve

    try:
        sock = listen(settings.host, settings.port)
    except OSError as e:
        print(f"opencrop serve: error: {e.strerror}", file=sys.stderr)
        return 1
    pool = WorkerPool(settings)
    print(f"opencrop serve: starting {settings.workers} worker process(es) for {', '.join(settings.models)}…",
          file=sys.stderr)
    try:
        pool.start()
    except WorkerStartError as e:
        sock.close()
        print(f"opencrop serve: error: a worker could not load its models: {e}", file=sys.stderr)
        return 2 if e.kind == "UntrainedModelError" else 1  # (no weights given: a usage error, as for crop)
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    print(f"opencrop serving {', '.join(settings.models)} on http://{host}:{port}/ "
          f"({settings.workers} workers, queue {settings.queue_size}; API docs at /docs)", file=sys.stderr,
          flush=True)
    # after a graceful SIGTERM shutdown uvicorn re-raises the signal: exit 0 instead of dying from it
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        serve(settings, sock, pool)
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.close()
        sock.close()
    print("opencrop serve: stopped", file=sys.stderr)
    return 0
