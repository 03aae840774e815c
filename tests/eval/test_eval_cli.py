"""``opencrop eval`` end to end on tiny synthetic GAICD and FLMS sets, the baselines, and the paper table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opencrop.cli import main
from opencrop.data import load_dataset
from opencrop.eval.paper_numbers import PAPER_TABLES, paper_table
from opencrop.eval.runner import candidate_boxes, evaluate
from opencrop.models import create_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    for fmt in ("gaicd", "flms"):
        assert (
            main(
                [
                    "data",
                    "synth",
                    "--format",
                    fmt,
                    "--out",
                    str(root / fmt),
                    "--n",
                    "4",
                    "--seed",
                    "7",
                    "--size",
                    "256x192",
                ]
            )
            == 0
        )
    return {"gaicd": root / "gaicd", "flms": root / "flms"}


def test_eval_gaicd_end_to_end(tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "res.json"
    rc = main(
        [
            "eval",
            "--model",
            "baseline-center",
            "--dataset",
            f"gaicd:{tiny['gaicd']}",
            "--split",
            "all",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "paper: GAIC MobileNetV2" in text and "ours: baseline-center" in text and "SRCC" in text
    res = json.loads(out.read_text())
    assert res["protocol"] == "scored" and res["metrics"]["n_images"] == 4 and len(res["per_image"]) == 4
    # same numbers as the library path with the MOS-free baseline recomputed by hand
    import opencrop.models.baselines  # noqa: F401

    recs = load_dataset(f"gaicd:{tiny['gaicd']}", split="all")
    ev = evaluate(create_model("baseline-center"), recs)
    assert ev.metrics == pytest.approx(res["metrics"])
    for r, p in zip(recs, res["per_image"], strict=True):
        c = (r.crops[:, :2] + r.crops[:, 2:]) / 2 - np.array([r.width, r.height]) / 2
        assert p["pred"] == r.crops[int(np.argmin(np.hypot(c[:, 0], c[:, 1])))].tolist()


def test_eval_flms_end_to_end(tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "flms.json"
    rc = main(
        [
            "eval",
            "--model",
            "baseline-center",
            "--dataset",
            f"flms:{tiny['flms']}",
            "--candidates",
            "grid",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    assert "IoU" in capsys.readouterr().out
    res = json.loads(out.read_text())
    m = res["metrics"]
    assert res["protocol"] == "gt" and res["candidates"] == "grid" and m["n_images"] == 4
    assert 0 < m["iou"] <= 1 and m["bde"] == pytest.approx(m["disp"] / 4)
    assert res["paper"]["rows"][0]["values"]["iou"] == 0.836  # CGS FLMS reference row


def test_eval_lvrn_candidates(tiny: dict[str, Path], shared_data: Path) -> None:
    from opencrop.data import load_lvrn_pkl

    anchors = load_lvrn_pkl(shared_data / "anchors" / "lvrn_pdefined_anchors.pkl")
    boxes = candidate_boxes("lvrn", 301, 199, anchors)
    assert boxes.shape == (1745, 4) and np.array_equal(boxes, np.trunc(boxes))  # HCIC truncation
    assert boxes[:, 2].max() <= 301 and boxes[:, 3].max() <= 199
    rc = main(
        [
            "eval",
            "--model",
            "baseline-area",
            "--dataset",
            f"flms:{tiny['flms']}",
            "--quiet",
            "--anchors",
            str(shared_data / "anchors" / "lvrn_pdefined_anchors.pkl"),
        ]
    )
    assert rc == 0


def test_eval_errors(tiny: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--model", "no-such-model", "--dataset", f"gaicd:{tiny['gaicd']}", "--quiet"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["eval", "--model", "baseline-area", "--dataset", "nope:/x", "--quiet"]) == 2
    assert (
        main(
            ["eval", "--model", "baseline-area", "--weights", "w.pth", "--dataset", f"gaicd:{tiny['gaicd']}", "--quiet"]
        )
        == 2
    )
    assert "does not take" in capsys.readouterr().err
    missing = tiny["gaicd"].parent / "missing-img"
    import shutil

    shutil.copytree(tiny["gaicd"], missing)
    next((missing / "images" / "test").glob("*.jpg")).unlink()
    assert main(["eval", "--model", "baseline-area", "--dataset", f"gaicd:{missing}", "--quiet"]) == 1
    assert "image file missing" in capsys.readouterr().err


def test_baselines() -> None:
    import opencrop.models.baselines  # noqa: F401

    img = np.zeros((100, 200, 3), np.uint8)
    boxes = np.array([[50.0, 25, 150, 75], [0, 0, 100, 50], [0, 0, 200, 100]])
    c = create_model("baseline-center")
    s = c.score(c.prepare(img), boxes)
    assert s[0] == 0.0 and s[2] == 0.0 and s[1] == pytest.approx(-np.hypot(50, 25) / (np.hypot(200, 100) / 2))
    a = create_model("baseline-area")
    np.testing.assert_allclose(a.score(a.prepare(img), boxes), [0.25, 0.25, 1.0])
    assert c.needs == frozenset() and c.name == "baseline-center"


def test_paper_table_consistency() -> None:
    g = paper_table("gaicd")
    assert g is PAPER_TABLES["gaicd"]
    for row in g["rows"]:
        v = row["values"]
        assert row["source"].startswith("confirmed")
        if all(f"acc{k}_5" in v for k in range(1, 5)) and "acc5" in v:  # derived means match the per-K values
            assert v["acc5"] == pytest.approx(np.mean([v[f"acc{k}_5"] for k in range(1, 5)]), abs=0.051)
            assert v["acc10"] == pytest.approx(np.mean([v[f"acc{k}_10"] for k in range(1, 5)]), abs=0.051)
    assert paper_table("flms", "human")["title"].startswith("FLMS + FCDB human")
    assert paper_table("unknown") is None
    assert paper_table("gaicd", "human") is None  # HCIC's human-subset numbers are unpublished: no fallback


def test_subset_without_paper_numbers(tiny: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    rc = main(
        [
            "eval",
            "--model",
            "baseline-area",
            "--dataset",
            f"gaicd:{tiny['gaicd']}",
            "--split",
            "all",
            "--subset",
            "human",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "paper: no published numbers" in out and "GAIC MobileNetV2" not in out


def test_set_metrics_for_scoring_models(tiny: dict[str, Path]) -> None:
    import opencrop.models.baselines  # noqa: F401

    recs = load_dataset(f"gaicd:{tiny['gaicd']}", split="all")

    from opencrop.boxes import box_iou
    from opencrop.models.base import CandidateScorer

    by_path = {str(r.image_path): r for r in recs}

    class Oracle(CandidateScorer):  # scores each box by the MOS of the annotated crop it matches best
        name, needs = "oracle", frozenset()

        def prepare(self, frame, cues: object = None) -> tuple:
            return by_path[frame.source], frame

        def score(self, prepared: tuple, boxes: np.ndarray) -> np.ndarray:
            r, frame = prepared
            iou = box_iou(frame.to_original(boxes), frame.from_stored(r.crops))
            return np.asarray(r.scores)[iou.argmax(axis=1)]

    m = evaluate(Oracle(), recs, set_metrics=True).metrics
    assert m["srcc"] == pytest.approx(1.0) and m["hit5@0.85"] == 100.0 and m["ap90@0.90"] == pytest.approx(100.0)
    assert "hit5@0.85" not in evaluate(create_model("baseline-area"), recs).metrics


def test_ratio_window_candidates() -> None:
    boxes = candidate_boxes("ratios", 400, 300)
    ar = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
    assert {round(a, 4) for a in ar} == {1.0, round(4 / 3, 4), 0.75, round(16 / 9, 4), round(9 / 16, 4)}
    assert boxes[:, 2].max() <= 400 + 1e-9 and boxes.min() >= -1e-9
    with pytest.raises(ValueError, match="unknown candidate set"):
        candidate_boxes("nope", 10, 10)


def test_eval_precision_is_recorded_or_refused(tiny: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--precision bf16`` reaches the model and the ``--json`` record; a model without it is exit 2 with the
    reason, as is a rule-based model."""
    import opencrop.models.learned as learned

    monkeypatch.setattr(learned, "bf16_supported", lambda: True)  # the option's checks, on any CPU
    out = tmp_path / "res.json"
    base = ["--dataset", f"gaicd:{tiny['gaicd']}", "--split", "all", "--quiet", "--random-weights", "--no-cues"]
    assert main(["eval", "--model", "gaic", "--precision", "bf16", "--json", str(out), *base]) == 0
    assert json.loads(out.read_text())["precision"] == "bf16"
    assert main(["eval", "--model", "gaic", "--json", str(out), *base]) == 0
    assert json.loads(out.read_text())["precision"] == "fp32"
    capsys.readouterr()
    assert main(["eval", "--model", "gafic", "--precision", "bf16", *base]) == 2
    assert "not supported by this model" in capsys.readouterr().err
    assert main(["eval", "--model", "baseline-area", "--precision", "bf16", *base]) == 2
    assert "does not take" in capsys.readouterr().err
