"""Checkpoint files (opencrop.models.checkpoint): digest on save, damaged / truncated files as typed errors,
``weights_source`` set by every loading path, re-exports kept for the old import paths."""

from __future__ import annotations

import pytest
import torch
from test_learned import _Toy

from opencrop.errors import ModelFileError
from opencrop.models import checkpoint as ckpt_mod
from opencrop.models.checkpoint import (
    build_with_weights,
    load_checkpoint_file,
    save_atomic,
    state_digest,
)


class _Buildable(_Toy):
    """``_Toy`` rebuilt from its saved config, as a registry builder does."""

    def __init__(self, width: int = 4, pretrained_backbone: bool = False) -> None:
        super().__init__()


def _saved(tmp_path, name: str = "toy.pt"):
    torch.manual_seed(0)
    model = _Toy()
    return model, model.save_weights(tmp_path / name)


def test_saved_file_carries_the_digest_of_its_weights(tmp_path):
    model, path = _saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["model_sha256"] == state_digest(model.state_dict()) and len(raw["model_sha256"]) == 64
    assert load_checkpoint_file(path)["config"] == {"name": "toy", "width": 4}
    # the digest depends on values, names, dtypes and shapes, not on how the dict was built
    sd = model.state_dict()
    assert state_digest(dict(reversed(list(sd.items())))) == state_digest(sd)
    changed = {**sd, "fc.bias": sd["fc.bias"] + 1e-6}
    assert state_digest(changed) != state_digest(sd)
    assert state_digest({**sd, "fc.bias": sd["fc.bias"].double()}) != state_digest(sd)
    assert state_digest({"renamed": sd["fc.bias"]}) != state_digest({"fc.bias": sd["fc.bias"]})


def test_one_flipped_byte_inside_a_tensor_is_a_model_file_error(tmp_path):
    """torch.load itself accepts this file and returns wrong weights; the recorded digest catches it."""
    model, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    w = model.conv.weight.detach().contiguous().numpy().tobytes()
    at = bytes(data).find(w[:64])
    assert at > 0
    data[at + 8] ^= 0xFF
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    torch.load(bad, weights_only=True)  # no complaint from torch
    with pytest.raises(ModelFileError, match=r"flipped\.pt: damaged") as e:
        _Toy().load_weights(bad)
    assert e.value.source == str(bad)


def test_truncated_file_is_a_model_file_error(tmp_path):
    _, path = _saved(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"cut\.pt: cannot read .*truncated"):
        load_checkpoint_file(cut)
    with pytest.raises(ModelFileError, match=r"cut\.pt"):
        build_with_weights(_Buildable, cut)


def test_file_without_digest_still_loads(tmp_path):
    """Model files written before checksums existed (and hand-made ones) have no ``model_sha256``."""
    model, _ = _saved(tmp_path)
    torch.save(model.checkpoint(), tmp_path / "old.pt")
    assert "model_sha256" not in torch.load(tmp_path / "old.pt", weights_only=True)
    other = _Toy()
    other.load_weights(tmp_path / "old.pt")
    assert torch.equal(other.fc.weight, model.fc.weight)


def test_save_atomic_digests_only_checkpoint_dicts_and_does_not_touch_the_callers_dict(tmp_path):
    obj = {"model": {"w": torch.arange(3.0)}, "epoch": 1}
    save_atomic(obj, tmp_path / "run.pt")
    assert "model_sha256" not in obj
    assert torch.load(tmp_path / "run.pt", weights_only=True)["model_sha256"] == state_digest(obj["model"])
    save_atomic([1, 2], tmp_path / "list.pt")
    assert torch.load(tmp_path / "list.pt", weights_only=True) == [1, 2]


def test_weights_source_records_what_was_loaded(tmp_path):
    _, path = _saved(tmp_path)
    assert build_with_weights(_Buildable, None).weights_source is None  # random initialisation
    built = build_with_weights(_Buildable, path)
    assert built.weights_source == str(path) and not built.training
    fresh = _Toy()
    assert fresh.weights_source is None
    fresh.load_weights(path)
    assert fresh.weights_source == str(path)


def test_old_import_paths_still_work():
    from opencrop.models import learned
    from opencrop.nn import losses as nn_losses
    from opencrop.train import losses as train_losses
    from opencrop.train import trainer

    assert trainer.save_atomic is ckpt_mod.save_atomic
    assert learned.build_with_weights is ckpt_mod.build_with_weights
    assert learned.load_checkpoint_file is ckpt_mod.load_checkpoint_file
    assert learned.opencrop_version is ckpt_mod.opencrop_version
    assert train_losses.mos_smooth_l1 is nn_losses.mos_smooth_l1 and train_losses.GAIC_MOS_MEAN == 2.95
