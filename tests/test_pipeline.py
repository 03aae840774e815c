"""The one pipeline: frames (stored / original / analysis), training and evaluation see the same pixels, record
fields reach the model in evaluation (HCIC's human box), untrained learned models refuse to run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.io import load_frame

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _exif_jpeg(arr: np.ndarray, orientation: int) -> bytes:
    """``arr`` stored as-is with an EXIF orientation tag: viewers show it transformed."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_from_stored_maps_boxes_like_the_pixels(orientation: int) -> None:
    # a white rectangle on black, stored unrotated; after decoding its box must be where from_stored puts it
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[10:25, 20:70] = 255
    frame = load_frame(_exif_jpeg(stored, orientation), analysis_size=1000)
    assert frame.orientation == orientation and frame.stored_size == (100, 60)
    up = frame.pixels[..., 0] > 128
    ys, xs = np.nonzero(up)
    seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    mapped = frame.from_stored([[20, 10, 70, 25]])[0]
    np.testing.assert_allclose(mapped, seen, atol=1.5)


def test_analysis_and_original_boxes_round_trip() -> None:
    frame = load_frame(PHOTO, 256)
    b = np.array([[10.0, 20.0, 300.0, 400.0]])
    np.testing.assert_allclose(frame.to_original(frame.to_analysis(b)), b)
    assert max(frame.analysis_size) == 256


@pytest.fixture(scope="module")
def gaicd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from opencrop.data.synth import synthesize

    return synthesize("gaicd", tmp_path_factory.mktemp("syn") / "gaicd", n=8, seed=3)


def test_training_and_evaluation_see_the_same_pixels(gaicd: Path) -> None:
    """The trainer's sample is the preprocessed frame that evaluation and cropping give the model."""
    from opencrop.data.registry import load_dataset
    from opencrop.models import create_model
    from opencrop.train.datasets import CropDataset

    model = create_model("gaic")
    model.analysis_size = 320  # below the synthetic images' size, so that the frame is really shrunk
    recs = load_dataset(f"gaicd:{gaicd}", split="all")
    ds = CropDataset(recs, model.preprocess, None, 0.0, "none", analysis_size=model.analysis_size, needs=model.needs)
    sample = ds[0]
    frame = load_frame(recs[0].image_path, model.analysis_size)
    x, (sx, sy) = model.preprocess(frame.pixels)
    assert (frame.width, frame.height) != frame.analysis_size  # the frame really is shrunk
    assert torch_equal(sample["image"], x)
    fx, fy = frame.scale
    crops = np.asarray(recs[0].crops)[np.asarray(recs[0].scores) >= -1]
    np.testing.assert_allclose(sample["rois"].numpy(), crops * [sx * fx, sy * fy, sx * fx, sy * fy], rtol=1e-5)


def torch_equal(a, b) -> bool:
    return tuple(a.shape) == tuple(b.shape) and bool((a - b).abs().max() < 1e-5)


def test_object_boxes_are_padded_and_masked(gaicd: Path) -> None:
    from opencrop.data.registry import load_dataset
    from opencrop.models import create_model
    from opencrop.train.datasets import CropDataset, collate

    model = create_model("gaic")
    recs = load_dataset(f"gaicd:{gaicd}", split="all")[:2]
    recs[1].object_boxes = np.asarray(recs[1].object_boxes)[:1]
    ds = CropDataset(recs, model.preprocess, 8, 0.0, "none", needs={"object_boxes", "subject_box"})
    items = [ds[0], ds[1]]
    items[1]["image"] = items[0]["image"]  # collate stacks images of one size
    b = collate(items)
    d0 = len(items[0]["object_boxes"])
    assert d0 > 1 and b["object_boxes"].shape == (2, d0, 4)
    assert b["object_mask"].tolist()[1] == [True] + [False] * (d0 - 1)
    assert (b["object_boxes"][1, 1:] == -1).all() and (b["subject_box"] == -1).all()


def test_eval_passes_the_human_box_so_hcic_runs_its_partition_module(gaicd: Path, monkeypatch) -> None:
    """``opencrop eval --model hcic --subset human``: the dataset's human box reaches the model (HCIC test.py)."""
    from opencrop.cli import main
    from opencrop.models.hcic_modules import PartitionAwareModule

    humans = json.loads((gaicd / "human_bboxes.json").read_text())
    assert humans, "the synthetic set has people"
    calls: list[tuple] = []
    orig = PartitionAwareModule.forward

    def spy(self, feat, human_box, masks):
        calls.append(tuple(human_box.reshape(-1, 4)[0].tolist()))
        return orig(self, feat, human_box, masks)

    monkeypatch.setattr(PartitionAwareModule, "forward", spy)
    rc = main(["eval", "--model", "hcic", "--random-weights", "--dataset", f"gaicd:{gaicd}", "--split", "all",
               "--subset", "human", "--no-cues", "--quiet"])
    assert rc == 0
    assert len(calls) == len(humans)  # once per image, each with a real (non -1) box
    assert all(min(c) >= 0 for c in calls)


def test_untrained_learned_models_refuse_to_run(gaicd: Path, capsys) -> None:
    from opencrop.api import Cropper
    from opencrop.cli import main
    from opencrop.errors import UntrainedModelError

    with pytest.raises(UntrainedModelError, match="no trained weights"):
        Cropper("gaic")
    assert main(["crop", str(PHOTO), "--model", "gaic", "--json"]) == 2
    assert "--random-weights" in capsys.readouterr().err
    assert main(["eval", "--model", "gaic", "--dataset", f"gaicd:{gaicd}", "--quiet"]) == 2
    capsys.readouterr()
    assert main(["crop", str(PHOTO), "--model", "gaic", "--random-weights", "--no-cues", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert any("random weights" in n for n in rec["notes"])  # reported in every record
