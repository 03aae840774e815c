"""``opencrop serve``: usage errors exit 2 with a clear message; SIGTERM drains requests in flight, then exits 0."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import httpx

from opencrop.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "99999"], "invalid port 99999: must be from 0 to 65535"),
    (["--port", "http"], "invalid port 'http'"),
    (["--workers", "0"], "--workers: invalid value '0': must be at least 1"),
    (["--timeout", "-1"], "--timeout: invalid value '-1'"),
    (["--max-body-mb", "lots"], "--max-body-mb: invalid value 'lots'"),
    (["--model", "nosuch"], "--model 'nosuch': unknown model; registered:"),
    (["--cues", "faces,ears"], "unknown cue(s) ['ears']"),
    (["-m", "composition", "-m", "baseline-center", "--weights", "w.pt"], "write MODEL=PATH"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_usage_errors_exit_2(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "usage: opencrop" in err and "Traceback" not in err


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn → ImportError
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "needs uvicorn, which is not installed: pip install 'opencrop[serve]'" in err


def test_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port), "--no-cues"]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_sigterm_finishes_the_request_in_flight_then_exits_0() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "opencrop", "serve", "--port", "0", "--workers", "1", "--no-cues"],
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while not any("opencrop serving" in x for x in lines):
            line = proc.stderr.readline()
            assert line, f"the server exited early: {''.join(lines)}"
            lines.append(line)
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
        url = next(x for x in lines if "opencrop serving" in x).split(" on ")[1].split("/ ")[0]
        pids = httpx.get(f"{url}/healthz").json()["pool"]["pids"]
        buf = io.BytesIO()
        # large enough that a 2000x2000 output is no upscale (refused by default); smooth, so the upload is small
        ramp = np.linspace(0, 255, 2100, dtype=np.float64)
        across, down = ramp[None, :].repeat(2100, 0), ramp[:, None].repeat(2100, 1)
        pic = np.stack([across, down, 255 - across], 2)
        Image.fromarray(pic.astype(np.uint8)).save(buf, "PNG")
        answer: list[httpx.Response] = []
        t = threading.Thread(target=lambda: answer.append(httpx.post(
            f"{url}/crop?ratio=1:1&size=2000x2000&format=png", content=buf.getvalue(), timeout=60)))
        t.start()
        end = time.monotonic() + 10
        while httpx.get(f"{url}/healthz").json()["pool"]["busy"] == 0 and time.monotonic() < end:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert proc.wait(30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer and answer[0].status_code == 200, "".join(lines)
    assert Image.open(io.BytesIO(answer[0].content)).size == (2000, 2000)
    time.sleep(0.1)
    assert any("opencrop serve: stopped" in x for x in lines)
    for pid in pids:  # the worker processes are gone too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_model_the_workers_cannot_load_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "-m", "gaic", "--weights", "/nonexistent/w.pt", "--workers", "1",
                 "--no-cues"]) == 1
    err = capsys.readouterr().err
    assert "a worker could not load its models: ModelFileError: /nonexistent/w.pt: no such weight file" in err


def test_a_learned_model_without_weights_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "-m", "gaic", "--workers", "1", "--no-cues"]) == 2
    assert "UntrainedModelError: model 'gaic' has no trained weights" in capsys.readouterr().err
