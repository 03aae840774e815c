"""The ``opencrop`` command. Thin: parse, call the library, print, exit.

Exit codes: 0 all good, 1 some inputs failed (each named on stderr), 2 usage error (including a command that
needs an optional extra that is not installed: the message names the ``pip install 'opencrop[...]'``).
Each package contributes its commands through a ``register(sub, group)`` function in its ``cli`` module;
command modules must not import torch at import time (``opencrop --help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

#: packages whose ``cli`` module adds commands (missing modules are skipped: a package not built yet)
_COMMAND_MODULES = (
    "opencrop.commands",
    "opencrop.data.cli",
    "opencrop.eval.cli",
    "opencrop.nn.cli",
    "opencrop.train.cli",
    "opencrop.data.heatmaps_cli",
    "opencrop.models.cli",
    "opencrop.serve.cli",
    "opencrop.outpaint.cli",
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with the usage line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from opencrop import __version__

    parser = _Parser(prog="opencrop", description="Find the best crop of a photo for any aspect ratio.")
    parser.add_argument("--version", action="version", version=f"opencrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    groups: dict[str, argparse._SubParsersAction] = {}

    def group(name: str, help: str) -> argparse._SubParsersAction:
        """Sub-command group ``opencrop NAME ...`` shared by several packages (e.g. ``data``)."""
        if name not in groups:
            p = sub.add_parser(name, help=help)
            g = p.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
            g.required = True
            groups[name] = g
        return groups[name]

    for mod_name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
                continue  # that package (or its cli module) is not part of this build
            raise
        mod.register(sub, group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:  # an optional extra (torch, serve, ray ...) is not installed
        from opencrop.errors import EXTRAS, MissingExtraError

        if not (e.name and e.name.split(".")[0] in EXTRAS):
            raise
        print(f"opencrop {args.command}: error: {MissingExtraError('this command', e.name)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
