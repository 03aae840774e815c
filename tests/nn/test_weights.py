"""Backbone weight resolution: search order, verification, no download unless opted in."""

from __future__ import annotations

import urllib.request

import pytest
import torch

from opencrop.errors import ModelFileError
from opencrop.modelfiles import get_file, sha256_of
from opencrop.nn import create_backbone, resolve_weights
from opencrop.nn.weights import WEIGHTS


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("OPENCROP_ALLOW_DOWNLOAD", raising=False)
    for e in WEIGHTS.values():
        monkeypatch.delenv(e.env_var, raising=False)

    def no_network(*a, **k):
        raise AssertionError("tests must not download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def test_registered_files_have_licences_and_digests():
    for name in ("mobilenet_v2-imagenet", "efficientnet_lite0-imagenet"):
        mf = get_file(name)
        assert len(mf.sha256) == 64 and mf.size > 1_000_000 and mf.licence
        assert "~/.cache/torch/hub/checkpoints" in mf.extra_dirs
    assert get_file("efficientnet_lite0-imagenet").licence == "Apache-2.0"
    assert "BSD-3" in get_file("mobilenet_v2-imagenet").licence


def test_missing_torchvision_file_names_places_and_does_not_download(env):
    with pytest.raises(ModelFileError, match="OPENCROP_ALLOW_DOWNLOAD") as ei:
        resolve_weights("vgg16-imagenet")
    assert "vgg16-397923af.pth" in str(ei.value) and "hub" in str(ei.value)


def test_torch_hub_cache_is_searched_and_prefix_checked(env):
    hub = env / "home" / ".cache" / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    bad = hub / "shufflenetv2_x0.5-f707e7126e.pth"
    torch.save(create_backbone("shufflenet_v2_x0_5").state_dict(), bad)
    with pytest.raises(ModelFileError, match="sha256"):
        resolve_weights("shufflenet_v2_x0_5-imagenet")
    # a file whose name carries its own sha256 prefix is accepted (same rule torch.hub applies)
    entry = WEIGHTS["shufflenet_v2_x0_5-imagenet"]
    monkeypatch_prefix = sha256_of(bad)[:10]
    good = hub / f"shufflenetv2_x0.5-{monkeypatch_prefix}.pth"
    bad.rename(good)
    object.__setattr__(entry, "filename", good.name)  # frozen dataclass: patch for this test only
    try:
        assert resolve_weights("shufflenet_v2_x0_5-imagenet") == good
        bb = create_backbone("shufflenet_v2_x0_5", pretrained=True)
        assert bb.feature_info.channels() == [48, 96, 192]
    finally:
        object.__setattr__(entry, "filename", "shufflenetv2_x0.5-f707e7126e.pth")


def test_env_var_and_explicit_path(env, monkeypatch):
    p = env / "mine.pth"
    torch.save(create_backbone("vgg16").state_dict(), p)
    monkeypatch.setenv(WEIGHTS["vgg16-imagenet"].env_var, str(p))
    assert resolve_weights("vgg16-imagenet") == p
    assert resolve_weights("vgg16-imagenet", env / "mine.pth") == p
    with pytest.raises(ModelFileError, match="not found"):
        resolve_weights("vgg16-imagenet", env / "nope.pth")
    with pytest.raises(KeyError):
        resolve_weights("alexnet-imagenet")


def test_corrupt_cache_copy_of_registered_file_is_rejected(env):
    cache = env / "cache"
    cache.mkdir()
    (cache / "mobilenet_v2-b0353104.pth").write_bytes(b"corrupt")
    with pytest.raises(ModelFileError, match="sha256"):
        resolve_weights("mobilenet_v2-imagenet")
