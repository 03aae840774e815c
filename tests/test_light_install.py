"""The light install: without torch the default cropper, the CLI and `--version` work, and what needs torch says
which extra to install (issue 15, item 3). torch is blocked in a subprocess (``sys.modules["torch"] = None``);
``benchmarks/install_size.py`` checks a real ``pip install .`` venv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.jpg"


def _without_torch(*argv: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys; sys.modules['torch'] = None; from opencrop.cli import main; "
            f"rc = main({list(argv)!r}); assert 'torch' not in sys.modules or sys.modules['torch'] is None; "
            "sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PYTHONPATH": str(REPO / "src"), **_env()})


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_default_crop_without_torch(tmp_path: Path) -> None:
    r = _without_torch("crop", str(PHOTO), "-r", "16:9", "--json", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["crops"][0]["ratio"] == "16:9" and Path(rec["crops"][0]["output"]).is_file()


def test_learned_model_and_training_name_the_extra(tmp_path: Path) -> None:
    r = _without_torch("crop", str(PHOTO), "--model", "gaic", "--random-weights")
    assert r.returncode == 2 and "pip install 'opencrop[torch]'" in r.stderr and "Traceback" not in r.stderr
    r = _without_torch("train", str(REPO / "configs" / "gaic_gaicd.yaml"), "--data", str(tmp_path))
    assert r.returncode == 2 and "pip install 'opencrop[torch]'" in r.stderr and "Traceback" not in r.stderr


def test_version() -> None:
    from opencrop import __version__

    r = subprocess.run([sys.executable, "-m", "opencrop", "--version"], capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO / "src"), **_env()}, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"opencrop {__version__}"
