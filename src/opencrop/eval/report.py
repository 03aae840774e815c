"""Text tables: the paper's layout with the published rows (:mod:`opencrop.eval.paper_numbers`) and ours."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table"]

_HEAD = {
    "srcc": "SRCC",
    "pcc": "PCC",
    "acc5": "Acc5",
    "acc10": "Acc10",
    "iou": "IoU",
    "bde": "BDE",
    "disp": "Disp",
    "recall75": "R@.75",
}
_SCORED_COLS = [
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
    "wacc5",
    "wacc10",
]
_GT_COLS = ["iou", "bde", "recall75"]


def _head(c: str) -> str:
    if c in _HEAD:
        return _HEAD[c]
    if c.startswith("wacc"):
        return "Accw" + c[4:].replace("_", "/")
    return "Acc" + c[3:].replace("_", "/")


def _fmt(c: str, v: Any) -> str:
    if v is None:
        return "–"
    if c.startswith(("acc", "wacc")):
        return f"{v:.1f}"
    return f"{v:.4f}" if c in ("iou", "bde", "disp", "recall75") else f"{v:.3f}"


def format_table(
    protocol: str, ours_label: str, metrics: dict[str, float], paper: dict[str, Any] | None, title: str
) -> str:
    """Render one table: header, the paper rows (``paper`` = a :data:`PAPER_TABLES` entry or ``None``), then ours.

    Columns: the paper table's columns plus any we computed (GAICD: Acc_{K/N}, Acc5/10, Acc_w; IoU/BDE/recall).
    """
    base = _SCORED_COLS if protocol == "scored" else _GT_COLS
    cols = list(paper["columns"]) if paper else []
    cols += [c for c in base if c not in cols]
    rows: list[tuple[str, dict[str, Any]]] = []
    if paper:
        rows += [(f"paper: {r['label']}", r["values"]) for r in paper["rows"]]
    rows.append((f"ours: {ours_label}", metrics))
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(_head(c)), 7) for c in cols]
    lines = [title, "  ".join([" " * w0] + [_head(c).rjust(w) for c, w in zip(cols, widths, strict=True)])]
    for label, vals in rows:
        cells = [_fmt(c, vals.get(c)).rjust(w) for c, w in zip(cols, widths, strict=True)]
        lines.append("  ".join([label.ljust(w0), *cells]))
    if paper and paper.get("missing"):
        lines.append(f"note: {paper['missing']}")
    n_img = metrics.get("n_images")
    if metrics.get("n_undefined_corr"):
        lines.append(f"note: ours: {metrics['n_undefined_corr']} of {n_img} images have an undefined SRCC / PCC "
                     "(constant predictions or MOS); by default, as in the official code, the mean is then NaN")
    if metrics.get("n_few_crops"):
        lines.append(f"note: ours: {metrics['n_few_crops']} of {n_img} images have fewer than 10 crops "
                     "(outside the official evaluator; their N-th best MOS is their worst)")
    if paper:
        lines.append(
            "paper sources: " + "; ".join(sorted({r["source"] for r in paper["rows"]}))
            if paper["rows"]
            else "paper sources: none published"
        )
    else:
        lines.append("paper: no published numbers for this dataset / subset in any material available to us")
    return "\n".join(lines)
