"""Verify a user's dataset download: counts per split, missing image files, malformed annotations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["CheckReport", "check_dataset"]


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is True when there are no problems and no missing images."""

    fmt: str
    root: Path
    counts: dict[str, int] = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.missing_images

    def format(self, max_list: int = 10) -> str:
        """Human-readable summary (one fact per line)."""
        lines = [f"{self.fmt} dataset at {self.root}"]
        total = sum(self.counts.values())
        lines.append(
            f"  images annotated: {total}"
            + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) + ")" if self.counts else "")
        )
        if self.missing_images:
            lines.append(f"  missing image files: {len(self.missing_images)}")
            lines += [f"    {p}" for p in self.missing_images[:max_list]]
            if len(self.missing_images) > max_list:
                lines.append(f"    … and {len(self.missing_images) - max_list} more")
        for p in self.problems[:max_list]:
            lines.append(f"  problem: {p}")
        if len(self.problems) > max_list:
            lines.append(f"  … and {len(self.problems) - max_list} more problems")
        lines.append("  OK" if self.ok else "  NOT OK")
        return "\n".join(lines)


def _box_problems(r: CropRecord) -> list[str]:
    out = []
    if r.width is None or r.height is None:
        return out
    for what, b in (("crop", r.crops), ("ground-truth crop", r.gt_crops)):
        if b is None or len(b) == 0:
            continue
        b = np.asarray(b)
        outside = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > r.width + 1) | (b[:, 3] > r.height + 1)
        if outside.any():
            out.append(f"{r.name}: {int(outside.sum())} {what}(s) exceed the {r.width}×{r.height} image")
    return out


def check_dataset(fmt: str, root: str | Path) -> CheckReport:
    """Load every split of ``root`` as format ``fmt`` and report counts, missing images and malformed files.

    GAICD raw ``.txt`` annotations are checked file by file so that every malformed file is reported, not only
    the first.
    """
    from opencrop.data.registry import _canon, get_loader

    fmt = _canon(fmt)
    root = Path(root)
    rep = CheckReport(fmt, root)
    if not root.exists():
        rep.problems.append(f"{root}: no such file or folder")
        return rep
    if fmt == "gaicd" and (root / "annotations").is_dir():
        from opencrop.data.gaicd import parse_gaicd_txt

        for f in sorted((root / "annotations").rglob("*.txt")):
            try:
                parse_gaicd_txt(f)
            except DataFormatError as e:
                rep.problems.append(str(e))
        if rep.problems:  # report every bad file, then stop: the loader would fail on the first
            return rep
    loader = get_loader(fmt)
    kwargs = {"split": "all"} if fmt not in ("flms-design",) else {}
    try:
        records = loader(root, **kwargs)
    except DataFormatError as e:
        rep.problems.append(str(e))
        return rep
    except ValueError as e:
        rep.problems.append(f"{root}: {e}")
        return rep
    rep.counts = dict(Counter(r.split or "all" for r in records))
    if not records:
        rep.problems.append(f"{root}: no annotated images found")
    no_dir = [r for r in records if r.image_path is None]
    if no_dir:
        rep.problems.append(f"{root}: no image folder found (expected images/ or image/ next to the annotations)")
    rep.missing_images = sorted(
        {str(r.image_path) for r in records if r.image_path is not None and not Path(r.image_path).is_file()}
    )
    for r in records:
        rep.problems += _box_problems(r)
    return rep
