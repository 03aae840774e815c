"""``--device`` parsing (opencrop.nn.device): usable devices pass, everything else is a ValueError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from opencrop.cli import main
from opencrop.nn.device import resolve_device


def test_cpu_and_default() -> None:
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(" CPU ")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu", "cuda:-1", "12"])
def test_not_a_device(spec: str) -> None:
    with pytest.raises(ValueError, match=f"device '{spec}'"):
        resolve_device(spec)


def test_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_cuda_index_beyond_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"only 2 CUDA device\(s\)"):
        resolve_device("cuda:7")


def test_train_cli_bad_device_is_a_usage_error(tmp_path, capsys) -> None:
    recipe = Path(__file__).resolve().parents[2] / "configs" / "gaic_gaicd.yaml"
    assert main(["train", str(recipe), "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--device", "tpu"]) == 2
    assert "device 'tpu'" in capsys.readouterr().err
