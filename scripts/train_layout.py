"""Train and evaluate the layout model on GAICD v1 (1,036 train / 200 test images), from annotations only.

    PYTHONPATH=src python scripts/train_layout.py [--shared DIR] [--out DIR] [--doc docs/layout.md]

Inputs (``--shared``): GAICD v1 crops + MOS (``gaicd_v1_official_xyxy.json``, ``folder`` = official split), S2CNet's
10 Faster R-CNN object boxes per image and HCIC's human box (339 images). Image sizes are not in these files; they
are estimated from the crops, which are GAIC grid anchors (see :func:`estimate_size`).

Target: MOS z-scored per image. Model: scikit-learn ``HistGradientBoostingRegressor``; hyper-parameters and the
number of trees are picked on a validation split of the *training* images (15 %, seeded); the test images are used
only for the final report. Seeded throughout, so a rerun reproduces the model files and the table.

Writes ``layout_v1.npz`` (geometry + subjects) and ``layout_geometry_v1.npz`` (geometry only) into ``--out`` and the
results table between the ``<!-- results:begin/end -->`` markers of ``--doc``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor

from opencrop.boxes import box_area
from opencrop.layout import FEATURE_NAMES, GEOMETRY_FEATURES, LayoutModel, layout_features

SEED = 0
REPO = Path(__file__).resolve().parents[1]
GRID_BINS = 12


# ---------------------------------------------------------------------------------------------------------------
# data


def estimate_size(crops: np.ndarray, long_side: float = 1024.0) -> tuple[float, float]:
    """Image ``(W, H)`` from its GAIC grid crops ``[N, 4]`` (xyxy pixels).

    Every crop coordinate is a grid-bin centre ``(0.5 + k) · L / 12`` (rounded to an integer), k ∈ {0..3, 8..11}.
    Per axis: start from ``L = 12/11 · (max − min)``, assign each distinct coordinate its bin k, then refit L by
    least squares (three rounds). On GAICD the residuals are ≤ 0.5 px (integer rounding). The long side is then
    snapped to 1,024 px (the released size) when the estimate lies within 2 % of it, with the short side scaled by
    the same factor; otherwise (two small images) the estimates are kept. Sizes are rounded to whole pixels.
    """

    def fit(c: np.ndarray) -> float:
        c = np.unique(c)
        L = (c.max() - c.min()) * GRID_BINS / (GRID_BINS - 1)
        for _ in range(3):
            a = (0.5 + np.round(c * GRID_BINS / L - 0.5)) / GRID_BINS
            L = float((a * c).sum() / (a * a).sum())
        return L

    W = fit(np.r_[crops[:, 0], crops[:, 2]])
    H = fit(np.r_[crops[:, 1], crops[:, 3]])
    big = max(W, H)
    if abs(big / long_side - 1) < 0.02:
        W, H = W * long_side / big, H * long_side / big
    return float(round(W)), float(round(H))


def load_gaicd(root: Path) -> list[dict]:
    """One dict per image: name, folder, W, H, crops [n, 4] xyxy px, mos [n], objects [≤10, 4], human [4] | None."""
    from opencrop.data import load_gaicd as load_records

    recs = load_records(root / "gaicd-annotations" / "gaicd_v1_official_xyxy.json", split="all", source="json",
                        human=root / "hcic-annotations/GAICD/human_bboxes.json",
                        objects=root / "s2cnet-object-boxes/s2cnet_GAIC_object_boxes_xyxy.json")
    out = []
    for r in sorted(recs, key=lambda r: r.name):
        W, H = estimate_size(r.crops)
        ob = r.object_boxes if r.object_boxes is not None else np.zeros((0, 4))
        folder = "test" if r.split == "test" else "train"  # the official 1,036 / 200 split (val is in train)
        out.append(dict(name=r.name, folder=folder, W=W, H=H, crops=np.asarray(r.crops, np.float64),
                        mos=np.asarray(r.scores, np.float64), objects=np.asarray(ob, np.float64).reshape(-1, 4),
                        human=None if r.human_box is None else np.asarray(r.human_box, np.float64)))
    return out


# subject-box variants: (image record, rng) → subjects [S, 4] xyxy px
def subj_objects_human(r: dict, rng: np.random.Generator) -> np.ndarray:
    return r["objects"] if r["human"] is None else np.vstack([r["objects"], r["human"][None]])


def subj_objects(r: dict, rng: np.random.Generator) -> np.ndarray:
    return r["objects"]


def subj_human(r: dict, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((0, 4)) if r["human"] is None else r["human"][None]


def subj_top3(r: dict, rng: np.random.Generator) -> np.ndarray:
    s = subj_objects_human(r, rng)
    return s[np.argsort(-box_area(s), kind="stable")[:3]]


def subj_one_jittered(r: dict, rng: np.random.Generator) -> np.ndarray:
    """The human box, else the largest object box; each side moved by U(−10 %, 10 %) of the box's width / height."""
    s = subj_top3(r, rng)[:1] if r["human"] is None else r["human"][None]
    if len(s) == 0:
        return s
    w, h = s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]
    j = rng.uniform(-0.1, 0.1, (len(s), 4)) * np.stack([w, h, w, h], axis=1)
    return s + j


