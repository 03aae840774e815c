"""Module boundaries: the models never import the training package, and the registry lists without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_no_models_module_imports_opencrop_train():
    out = _run(
        "import importlib, pkgutil, sys\n"
        "import opencrop.models as m\n"
        "names = sorted(i.name for i in pkgutil.iter_modules(m.__path__, 'opencrop.models.'))\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "print(len(names), 'opencrop.models.gaic' in names, 'opencrop.models.checkpoint' in names,\n"
        "      sorted(k for k in sys.modules if k == 'opencrop.train' or k.startswith('opencrop.train.')))\n"
    )
    n, has_gaic, has_ckpt, train_mods = out.split(" ", 3)
    assert int(n) >= 10 and has_gaic == "True" and has_ckpt == "True"  # the walk really found the model files
    assert train_mods == "[]", f"models imported {train_mods}"


def test_pretrained_tags_are_listed_without_torch():
    out = _run(
        "import sys\n"
        "from opencrop.models import is_model, list_models, list_pretrained\n"
        "print(list_pretrained('gaic.*'), list_models('gaic*', pretrained=True) == list_pretrained('gaic*'),\n"
        "      is_model('gaic.mobilenet_v2_gaicd_v1'), is_model('gaic.nope'), 'torch' in sys.modules)\n"
    )
    assert out == "['gaic.mobilenet_v2_gaicd_v1', 'gaic.shufflenet_v2_gaicd_v1'] True True False False"


def test_command_line_parser_needs_no_torch():
    """``opencrop --help`` (every command module, models/cli.py with ``weights import`` included) stays torch-free."""
    out = _run(
        "import sys\n"
        "from opencrop.cli import build_parser\n"
        "p = build_parser()\n"
        "a = p.parse_args(['weights', 'import', 'gaic.mobilenet_v2_gaicd_v1', 'x.pth'])\n"
        "print(a.handler.__module__, 'torch' in sys.modules)\n"
    )
    assert out == "opencrop.models.cli False"
