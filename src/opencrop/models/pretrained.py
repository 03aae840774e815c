"""Pretrained tags of the crop models: released trained weights, registered with :mod:`opencrop.modelfiles`.

A tag is ``arch.tag`` (timm's convention): ``create_model("gaic.mobilenet_v2_gaicd_v1")`` builds ``gaic`` from the
tag's weight file, which :func:`opencrop.modelfiles.resolve` finds (explicit path → ``$OPENCROP_MODEL_<TAG>`` → the
opencrop cache). None of these files can be downloaded by opencrop (systems.md §2.7, §10): the user gets the
released file and converts it into the cache with ``opencrop weights import <tag> FILE``; a missing file is a
:class:`~opencrop.errors.ModelFileError` that says so.

Torch-free (only descriptions), so listing tags never imports torch. Tags are registered in the order below; an
architecture's first tag is its default for ``create_model(arch, pretrained=True)``.
"""

from __future__ import annotations

import fnmatch

from opencrop.modelfiles import ModelFile, list_files, register_file

__all__ = ["TAGS", "default_tag", "list_pretrained"]

_LLD533 = "lld533/Grid-Anchor-based-Image-Cropping-Pytorch"
_GAIC_LICENCE = "MIT (the LICENSE of the lld533 repository, which commits the file; GAICD has its own terms)"


def _gaic(tag: str, backbone: str, upstream: str, metrics: tuple[float, ...]) -> ModelFile:
    """A released lld533 GAIC checkpoint; its file name carries its GAICD v1 test metrics (systems.md §2.7)."""
    names = [f"acc{k}_{n}" for n in (5, 10) for k in (1, 2, 3, 4)]
    published = {**{m: round(100 * v, 1) for m, v in zip(names, metrics[:8], strict=True)},
                 "srcc": metrics[8], "pcc": metrics[9]}
    name = f"gaic.{tag}"
    return ModelFile(
        name=name,
        filename=f"{name}.pt",
        kind="crop-model",
        model="gaic",
        config={"backbone": backbone},
        licence=_GAIC_LICENCE,
        dataset="GAICD v1",
        published=published,
        origin=f"{_LLD533} pretrained_model/{upstream}",
        obtain=(f"Get {upstream} from {_LLD533} (pretrained_model/, a large file) and run "
                f"`opencrop weights import {name} {upstream}` (it writes the cache file named above)."),
        description=f"GAIC {backbone} multi-scale, trained on GAICD v1 by lld533 (converted to opencrop's layout)",
        notes="published metrics are those in the upstream file name (GAICD v1 test set); not re-measured here",
    )


#: every tag, in registration order
TAGS: tuple[ModelFile, ...] = (
    _gaic("mobilenet_v2_gaicd_v1", "mobilenet_v2",
          "mobilenet_0.625_0.583_0.553_0.525_0.785_0.762_0.748_0.723_0.783_0.806.pth",
          (0.625, 0.583, 0.553, 0.525, 0.785, 0.762, 0.748, 0.723, 0.783, 0.806)),
    _gaic("shufflenet_v2_gaicd_v1", "shufflenet_v2",
          "shufflenet_0.615_0.568_0.548_0.520_0.785_0.755_0.738_0.713_0.774_0.801.pth",
          (0.615, 0.568, 0.548, 0.520, 0.785, 0.755, 0.738, 0.713, 0.774, 0.801)),
)
for _mf in TAGS:
    register_file(_mf)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Registered pretrained tags (``arch.tag``) matching an fnmatch ``pattern``, sorted."""
    return sorted(mf.name for mf in list_files("crop-model") if fnmatch.fnmatch(mf.name, pattern))


def default_tag(arch: str) -> str | None:
    """The first registered tag of architecture ``arch`` (what ``pretrained=True`` loads), or ``None``."""
    return next((mf.name for mf in TAGS if mf.model == arch), None)
