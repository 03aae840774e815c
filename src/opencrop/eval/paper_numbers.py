"""Published numbers that ``opencrop eval`` prints beside its own (systems.md §13), as data.

Accuracies in percent; SRCC / PCC, IoU and BDE (= mean Disp / 4) as fractions; ``None`` = not published in the
source. Every row carries its source marker; ``missing`` says which tables could not be transcribed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAPER_TABLES", "paper_table"]

PAPER_TABLES: dict[str, dict[str, Any]] = {
    "gaicd": {
        "title": "GAICD v1 test (200 images)",
        "columns": [
            "srcc",
            "pcc",
            "acc1_5",
            "acc2_5",
            "acc3_5",
            "acc4_5",
            "acc1_10",
            "acc2_10",
            "acc3_10",
            "acc4_10",
            "acc5",
            "acc10",
        ],
        "rows": [
            {
                "system": "gaic",
                "label": "GAIC VGG16 (paper)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/GAIC-Pytorch, Paper rows)",
                "values": {"srcc": 0.777, "pcc": 0.8, "acc1_5": 60.5, "acc4_5": 50.2, "acc1_10": 77.5, "acc4_10": 70.6},
            },
            {
                "system": "gaic",
                "label": "GAIC MobileNetV2 (paper = released .pth)",
                "source": "confirmed from the authors' repository/README; cross-checked with lld533 weight file names",
                "values": {
                    "srcc": 0.783,
                    "pcc": 0.806,
                    "acc1_5": 62.5,
                    "acc2_5": 58.3,
                    "acc3_5": 55.3,
                    "acc4_5": 52.5,
                    "acc1_10": 78.5,
                    "acc2_10": 76.2,
                    "acc3_10": 74.8,
                    "acc4_10": 72.3,
                    "acc5": 57.2,
                    "acc10": 75.5,
                },
            },
            {
                "system": "gaic",
                "label": "GAIC ShuffleNetV2 (paper = released .pth)",
                "source": "confirmed from the authors' repository/README; cross-checked with lld533 weight file names",
                "values": {
                    "srcc": 0.774,
                    "pcc": 0.801,
                    "acc1_5": 61.5,
                    "acc2_5": 56.8,
                    "acc3_5": 54.8,
                    "acc4_5": 52.0,
                    "acc1_10": 78.5,
                    "acc2_10": 75.5,
                    "acc3_10": 73.8,
                    "acc4_10": 71.3,
                    "acc5": 56.3,
                    "acc10": 74.8,
                },
            },
            {
                "system": "gaic",
                "label": "GAIC VGG16 (bo-zhang re-impl.)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/GAIC-Pytorch)",
                "values": {
                    "srcc": 0.778,
                    "pcc": 0.808,
                    "acc5": 54.8,
                    "acc1_5": 60.0,
                    "acc4_5": 51.6,
                    "acc10": 73.3,
                    "acc1_10": 77.5,
                    "acc4_10": 69.9,
                },
            },
            {
                "system": "gaic",
                "label": "GAIC MobileNetV2 (bo-zhang re-impl.)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/GAIC-Pytorch)",
                "values": {
                    "srcc": 0.783,
                    "pcc": 0.81,
                    "acc5": 58.0,
                    "acc1_5": 62.5,
                    "acc4_5": 53.0,
                    "acc10": 74.2,
                    "acc1_10": 80.0,
                    "acc4_10": 72.0,
                },
            },
            {
                "system": "gaic",
                "label": "GAIC ShuffleNetV2 (bo-zhang re-impl.)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/GAIC-Pytorch)",
                "values": {
                    "srcc": 0.787,
                    "pcc": 0.811,
                    "acc5": 55.4,
                    "acc1_5": 62.0,
                    "acc4_5": 50.0,
                    "acc10": 73.4,
                    "acc1_10": 78.0,
                    "acc4_10": 69.6,
                },
            },
            {
                "system": "cgs",
                "label": "CGS (CVPR'20, context)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/CGS-Pytorch)",
                "values": {"srcc": 0.795, "acc5": 59.7, "acc10": 77.8},
            },
        ],
        "missing": "HCIC, S2CNet, Rethinking and GAFIC GAICD numbers: not published in any material available "
        "to us (systems.md 13.3-13.6).",
    },
    "flms": {
        "title": "FLMS (500 images)",
        "columns": ["iou", "bde"],
        "rows": [
            {
                "system": "cgs",
                "label": "CGS (CVPR'20, context)",
                "source": "confirmed from the authors' repository/README (bo-zhang-cs/CGS-Pytorch)",
                "values": {"iou": 0.836, "bde": 0.039},
            }
        ],
        "missing": "HCIC and Rethinking FLMS numbers: not published in any material available to us.",
    },
    "flms+fcdb-human": {
        "title": "FLMS + FCDB human subset (215 images)",
        "columns": ["iou", "bde"],
        "rows": [
            {
                "system": "vfn",
                "label": "VFN (reference)",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.5783, "bde": 0.1114},
            },
            {
                "system": "gencrop",
                "label": "GenCrop",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7334, "bde": 0.0687},
            },
            {
                "system": "gencrop",
                "label": "GenCrop w/o subject boundary loss",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7145, "bde": 0.0724},
            },
            {
                "system": "gencrop",
                "label": "GenCrop w/o subject information",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7202, "bde": 0.0714},
            },
        ],
    },
    "sacd": {
        "title": "SACD",
        "columns": ["iou", "bde"],
        "rows": [
            {
                "system": "vfn",
                "label": "VFN (reference)",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.6555, "bde": 0.0775},
            },
            {
                "system": "gencrop",
                "label": "GenCrop",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7301, "bde": 0.0632},
            },
            {
                "system": "gencrop",
                "label": "GenCrop w/o subject boundary loss",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7207, "bde": 0.0653},
            },
            {
                "system": "gencrop",
                "label": "GenCrop w/o subject information",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary); Disp cut "
                "off in the source",
                "values": {"iou": 0.7105, "bde": None},
            },
        ],
    },
    "gencrop": {
        "title": "Unsplash Portrait1K",
        "columns": ["iou", "bde"],
        "rows": [
            {
                "system": "vfn",
                "label": "VFN (reference)",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.6222, "bde": 0.0948},
            },
            {
                "system": "gencrop",
                "label": "GenCrop",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7501, "bde": 0.0612},
            },
            {
                "system": "gencrop",
                "label": "GenCrop w/o subject boundary loss",
                "source": "confirmed from the published paper material (GenCrop arXiv supplementary)",
                "values": {"iou": 0.7458, "bde": 0.0615},
            },
        ],
    },
    "fcdb": {
        "title": "FCDB test",
        "columns": ["iou", "bde"],
        "rows": [],
        "missing": "HCIC / GenCrop FCDB numbers: not published in any material available to us.",
    },
    "cpc": {
        "title": "CPC",
        "columns": ["srcc", "acc5", "acc10"],
        "rows": [],
        "missing": "No CPC numbers in any material available to us.",
    },
}

#: dataset format (+ subset) → table key
_TABLE_FOR = {
    ("gaicd", None): "gaicd",
    ("flms", None): "flms",
    ("fcdb", None): "fcdb",
    ("flms", "human"): "flms+fcdb-human",
    ("fcdb", "human"): "flms+fcdb-human",
    ("sacd", None): "sacd",
    ("gencrop", None): "gencrop",
    ("cpc", None): "cpc",
}


def paper_table(fmt: str, subset: str | None = None) -> dict[str, Any] | None:
    """The reference table for a dataset format and subset, or ``None`` when nothing is published."""
    key = _TABLE_FOR.get((fmt, subset if subset not in ("all", "full") else None))
    return PAPER_TABLES.get(key) if key else None  # no fallback: a subset never shows full-set numbers