VARIANTS: dict[str, tuple[str, Callable]] = {
    "objects+human": ("S2CNet object boxes + HCIC human box", subj_objects_human),
    "objects": ("S2CNet object boxes only", subj_objects),
    "human": ("HCIC human box only (339 of 1,236 images; others: no subject)", subj_human),
    "one-jittered": ("one box (human, else largest object), sides jittered ±10 %", subj_one_jittered),
    "top3": ("3 largest boxes of objects+human", subj_top3),
}


def build(recs: list[dict], subj: Callable | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features [R, F], per-image z-scored MOS [R], image index [R] for all crops of ``recs``."""
    rng = np.random.default_rng(SEED)
    X, y, g = [], [], []
    for i, r in enumerate(recs):
        s = subj(r, rng) if subj is not None else None
        X.append(layout_features(r["crops"], r["W"], r["H"], s))
        m = r["mos"]
        y.append((m - m.mean()) / max(m.std(), 1e-6))
        g.append(np.full(len(m), i))
    return np.concatenate(X), np.concatenate(y), np.concatenate(g)


# ---------------------------------------------------------------------------------------------------------------
def gaicd_scores(pred: np.ndarray, recs: list[dict], g: np.ndarray) -> dict[str, float]:
    """SRCC, Acc1/5, Acc4/5, Acc5 (fractions) from :func:`opencrop.eval.metrics.gaicd_metrics` (GAIC §2.5)."""
    from opencrop.eval.metrics import gaicd_metrics

    m = gaicd_metrics([pred[g == i] for i in range(len(recs))], [r["mos"] for r in recs])
    return {"srcc": float(m["srcc"]), "acc1_5": m["acc1_5"] / 100, "acc4_5": m["acc4_5"] / 100,
            "acc5": m["acc5"] / 100}


def area_centre_rule(X: np.ndarray) -> np.ndarray:
    """Baseline: crop area fraction minus the distance of the crop centre to the image centre (normalised)."""
    c = {n: X[:, FEATURE_NAMES.index(n)] for n in ("geo_area", "geo_cx", "geo_cy")}
    return c["geo_area"] - np.hypot(c["geo_cx"], c["geo_cy"])


# ---------------------------------------------------------------------------------------------------------------
# training

# Inference budget: the predictor costs about N × trees × depth gathers, so the search is capped at depth 5 and
# MAX_ITER trees (1,500 boxes in a few ms on a laptop core); deeper / longer ensembles gained < 0.01 validation SRCC.
GRID = [
    dict(learning_rate=lr, max_leaf_nodes=leaves, max_depth=depth, min_samples_leaf=msl, l2_regularization=1.0)
    for lr in (0.1, 0.2)
    for leaves, depth in ((15, 4), (31, 5))
    for msl in (50, 200)
]
MAX_ITER = 120
STAGE = 10


def fit(X: np.ndarray, y: np.ndarray, params: dict, n_iter: int) -> HistGradientBoostingRegressor:
    est = HistGradientBoostingRegressor(max_iter=n_iter, early_stopping=False, random_state=SEED, **params)
    return est.fit(X, y)


def tune(X: np.ndarray, y: np.ndarray, g: np.ndarray, recs: list[dict]) -> tuple[dict, int, float]:
    """Pick params and tree count by mean per-image SRCC on a seeded 15 % image split of the training images."""
    rng = np.random.default_rng(SEED)
    ids = np.unique(g)
    val_ids = rng.choice(ids, size=round(0.15 * len(ids)), replace=False)
    va = np.isin(g, val_ids)
    vrecs = [recs[i] for i in sorted(val_ids)]
    remap = {old: new for new, old in enumerate(sorted(val_ids))}
    gv = np.array([remap[i] for i in g[va]])
    best = (None, 0, -1.0)
    for params in GRID:
        est = fit(X[~va], y[~va], params, MAX_ITER)
        for it, p in enumerate(est.staged_predict(X[va]), start=1):
            if it % STAGE:
                continue
            s = gaicd_scores(p, vrecs, gv)["srcc"]
            if s > best[2]:
                best = (params, it, s)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "opencrop" / "assets")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "layout.md")
    args = ap.parse_args()
    t0 = time.time()

    recs = load_gaicd(args.shared)
    train = [r for r in recs if r["folder"] == "train"]
    test = [r for r in recs if r["folder"] == "test"]
    print(f"{len(train)} train / {len(test)} test images")
    n_geo = len(GEOMETRY_FEATURES)
    rows: list[tuple[str, str, dict]] = []
    models: dict[str, tuple[HistGradientBoostingRegressor, dict, int, float]] = {}

    # baseline (no training)
    Xte0, _, gte0 = build(test, None)
    rows.append(("area+centre rule", "–", gaicd_scores(area_centre_rule(Xte0), test, gte0)))

    # geometry only
    Xtr, ytr, gtr = build(train, None)
    params, n_iter, vs = tune(Xtr[:, :n_geo], ytr, gtr, train)
    est = fit(Xtr[:, :n_geo], ytr, params, n_iter)
    models["geometry"] = (est, params, n_iter, vs)
    rows.append(("geometry only", f"val {vs:.3f}", gaicd_scores(est.predict(Xte0[:, :n_geo]), test, gte0)))
    print(rows[-1], params, n_iter)

    # with subjects: main variant tuned; the same params reused for the robustness variants (trained and tested
    # with that kind of box: "matched"), and the main model also tested on each kind of box ("main model")
    test_sets = {k: build(test, f) for k, (_, f) in VARIANTS.items()}
    main_params = main_iter = None
    for key, (desc, f) in VARIANTS.items():
        Xtr, ytr, gtr = build(train, f)
        if main_params is None:
            main_params, main_iter, vs = tune(Xtr, ytr, gtr, train)
            print("tuned", main_params, main_iter, vs)
        est = fit(Xtr, ytr, main_params, main_iter)
        if key == "objects+human":
            models["layout"] = (est, main_params, main_iter, vs)
        Xte, _, gte = test_sets[key]
        res = gaicd_scores(est.predict(Xte), test, gte)
        main_est = models["layout"][0]
        res["main_model_srcc"] = gaicd_scores(main_est.predict(Xte), test, gte)["srcc"]
        rows.append((f"layout: {desc}", key, res))
        print(rows[-1])

    # export, check equality with sklearn, time inference
    args.out.mkdir(parents=True, exist_ok=True)
    timing = {}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for variant, fname, names in (("layout", "layout_v1.npz", FEATURE_NAMES),
                                  ("geometry", "layout_geometry_v1.npz", GEOMETRY_FEATURES)):
        est, params, n_iter, vs = models[variant]
        meta = json.dumps({"variant": variant, "trained": stamp, "target": "per-image z-scored MOS, GAICD v1 train",
                           "subjects": "S2CNet object boxes + HCIC human box" if variant == "layout" else "none",
                           "params": params, "n_trees": n_iter, "val_srcc": round(vs, 4), "seed": SEED,
                           "sklearn": sklearn.__version__})
        lm = LayoutModel.from_sklearn(est, names, meta)
        path = args.out / fname
        lm.save(path)
        lm = LayoutModel.load(path)
        Xc = test_sets["objects+human"][0][:, : len(names)]
        err = float(np.abs(lm.predict(Xc) - est.predict(Xc)).max())
        Xb = np.resize(Xc, (1500, len(names)))
        lm.predict(Xb)
        ts = []
        for _ in range(30):
            t = time.perf_counter()
            lm.predict(Xb)
            ts.append(time.perf_counter() - t)
        timing[variant] = dict(size_kb=path.stat().st_size / 1024, trees=lm.n_trees, nodes=lm.feature.shape[1],
                               depth=lm.depth, ms=1000 * float(np.median(ts)), max_err=err)
        print(variant, timing[variant])

    write_doc(args.doc, rows, timing, models, stamp, time.time() - t0)


def write_doc(doc: Path, rows, timing, models, stamp: str, secs: float) -> None:
    lines = [
        f"Generated by `scripts/train_layout.py` on {stamp}; machine: {platform.machine()}, "
        f"{platform.processor() or platform.platform()}, Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}; run time {secs:.0f} s.",
        "",
        "GAICD v1 official test split (200 images), per-image metrics averaged over images. \"Matched\": the model is"
        " trained and tested with that kind of subject box. \"Main model\": the committed objects+human model tested"
        " with that kind of box (what inference with weaker boxes looks like).",
        "",
        "| Model / subject boxes | SRCC (matched) | Acc1/5 | Acc4/5 | Acc5 | SRCC, main model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, _, r in rows:
        mm = f"{r['main_model_srcc']:.3f}" if "main_model_srcc" in r else "–"
        lines.append(f"| {name} | {r['srcc']:.3f} | {r['acc1_5']:.3f} | {r['acc4_5']:.3f} | {r['acc5']:.3f} | {mm} |")
    lines += ["", "Chosen on the validation split (15 % of the training images, seed 0):", ""]
    for v, (_, params, n_iter, vs) in models.items():
        lines.append(f"* `{v}`: {n_iter} trees, {json.dumps(params)}, validation SRCC {vs:.3f}")
    lines += ["", "| Model file | Size | Trees | Internal nodes per tree | Depth | 1,500 boxes × all trees | "
              "max abs diff vs sklearn |", "|---|---:|---:|---:|---:|---:|---:|"]
    for v, t in timing.items():
        lines.append(f"| `{'layout_v1.npz' if v == 'layout' else 'layout_geometry_v1.npz'}` | {t['size_kb']:.0f} KB | "
                     f"{t['trees']} | {t['nodes']} | {t['depth']} | {t['ms']:.2f} ms | {t['max_err']:.1e} |")
    block = "\n".join(lines)
    text = doc.read_text() if doc.exists() else "<!-- results:begin -->\n<!-- results:end -->\n"
    a, b = text.index("<!-- results:begin -->"), text.index("<!-- results:end -->")
    doc.write_text(text[: a + len("<!-- results:begin -->")] + "\n" + block + "\n" + text[b:])
    print(block)


if __name__ == "__main__":
    main()
