"""CPC, FCDB, FLMS (+ design constraints), SACD, GenCrop, HCIC human boxes and LVRN anchors: real annotation files
where /work/shared has them, and synthetic data written in each on-disk format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from opencrop.data import (
    load_cpc,
    load_dataset,
    load_fcdb,
    load_flms,
    load_flms_design,
    load_gencrop,
    load_human_boxes,
    load_lvrn_pkl,
    load_sacd,
)
from opencrop.data.gencrop import decode_mask_png, parse_outpaint_name
from opencrop.data.synth import synthesize
from opencrop.errors import DataFormatError


# ------------------------------------------------------------------------------------------------------ CPC
def test_cpc_raw_synthetic_double_encoded(tmp_path: Path) -> None:
    root = synthesize("cpc", tmp_path / "cpc", n=3, seed=1)
    recs = load_cpc(root)
    assert len(recs) == 3
    f = root / "CollectedAnnotationsRaw" / f"{recs[0].name}.txt"
    payload = json.loads(f.read_text())
    assert isinstance(payload, str)  # double-encoded, as the real files
    obj = json.loads(payload)
    np.testing.assert_allclose(recs[0].scores, np.mean(obj["scores"], axis=0))
    np.testing.assert_array_equal(recs[0].crops, obj["bboxes"])
    assert recs[0].crops.shape == (24, 4) and recs[0].width is not None


def test_cpc_hcic_json_and_errors(tmp_path: Path) -> None:
    data = {"a.jpg": {"bboxes": [[0, 0, 10, 10], [1, 1, 9, 9]], "scores": [0.5, 1.5]}}
    (tmp_path / "image_crop.json").write_text(json.dumps(data))
    (rec,) = load_cpc(tmp_path)
    np.testing.assert_array_equal(rec.scores, [0.5, 1.5])
    assert rec.image_path is None  # no images/ folder: annotation-only record
    with pytest.raises(DataFormatError, match="no official split"):
        load_cpc(tmp_path, split="test")
    (tmp_path / "image_crop.json").write_text(json.dumps({"a.jpg": {"bboxes": [[0, 0, 10, 10]], "scores": [1, 2]}}))
    with pytest.raises(DataFormatError, match="1 boxes but 2 scores"):
        load_cpc(tmp_path)
    bad = tmp_path / "raw" / "CollectedAnnotationsRaw"
    bad.mkdir(parents=True)
    (bad / "x.jpg.txt").write_text('"{\\"scores\\": [[1, 2]], \\"bboxes\\": [[0, 0, 1, 1]]}"')
    with pytest.raises(DataFormatError, match="does not match 1 boxes"):
        load_cpc(tmp_path / "raw")


def test_cpc_human_boxes_weight_is_width(shared_data: Path) -> None:
    boxes = load_human_boxes(shared_data / "hcic-annotations" / "CPC" / "human_bboxes.json")
    assert len(boxes) == 1154
    hb = boxes["ava_obj_2_728838.jpg"]
    assert (hb.width, hb.height) == (512, 640)
    np.testing.assert_array_equal(hb.box, [87, 80, 434, 562])
    assert all(b.box[2] <= b.width and b.box[3] <= b.height for b in boxes.values())


# ----------------------------------------------------------------------------------------------------- FCDB
def test_fcdb_real_official_and_hcic(shared_data: Path) -> None:
    off = shared_data / "fcdb-annotations"
    hcic = shared_data / "hcic-annotations" / "FCDB"
    assert len(load_fcdb(off, "train")) == 1369 and len(load_fcdb(off, "test")) == 345
    assert [len(load_fcdb(hcic, s)) for s in ("train", "test", "human")] == [1261, 319, 176]
    test = {r.name: r for r in load_fcdb(off, "test")}
    r = test["6931423716_4fb31feac6_c.jpg"]
    np.testing.assert_array_equal(r.gt_crops, [[3, 130, 3 + 797, 130 + 279]])  # xywh → xyxy
    np.testing.assert_array_equal(r.extra["sliding_windows"][0], r.gt_crops[0])  # first window = GT
    o = {x.name: x for x in load_fcdb(off, "all")}
    h = {x.name: x for x in load_fcdb(hcic, "all")}
    differ = sorted(n for n in h if not np.array_equal(h[n].gt_crops, o[n].gt_crops))
    assert differ == sorted(
        ["9216061054_9b15b5e220_c.jpg", "7075587655_060c69610a_c.jpg", "2911844831_443a3627a9_b.jpg"]
    )
    human = load_fcdb(hcic, "all", subset="human")
    assert len(human) == 176 and all(x.human_box is not None for x in human)


def test_fcdb_synthetic(tmp_path: Path) -> None:
    root = synthesize("fcdb", tmp_path / "fcdb", n=4, seed=2)
    tr, te = load_fcdb(root, "train"), load_fcdb(root, "test")
    assert len(tr) + len(te) == 4 and len(te) >= 1
    official = json.loads((root / "cropping_testing_set.json").read_text())
    x, y, w, h = official[0]["crop"]
    np.testing.assert_array_equal(te[0].gt_crops, [[x, y, x + w, y + h]])
    assert te[0].image_path.is_file() and te[0].width > 0
    assert te[0].gt_crops[0, 2] <= te[0].width and te[0].gt_crops[0, 3] <= te[0].height


# ----------------------------------------------------------------------------------------------------- FLMS
def test_flms_real_json(shared_data: Path) -> None:
    recs = load_flms(shared_data / "flms-annotations" / "image_crop_from_hcic.json")
    n = np.array([len(r.gt_crops) for r in recs])
    assert len(recs) == 500 and (n == 10).sum() == 488 and (n == 9).sum() == 12
    human = load_flms(shared_data / "hcic-annotations" / "FLMS", subset="human")
    assert len(human) == 39
    hb = load_human_boxes(shared_data / "hcic-annotations" / "FLMS" / "human_bboxes.json")
    assert {r.name for r in human} == set(hb)


def test_flms_design_constraints(shared_data: Path) -> None:
    recs = load_flms_design(shared_data / "flms-annotations")
    assert len(recs) == 4426 and len({r.extra["image_name"] for r in recs}) == 483
    gt = np.concatenate([r.gt_crops for r in recs])
    ratio = np.array([r.extra["aspect_ratio"] for r in recs])
    np.testing.assert_allclose(ratio, (gt[:, 3] - gt[:, 1]) / (gt[:, 2] - gt[:, 0]), rtol=1e-9)  # height / width
    region = np.stack([r.extra["layout_region"] for r in recs])
    assert ((region[:, :2] >= gt[:, :2]) & (region[:, 2:] <= gt[:, 2:])).all()


def test_flms_mat_synthetic_drops_padding(tmp_path: Path) -> None:
    import scipy.io

    root = synthesize("flms", tmp_path / "flms", n=3, seed=4)
    raw = scipy.io.loadmat(str(root / "500_image_dataset.mat"))["img_gt"]
    recs = {r.name: r for r in load_flms(root)}
    assert len(recs) == 3
    for i in range(3):
        name = str(raw[i, 0][0][0])
        bbox = np.asarray(raw[i, 0][1], dtype=float)
        keep = bbox[:, 0] >= 0
        assert bbox.shape == (10, 4) and (bbox[~keep] == -1).all()
        np.testing.assert_array_equal(recs[name].gt_crops, bbox[keep][:, [1, 0, 3, 2]])  # yxyx → xyxy
        assert recs[name].image_path.parent.name == "image"


def test_flms_handwritten_mat(tmp_path: Path) -> None:
    import scipy.io

    entries = np.zeros((1, 1), dtype=[("filename", "O"), ("bbox", "O")])
    entries[0, 0] = ("a.jpg", np.array([[10, 20, 110, 220], [-1, -1, -1, -1]], dtype=float))
    scipy.io.savemat(str(tmp_path / "500_image_dataset.mat"), {"img_gt": entries})
    (rec,) = load_flms(tmp_path)
    np.testing.assert_array_equal(rec.gt_crops, [[20, 10, 220, 110]])
    assert rec.image_path is None  # no image folder: annotation-only
    scipy.io.savemat(str(tmp_path / "500_image_dataset.mat"), {"other": np.zeros(3)})
    with pytest.raises(DataFormatError, match="img_gt"):
        load_flms(tmp_path)


# ------------------------------------------------------------------------------------------- SACD / GenCrop
def test_sacd_synthetic(tmp_path: Path) -> None:
    root = synthesize("sacd", tmp_path / "sacd", n=3, seed=5)
    recs = load_sacd(root)
    listed = json.loads((root / "test.json").read_text())["jsons"]
    assert [r.name + ".json" for r in recs] == listed
    r = recs[0]
    ann = json.loads((root / "annotations" / f"{r.name}.json").read_text())
    x, y, w, h = json.loads(ann["mask_box"])
    np.testing.assert_array_equal(r.subject_box, [x, y, x + w, y + h])
    np.testing.assert_array_equal(r.gt_crops, ann["best_box"] + ann["crop_box"])
    assert r.image_path.is_file() and Path(r.subject_mask).is_file()
    (root / "annotations" / f"{r.name}.json").write_text(json.dumps({"best_box": [[0, 0, 1, 1]]}))
    with pytest.raises(DataFormatError, match="missing key 'mask_box'"):
        load_sacd(root)


def test_gencrop_synthetic(tmp_path: Path) -> None:
    root = synthesize("gencrop", tmp_path / "gc", n=4, seed=6)
    recs = load_gencrop(root)
    assert len(recs) == 4
    for r in recs:
        assert r.subject_mask.shape == (r.height, r.width) and r.subject_mask.any()
        ys, xs = np.nonzero(r.subject_mask)
        np.testing.assert_allclose(r.subject_box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=0.01)
        assert r.gt_crops.shape[1] == 4 and (r.gt_crops[:, 2] <= r.width + 1e-6).all()
    split = load_gencrop(root, source="split", split="train")
    assert len(split) == 2 and all(r.subject_box is not None for r in split)


def test_gencrop_mask_size_without_image(tmp_path: Path) -> None:
    import base64
    import gzip
    import io

    from PIL import Image

    mask = np.zeros((40, 80), np.uint8)
    mask[10:30, 20:40] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    data = {"h1": {"subject_xywh": [0.25, 0.25, 0.25, 0.5], "crop_xywh": [[0, 0, 0.5, 1.0]], "subject_mask": b64}}
    with gzip.open(tmp_path / "testeval_sha256.json.gz", "wt") as f:
        json.dump(data, f)
    (r,) = load_gencrop(tmp_path)
    assert (r.width, r.height) == (80, 40)
    np.testing.assert_allclose(r.gt_crops, [[0, 0, 40, 40]])
    np.testing.assert_allclose(r.subject_box, [20, 10, 40, 30])
    assert decode_mask_png(b64).sum() == 400
    gid, box = parse_outpaint_name("imgAbC_12_34_100_200.jpg")
    assert gid == "AbC" and box.tolist() == [12, 34, 112, 234]


# ---------------------------------------------------------------------------------------- anchors, dispatch
def test_lvrn_pkl_real_and_guarded(shared_data: Path, tmp_path: Path) -> None:
    a = load_lvrn_pkl(shared_data / "anchors" / "lvrn_pdefined_anchors.pkl")
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    assert a.shape == (1745, 4) and area.min() == pytest.approx(0.178, abs=1e-3)
    assert area.max() == pytest.approx(0.81, abs=1e-3)
    fake = tmp_path / "p.pkl"
    fake.write_bytes(pickle.dumps([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(DataFormatError, match="sha256"):
        load_lvrn_pkl(fake)
    assert load_lvrn_pkl(fake, sha256=None).shape == (1, 4)
    fake.write_bytes(pickle.dumps(np.zeros((2, 4))))  # contains a global (numpy): refused
    with pytest.raises(DataFormatError, match="refusing"):
        load_lvrn_pkl(fake, sha256=None)


def test_load_dataset_dispatch(shared_data: Path) -> None:
    recs = load_dataset(f"flms:{shared_data / 'hcic-annotations' / 'FLMS'}")
    assert len(recs) == 500
    assert len(load_dataset(f"fcdb:{shared_data / 'hcic-annotations' / 'FCDB'}", subset="human")) == 45
    with pytest.raises(ValueError, match="unknown dataset format 'nope'"):
        load_dataset("nope:/x")
    with pytest.raises(ValueError, match="FORMAT:DIR"):
        load_dataset("/just/a/path")
    with pytest.raises(ValueError, match="test-only"):
        load_dataset(f"flms:{shared_data / 'hcic-annotations' / 'FLMS'}", split="train")
