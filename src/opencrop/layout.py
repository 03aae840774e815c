"""Layout model: crop geometry + the crop's relation to the image's subject boxes → a crop-quality score.

Features (:func:`layout_features`) describe each candidate crop's geometry and how it treats the image's
subjects (object / person boxes). A gradient-boosted tree ensemble, trained on GAICD v1's human judgments
(``scripts/train_layout.py``, target = MOS z-scored per image), maps them to a score; :class:`LayoutModel`
evaluates the exported trees in pure NumPy, all trees and all rows at once.

Box convention: inputs are **xyxy float pixels** of a ``width × height`` image; inside this module everything is
normalised by the image size (x / width, y / height) unless a name says "crop coordinates" (``u = (x − x1) / w``,
``v = (y − y1) / h`` of the crop). See ``docs/layout.md`` for the feature definitions and results.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from opencrop.boxes import box_area, normalize_xyxy

__all__ = [
    "FEATURE_NAMES",
    "GEOMETRY_FEATURES",
    "NEUTRAL_SUBJECT_VALUES",
    "SUBJECT_FEATURES",
    "LayoutModel",
    "default_model_path",
    "layout_features",
]

#: Geometry of the crop alone (normalised image units). These are the columns of the geometry-only variant.
GEOMETRY_FEATURES: list[str] = [
    "geo_area",  # crop area / image area
    "geo_w",  # crop width / image width
    "geo_h",  # crop height / image height
    "geo_log_aspect",  # log(crop w / crop h), pixels
    "geo_log_aspect_rel",  # log(crop aspect / image aspect)
    "geo_img_log_aspect",  # log(image W / H)
    "geo_cx",  # crop centre x − 0.5
    "geo_cy",  # crop centre y − 0.5
    "geo_margin_l",  # x1
    "geo_margin_r",  # 1 − x2
    "geo_margin_t",  # y1
    "geo_margin_b",  # 1 − y2
    "geo_margin_min",  # smallest of the four margins
    "geo_lr_balance",  # (l − r) / (l + r), 0 when both are 0
    "geo_tb_balance",  # (t − b) / (t + b)
]

#: Subject layout. ``ω_s`` = weight_s · area_s, normalised to sum 1 over the subjects; ``k[n, s]`` = fraction of
#: subject s's area inside crop n; "cut" = 0.01 < k < 0.99; the "main" subject is the one with the largest ω.
SUBJECT_FEATURES: list[str] = [
    "sub_kept_w",  # Σ ω k: weighted fraction of the subjects kept
    "sub_kept_mean",  # unweighted mean of k
    "sub_main_kept",  # k of the main subject
    "sub_main_whole",  # 1 if the main subject is whole (k ≥ 0.99)
    "sub_n_cut",  # number of cut subjects
    "sub_frac_cut",  # number cut / number of subjects
    "sub_cut_w",  # Σ ω [cut]
    "sub_sev_w",  # Σ ω · 4k(1 − k): cut severity, largest when a subject is cut in half
    "sub_sev_max",  # max_s (area_s / max area) · 4k(1 − k)
    "sub_cut_area",  # Σ_s [cut] · area_s · (1 − k) / crop area: subject area cut away, relative to the crop
    "sub_out_w",  # Σ ω [k ≤ 0.01]: weight of the subjects left out entirely
    "sub_com_u",  # kept subjects' centre of mass (weights ω k, centres of the kept parts), crop coordinates
    "sub_com_v",
    "sub_com_du_third",  # min(|u − 1/3|, |u − 2/3|)
    "sub_com_dv_third",
    "sub_com_d_centre",  # distance of (u, v) to the crop centre
    "sub_com_d_thirdpt",  # distance of (u, v) to the nearest thirds intersection
    "sub_main_u",  # main subject's (whole box) centre, crop coordinates (may lie outside [0, 1])
    "sub_main_v",
    "sub_kept_scale",  # Σ_s kept subject area / crop area (overlapping subjects count twice)
    "sub_main_scale",  # kept area of the main subject / crop area
    "sub_main_hfrac",  # kept height of the main subject / crop height
    "sub_main_gap_l",  # (subject x1 − crop x1) / crop w; negative = the subject crosses that crop edge
    "sub_main_gap_r",  # (crop x2 − subject x2) / crop w
    "sub_main_gap_t",  # (subject y1 − crop y1) / crop h
    "sub_main_gap_b",  # (crop y2 − subject y2) / crop h
    "sub_edge_tangent",  # min over crop edges and touched subjects of |crop edge − parallel subject edge| (image units)
    "sub_count",  # number of (non-degenerate) subjects; per image
    "sub_total_area",  # min(1, Σ area_s); per image
    "sub_img_com_x",  # ω-weighted subject centre in the image − 0.5; per image
    "sub_img_com_y",
]

FEATURE_NAMES: list[str] = GEOMETRY_FEATURES + SUBJECT_FEATURES

#: Values the subject features take when an image has no (non-degenerate) subject: as if nothing is cut, the
#: "subject" were a point at the crop centre, and nothing lies near the crop edges.
NEUTRAL_SUBJECT_VALUES: dict[str, float] = {
    "sub_kept_w": 1.0,
    "sub_kept_mean": 1.0,
    "sub_main_kept": 1.0,
    "sub_main_whole": 1.0,
    "sub_n_cut": 0.0,
    "sub_frac_cut": 0.0,
    "sub_cut_w": 0.0,
    "sub_sev_w": 0.0,
    "sub_sev_max": 0.0,
    "sub_cut_area": 0.0,
    "sub_out_w": 0.0,
    "sub_com_u": 0.5,
    "sub_com_v": 0.5,
    "sub_com_du_third": 1.0 / 6.0,
    "sub_com_dv_third": 1.0 / 6.0,
    "sub_com_d_centre": 0.0,
    "sub_com_d_thirdpt": float(np.sqrt(2.0) / 6.0),
    "sub_main_u": 0.5,
    "sub_main_v": 0.5,
    "sub_kept_scale": 0.0,
    "sub_main_scale": 0.0,
    "sub_main_hfrac": 0.0,
    "sub_main_gap_l": 0.5,
    "sub_main_gap_r": 0.5,
    "sub_main_gap_t": 0.5,
    "sub_main_gap_b": 0.5,
    "sub_edge_tangent": 1.0,
    "sub_count": 0.0,
    "sub_total_area": 0.0,
    "sub_img_com_x": 0.0,
    "sub_img_com_y": 0.0,
}

_CUT_LO, _CUT_HI = 0.01, 0.99
_EPS = 1e-9


def _third_dist(u: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(u - 1.0 / 3.0), np.abs(u - 2.0 / 3.0))


def layout_features(
    boxes: np.ndarray,
    width: float,
    height: float,
    subjects: np.ndarray | None = None,
    subject_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Layout features of candidate crops → ``float32 [N, len(FEATURE_NAMES)]``, columns in ``FEATURE_NAMES`` order.

    ``boxes`` ``[N, 4]`` and ``subjects`` ``[S, 4]`` are xyxy pixels of the ``width × height`` image. Subjects are
    clipped to the image; those with width or height ≤ 1 px are ignored. ``subject_weights`` ``[S]`` (≥ 0, e.g.
    detector confidences; default 1) multiply each subject's area to give its importance. With no subject left the
    subject columns take :data:`NEUTRAL_SUBJECT_VALUES`. The first ``len(GEOMETRY_FEATURES)`` columns depend on
    the crop alone. Vectorised over N and S.
    """
    W, H = float(width), float(height)
    if W <= 0 or H <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    b = normalize_xyxy(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), W, H)
    n = b.shape[0]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    w = np.maximum(x2 - x1, _EPS)
    h = np.maximum(y2 - y1, _EPS)
    ml, mr, mt, mb = x1, 1.0 - x2, y1, 1.0 - y2
    log_aspect = np.log((w * W) / (h * H))
    geo = np.stack(
        [
            w * h,
            w,
            h,
            log_aspect,
            log_aspect - np.log(W / H),
            np.full(n, np.log(W / H)),
            (x1 + x2) / 2 - 0.5,
            (y1 + y2) / 2 - 0.5,
            ml,
            mr,
            mt,
            mb,
            np.minimum(np.minimum(ml, mr), np.minimum(mt, mb)),
            (ml - mr) / np.maximum(ml + mr, _EPS),
            (mt - mb) / np.maximum(mt + mb, _EPS),
        ],
        axis=1,
    )

    sub = _subject_features(b, w, h, W, H, subjects, subject_weights)
    return np.concatenate([geo, sub], axis=1).astype(np.float32)


