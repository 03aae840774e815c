"""``opencrop backbones list`` (the command module on its own parser, as opencrop.cli wires it)."""

from __future__ import annotations

import argparse
import json

from opencrop.nn import cli as nn_cli
from opencrop.nn.weights import WEIGHTS


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="opencrop")
    sub = parser.add_subparsers(dest="command")
    groups: dict[str, argparse._SubParsersAction] = {}

    def group(name: str, help: str) -> argparse._SubParsersAction:
        if name not in groups:
            groups[name] = sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command")
        return groups[name]

    nn_cli.register(sub, group)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_backbones_list(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OPENCROP_ALLOW_DOWNLOAD", raising=False)
    for e in WEIGHTS.values():
        monkeypatch.delenv(e.env_var, raising=False)
    assert _run(["backbones", "list", "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["mobilenet_v2"]["channels"] == [32, 96, 320]
    assert rows["resnet50"]["reduction"] == [8, 16, 32]
    assert rows["vgg16"]["file"] == "missing"  # no torchvision-only file in an empty cache, and no download
    assert _run(["backbones", "list"]) == 0
    assert "shufflenet_v2_x1_0" in capsys.readouterr().out


def test_cli_module_does_not_import_torch_at_import_time():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(nn_cli))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top for a in n.names} | {getattr(n, "module", None) for n in top}
    assert not any(str(x).startswith(("torch", "opencrop.nn")) for x in names if x)
