"""Pretrained tags: create_model("gaic.<tag>") through the one resolver, the not-found error, weights import."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_gaic import _fake_state, released_mobilenet_keys

from opencrop import cli, modelfiles
from opencrop.candidates import gaic_grid
from opencrop.errors import ModelFileError
from opencrop.eval.metrics import gaicd_metrics
from opencrop.models import create_model, list_models, list_pretrained
from opencrop.models.gaic import GAIC, default_cfgs

MBV2 = "gaic.mobilenet_v2_gaicd_v1"
SNV2 = "gaic.shufflenet_v2_gaicd_v1"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty opencrop cache and no OPENCROP_MODEL_* variables for the tags."""
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path / "cache"))
    for tag in list_pretrained():
        monkeypatch.delenv(modelfiles.get_file(tag).env_var, raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A file laid out like lld533's released MobileNetV2 GAIC checkpoint (random values)."""
    path = tmp_path_factory.mktemp("released") / "mobilenet_released.pth"
    torch.save(_fake_state(released_mobilenet_keys()), path)
    return path


def test_tags_are_described_once_and_build():
    assert list_models(pretrained=True) == list_pretrained() == [MBV2, SNV2]
    assert set(default_cfgs) == {MBV2, SNV2}
    metric_names = set(gaicd_metrics([np.array([1.0, 2.0, 3.0, 4.0])], [np.array([1.0, 3.0, 2.0, 4.0])]))
    for tag, mf in default_cfgs.items():
        assert mf is modelfiles.get_file(tag) and mf.kind == "crop-model" and mf.model == "gaic"
        assert mf.filename == f"{tag}.pt" and mf.sha256 is None and mf.source == "user-supplied"
        assert mf.licence.startswith("MIT") and mf.dataset == "GAICD v1" and mf.origin.endswith(".pth")
        assert set(mf.published) <= metric_names and 50 < mf.published["acc1_5"] < 70  # percent, as opencrop's
        assert GAIC(**mf.config).config["backbone"] == mf.config["backbone"]


def test_missing_tag_file_names_tag_file_places_env_var_and_import(cache):
    for call in (lambda: create_model(MBV2), lambda: create_model("gaic", pretrained=True),
                 lambda: create_model("gaic", weights=MBV2)):
        with pytest.raises(ModelFileError) as e:
            call()
        msg = str(e.value)
        assert f"{MBV2}.pt" in msg and MBV2 in msg and str(cache) in msg
        assert "$OPENCROP_MODEL_GAIC_MOBILENET_V2_GAICD_V1" in msg
        assert f"opencrop weights import {MBV2} mobilenet_0.625_" in msg


def test_tag_file_from_cache_or_env_var(cache, tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = GAIC()
    trained.save_weights(cache / f"{MBV2}.pt")
    m = create_model(MBV2)
    assert isinstance(m, GAIC) and m.weights_source == MBV2 and not m.training
    for k, v in trained.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k
    assert create_model("gaic", pretrained=True).weights_source == MBV2  # the architecture's default tag
    # the untrained paths stay untrained, and say so
    assert create_model("gaic").weights_source is None
    untrained = create_model(SNV2, pretrained=False)
    assert untrained.config["backbone"] == "shufflenet_v2" and untrained.weights_source is None
    # an environment variable beats the cache; pointing it at nothing is an error, not a fall-through
    env_file = trained.save_weights(tmp_path / "elsewhere.pt")
    monkeypatch.setenv("OPENCROP_MODEL_GAIC_MOBILENET_V2_GAICD_V1", str(env_file))
    assert modelfiles.resolve(MBV2) == env_file and create_model(MBV2).weights_source == MBV2
    monkeypatch.setenv("OPENCROP_MODEL_GAIC_MOBILENET_V2_GAICD_V1", str(tmp_path / "gone.pt"))
    with pytest.raises(ModelFileError, match=r"gone\.pt: \$OPENCROP_MODEL_GAIC_MOBILENET_V2_GAICD_V1 points to a"):
        create_model(MBV2)


def test_tag_misuse_is_a_clear_error(cache, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        create_model("gaic", pretrained=True, weights=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not both"):
        create_model(MBV2, weights=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="'hcic' has no pretrained tags"):
        create_model("hcic", pretrained=True)
    with pytest.raises(KeyError, match=f"Did you mean {MBV2}"):
        create_model("gaic.mobilenet_v2_gaicd_v2")
    with pytest.raises(ModelFileError, match=f"nor a pretrained tag of gaic .*{MBV2}"):
        create_model("gaic", weights="gaic.mobilenet_v2_gaicd")


def test_weights_import_of_a_tag_writes_the_cache_file(cache, released, capsys):
    assert cli.main(["weights", "import", MBV2, str(released)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert str(cache / f"{MBV2}.pt") in out and f"create_model('{MBV2}')" in out
    assert modelfiles.locate(MBV2) == ("cache", cache / f"{MBV2}.pt")
    m = create_model(MBV2)
    assert m.weights_source == MBV2 and m.config["backbone"] == "mobilenet_v2"
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    scores = m.score(m.prepare(img), gaic_grid(300, 200))
    assert np.isfinite(scores).all() and scores.std() > 0
    # listed as present
    assert cli.main(["models", "list", "--json"]) == 0
    import json

    gaic = next(x for x in json.loads(capsys.readouterr().out)["crop_models"] if x["name"] == "gaic")
    assert [t["present"] for t in gaic["tags"]] == [True, False]


def test_weights_import_usage_errors(cache, released, capsys, tmp_path):
    assert cli.main(["weights", "import", MBV2, str(released), "--backbone", "shufflenet_v2"]) == 2
    assert "mobilenet_v2 model" in capsys.readouterr().err
    assert cli.main(["weights", "import", "gaic", str(released)]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert cli.main(["weights", "import", "hcic", str(released), "--out", str(tmp_path / "x.pt")]) == 2
    # the wrong backbone for the released file: a failed input, nothing written to the cache
    assert cli.main(["weights", "import", SNV2, str(released)]) == 1
    assert "backbone" in capsys.readouterr().err and not (cache / f"{SNV2}.pt").exists()


def test_models_fetch_of_a_tag_explains_the_import(cache, capsys):
    assert cli.main(["models", "fetch", MBV2]) == 1
    err = capsys.readouterr().err
    assert "no fetch source" in err and f"opencrop weights import {MBV2}" in err