def _subject_features(
    b: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    W: float,
    H: float,
    subjects: np.ndarray | None,
    subject_weights: np.ndarray | None,
) -> np.ndarray:
    """Subject columns ``[N, len(SUBJECT_FEATURES)]`` for normalised crops ``b`` (see :func:`layout_features`)."""
    n = b.shape[0]
    s_px = np.zeros((0, 4)) if subjects is None else np.asarray(subjects, dtype=np.float64).reshape(-1, 4)
    wts = np.ones(len(s_px)) if subject_weights is None else np.asarray(subject_weights, dtype=np.float64).ravel()
    if wts.shape[0] != s_px.shape[0]:
        raise ValueError(f"{s_px.shape[0]} subjects but {wts.shape[0]} weights")
    s_px = np.stack(
        [np.clip(s_px[:, 0], 0, W), np.clip(s_px[:, 1], 0, H), np.clip(s_px[:, 2], 0, W), np.clip(s_px[:, 3], 0, H)],
        axis=1,
    )
    ok = (s_px[:, 2] - s_px[:, 0] > 1.0) & (s_px[:, 3] - s_px[:, 1] > 1.0) & (wts > 0)
    if not ok.any():
        row = np.array([NEUTRAL_SUBJECT_VALUES[k] for k in SUBJECT_FEATURES])
        return np.broadcast_to(row, (n, len(row))).copy()
    s = normalize_xyxy(s_px[ok], W, H)  # [S, 4] normalised
    S = s.shape[0]
    area = box_area(s)  # [S]
    omega = wts[ok] * area
    omega = omega / omega.sum()
    main = int(np.argmax(omega))

    # intersection boxes [N, S, 4] and kept fractions
    ib = np.stack(
        [
            np.maximum(b[:, None, 0], s[None, :, 0]),
            np.maximum(b[:, None, 1], s[None, :, 1]),
            np.minimum(b[:, None, 2], s[None, :, 2]),
            np.minimum(b[:, None, 3], s[None, :, 3]),
        ],
        axis=-1,
    )
    inter = box_area(ib)  # [N, S]
    k = np.clip(inter / area[None, :], 0.0, 1.0)
    cut = (k > _CUT_LO) & (k < _CUT_HI)
    sev = 4.0 * k * (1.0 - k)
    crop_area = (w * h)[:, None]

    # kept subjects' centre of mass in crop coordinates (centres of the kept parts, weights ω k)
    mass = omega[None, :] * k
    msum = mass.sum(axis=1)
    has = msum > _EPS
    icx = (ib[..., 0] + ib[..., 2]) / 2
    icy = (ib[..., 1] + ib[..., 3]) / 2
    comx = (mass * icx).sum(axis=1) / np.maximum(msum, _EPS)
    comy = (mass * icy).sum(axis=1) / np.maximum(msum, _EPS)
    u = np.where(has, (comx - b[:, 0]) / w, 0.5)
    v = np.where(has, (comy - b[:, 1]) / h, 0.5)
    du, dv = _third_dist(u), _third_dist(v)

    m = s[main]
    mcx, mcy = (m[0] + m[2]) / 2, (m[1] + m[3]) / 2
    main_ih = np.maximum(ib[:, main, 3] - ib[:, main, 1], 0.0)

    # distance of each crop edge to the nearest parallel edge of a subject the crop touches (image units)
    touched = k > 0
    dx = np.abs(b[:, None, [0, 2], None] - s[None, :, None, [0, 2]]).min(axis=(2, 3))  # [N, S]
    dy = np.abs(b[:, None, [1, 3], None] - s[None, :, None, [1, 3]]).min(axis=(2, 3))
    tangent = np.where(touched, np.minimum(dx, dy), 1.0).min(axis=1)

    scx, scy = (s[:, 0] + s[:, 2]) / 2, (s[:, 1] + s[:, 3]) / 2
    ones = np.ones(n)
    cols = [
        (omega[None, :] * k).sum(axis=1),
        k.mean(axis=1),
        k[:, main],
        (k[:, main] >= _CUT_HI).astype(np.float64),
        cut.sum(axis=1).astype(np.float64),
        cut.mean(axis=1),
        (omega[None, :] * cut).sum(axis=1),
        (omega[None, :] * sev).sum(axis=1),
        (sev * (area / area.max())[None, :]).max(axis=1),
        (cut * area[None, :] * (1.0 - k)).sum(axis=1) / crop_area[:, 0],
        (omega[None, :] * (k <= _CUT_LO)).sum(axis=1),
        u,
        v,
        du,
        dv,
        np.hypot(u - 0.5, v - 0.5),
        np.hypot(du, dv),
        (mcx - b[:, 0]) / w,
        (mcy - b[:, 1]) / h,
        inter.sum(axis=1) / crop_area[:, 0],
        inter[:, main] / crop_area[:, 0],
        main_ih / h,
        (m[0] - b[:, 0]) / w,
        (b[:, 2] - m[2]) / w,
        (m[1] - b[:, 1]) / h,
        (b[:, 3] - m[3]) / h,
        tangent,
        ones * S,
        ones * min(1.0, float(area.sum())),
        ones * (float((omega * scx).sum()) - 0.5),
        ones * (float((omega * scy).sum()) - 0.5),
    ]
    return np.stack(cols, axis=1)



