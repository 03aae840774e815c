"""``opencrop serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group: Callable[..., argparse._SubParsersAction]) -> None:
    p = sub.add_parser("serve", help="HTTP service: POST an image to /crop, or open / in a browser")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", "-m", default="composition")
    p.add_argument("--weights")
    p.add_argument("--no-cues", action="store_true")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from opencrop.serve.app import make_server

    try:
        srv = make_server(args.host, args.port, args.model, args.weights, cues=not args.no_cues)
    except (KeyError, OSError) as e:
        print(f"opencrop serve: error: {e}", file=sys.stderr)
        return 2
    print(f"opencrop serving {args.model} on http://{srv.server_address[0]}:{srv.server_address[1]}/",
          file=sys.stderr)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
    return 0