# ----------------------------------------------------------------------------------------------------------------
# Tree-ensemble predictor


def default_model_path(variant: str = "layout") -> Path:
    """Path of a committed model file: ``"layout"`` (geometry + subjects) or ``"geometry"`` (geometry only)."""
    name = {"layout": "layout_v1.npz", "geometry": "layout_geometry_v1.npz"}[variant]
    return Path(str(resources.files("opencrop") / "assets" / name))


class LayoutModel:
    """A regression tree ensemble stored as complete binary trees of one depth D (node arrays, no pickle).

    Arrays: ``feature`` / ``threshold`` / ``missing_left`` ``[T, 2^D − 1]`` for the internal nodes in breadth-first
    order (children of node i are 2i + 1 and 2i + 2) and ``value`` ``[T, 2^D]`` for the leaves. Node i sends x
    right iff ``x[feature[i]] > threshold[i]`` (NaN: right iff not ``missing_left[i]``). Shallower sklearn leaves
    are padded with always-left nodes (``threshold = +inf``) whose left-most descendant leaf carries the value.
    Prediction = ``baseline + Σ_t value[t, leaf_t(x)]``: all rows × all trees advance one level per step, so the
    cost is D steps of a few ``[N, T]`` gathers, with no loop over trees or rows. Thresholds are float32, rounded
    down from sklearn's float64 ones, so ``x <= t`` decides exactly as sklearn does for float32 features.
    """

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        missing_left: np.ndarray,
        baseline: float,
        feature_names: list[str],
        meta: str = "{}",
    ) -> None:
        self.feature = np.ascontiguousarray(feature, dtype=np.intp)
        self.threshold = np.ascontiguousarray(threshold, dtype=np.float32)
        self.value = np.ascontiguousarray(value, dtype=np.float32)
        self.missing_left = np.ascontiguousarray(missing_left, dtype=bool)
        self.baseline = float(baseline)
        self.feature_names = list(feature_names)
        self.meta = meta
        T, n_int = self.feature.shape
        self.n_trees = T
        self.depth = int(np.log2(n_int + 1))
        if self.value.shape != (T, n_int + 1) or 2**self.depth != n_int + 1:
            raise ValueError(f"inconsistent tree arrays: internal {self.feature.shape}, leaves {self.value.shape}")
        if T and (self.feature.min() < 0 or self.feature.max() >= len(self.feature_names)):
            raise ValueError("feature index out of range")
        self._int_off = (np.arange(T, dtype=np.intp) * n_int)[None, :]
        self._leaf_off = (np.arange(T, dtype=np.intp) * (n_int + 1) - n_int)[None, :]
        self._f = self.feature.ravel().astype(np.int32)
        self._t = self.threshold.ravel()
        self._m = self.missing_left.ravel()
        self._v = self.value.ravel()

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores ``float32 [N]`` for features ``[N, F]`` (columns as ``feature_names``); higher is better."""
        X = np.ascontiguousarray(features, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected features [N, {self.n_features}], got {X.shape}")
        n = X.shape[0]
        xf = X.ravel()
        it = np.int32 if n * self.n_features < 2**31 and self._f.size < 2**31 else np.intp
        row = (np.arange(n, dtype=it) * self.n_features)[:, None]
        off = self._int_off.astype(it)
        f = self._f.astype(it)
        nan = bool(np.isnan(xf).any())
        # g: global internal-node index per (row, tree); in-place int32 ops keep the working set small
        g = np.empty((n, self.n_trees), dtype=it)
        g[:] = off
        fi = np.empty_like(g)
        x = np.empty(g.shape, np.float32)
        t = np.empty(g.shape, np.float32)
        right = np.empty(g.shape, bool)
        step = 1 - off  # child of local node i is 2i + 1 + right; in global indices 2g − off + 1 + right
        # mode="clip": every index is in range by construction, and unlike the default "raise" it lets np.take
        # write straight into ``out`` instead of through a buffer (~30 % faster)
        for _ in range(self.depth):
            np.take(f, g, out=fi, mode="clip")
            fi += row
            np.take(xf, fi, out=x, mode="clip")
            np.take(self._t, g, out=t, mode="clip")
            np.greater(x, t, out=right)
            if nan:
                right |= np.isnan(x) & ~np.take(self._m, g, mode="clip")
            g *= 2
            g += step
            g += right
        leaf = np.take(self._v, g - off + self._leaf_off.astype(it), mode="clip")
        return leaf.sum(axis=1, dtype=np.float32) + np.float32(self.baseline)

    # -- export / io -------------------------------------------------------------------------------------------

    @classmethod
    def from_sklearn(cls, est, feature_names: list[str], meta: str = "{}") -> LayoutModel:
        """Convert a fitted ``HistGradientBoostingRegressor`` (numerical features, squared-error loss)."""
        trees = [preds[0].nodes for preds in est._predictors]
        T = len(trees)
        D = max(int(nodes["depth"].max()) for nodes in trees) if T else 0
        n_int = 2**D - 1
        feature = np.zeros((T, n_int), np.intp)
        threshold = np.full((T, n_int), np.inf, np.float32)
        missing = np.ones((T, n_int), bool)
        value = np.zeros((T, n_int + 1), np.float32)
        for t, nodes in enumerate(trees):  # export only; prediction is loop-free
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            stack = [(0, 0)]  # (sklearn node, complete-tree position)
            while stack:
                old, pos = stack.pop()
                nd = nodes[old]
                if nd["is_leaf"]:
                    while pos < n_int:  # pad: always go left down to the last level
                        pos = 2 * pos + 1
                    value[t, pos - n_int] = nd["value"]
                    continue
                thr = np.float32(nd["num_threshold"])
                if float(thr) > float(nd["num_threshold"]):
                    thr = np.nextafter(thr, np.float32(-np.inf))
                feature[t, pos] = nd["feature_idx"]
                threshold[t, pos] = thr
                missing[t, pos] = bool(nd["missing_go_to_left"])
                stack += [(int(nd["left"]), 2 * pos + 1), (int(nd["right"]), 2 * pos + 2)]
        baseline = float(np.asarray(est._baseline_prediction).ravel()[0])
        return cls(feature, threshold, value, missing, baseline, feature_names, meta)

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz`` (int16 / float32 / bool arrays; names and metadata as unicode arrays)."""
        np.savez_compressed(
            path,
            feature=self.feature.astype(np.int16),
            threshold=self.threshold,
            value=self.value,
            missing_left=self.missing_left,
            baseline=np.float64(self.baseline),
            feature_names=np.array(self.feature_names),
            meta=np.array(self.meta),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> LayoutModel:
        """Load a model written by :meth:`save` (``None`` = the committed layout model); never unpickles."""
        with np.load(default_model_path() if path is None else path, allow_pickle=False) as z:
            return cls(
                z["feature"],
                z["threshold"],
                z["value"],
                z["missing_left"],
                float(z["baseline"]),
                [str(s) for s in z["feature_names"]],
                str(z["meta"]),
            )
