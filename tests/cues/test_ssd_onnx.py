"""The SSD person/object detector on onnxruntime: the hand-written ONNX writer, the conversion from the frozen TF
graph, and agreement with the OpenCV dnn reference on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cues_helpers import photo

from opencrop.cues import objects
from opencrop.cues._onnx import GraphBuilder
from opencrop.cues._runtime import BackendUnavailable
from opencrop.cues._ssd_onnx import GRAPHS, decode

ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the converted SSD")


def _run(g: GraphBuilder, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(g.to_bytes(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize(("size", "stride", "group"), [(10, 2, 1), (11, 2, 1), (9, 1, 4), (12, 2, 4)])
def test_writer_conv_is_tf_same_padding(size: int, stride: int, group: int) -> None:
    """Conv with auto_pad SAME_UPPER: TF's "SAME" (the extra pixel goes after), checked against torch in float64."""
    rng = np.random.default_rng(size)
    g = GraphBuilder("conv")
    x = g.input("x", np.float32, [1, 4, "h", "w"])
    w = rng.normal(size=(8, 4 // group, 3, 3)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    g.op("Identity", [g.conv(x, w, b, stride=stride, group=group)], out="y")
    g.output("y", np.float32, [1, 8, "oh", "ow"])
    a = rng.normal(size=(1, 4, size, size)).astype(np.float32)
    (y,) = _run(g, {"x": a})
    out = -(-size // stride)
    pad = max((out - 1) * stride + 3 - size, 0)
    xt = F.pad(torch.from_numpy(a).double(), (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    ref = F.conv2d(xt, torch.from_numpy(w).double(), torch.from_numpy(b).double(), stride=stride, groups=group)
    assert y.shape == (1, 8, out, out)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-4)


def test_writer_attributes_and_int64_constants() -> None:
    """Negative int64 constants (Reshape -1), int lists (Transpose perm), ints (Concat axis, Cast to), uint8 input."""
    g = GraphBuilder("misc")
    img = g.input("img", np.uint8, [2, 3, 4])
    x = g.op("Cast", [img], to=1)
    x = g.op("Transpose", [x], perm=[2, 0, 1])
    x = g.op("Reshape", [x, g.const(np.array([-1, 2], np.int64))])
    g.op("Concat", [x, x], out="y", axis=0)
    g.op("Sigmoid", [g.op("Mul", [x, g.const(np.array(-0.5, np.float32))])], out="z")
    g.output("y", np.float32, ["n", 2])
    g.output("z", np.float32, ["m", 2])
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    y, z = _run(g, {"img": a})
    ref = a.astype(np.float32).transpose(2, 0, 1).reshape(-1, 2)
    np.testing.assert_array_equal(y, np.concatenate([ref, ref]))
    np.testing.assert_allclose(z, 1 / (1 + np.exp(0.5 * ref)), atol=1e-6)


def test_decode_centre_size_by_hand() -> None:
    priors = np.array([[0.2, 0.4, 0.6, 0.6], [0.0, 0.0, 1.0, 0.5]], np.float32)  # xyxy normalised
    loc = np.array([[0, 0, 0, 0], [10.0, -10.0, 5.0, 0.0]], np.float32)  # (dx, dy, dw, dh)
    # anchor 2: centre (0.5, 0.25) → (0.5 + 0.1·10·1, 0.25 − 0.1·10·0.5) = (1.5, −0.25); w = e^(0.2·5) = e, h = 0.5
    e = np.e
    expect = np.array([[0.2, 0.4, 0.6, 0.6], [1.5 - e / 2, -0.5, 1.5 + e / 2, 0.0]])
    np.testing.assert_allclose(decode(loc, priors), expect, rtol=1e-6, atol=1e-6)


def _both_backends(monkeypatch, need) -> None:
    need("people")
    for b in objects.BACKENDS:
        monkeypatch.setenv("OPENCROP_SSD_BACKEND", b)
        try:
            objects.backend()
        except BackendUnavailable as e:
            pytest.skip(f"SSD backend {b} unavailable: {e}")


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera", "rocket"])
def test_onnxruntime_matches_opencv(name: str, monkeypatch, need) -> None:
    """Same rows (class, score, box) from both runtimes: the float32 conversion reproduces OpenCV's network and NMS
    (the int8 class heads are compared with it below)."""
    _both_backends(monkeypatch, need)
    monkeypatch.setenv("OPENCROP_SSD_PRECISION", "fp32")
    img = photo(name)
    rows = {}
    for b in objects.BACKENDS:
        monkeypatch.setenv("OPENCROP_SSD_BACKEND", b)
        rows[b] = objects._raw(img)
    cv, onnx = (r[r[:, 1] >= 0.1] for r in (rows["opencv"], rows["onnxruntime"]))
    assert len(onnx) == len(cv)
    assert len(cv) > 0 or name == "rocket"  # every other photo has a person or an object above 0.1
    np.testing.assert_array_equal(onnx[:, 0], cv[:, 0])
    np.testing.assert_allclose(onnx[:, 1:], cv[:, 1:], atol=1e-4)


def test_people_only_pass_equals_full_pass(monkeypatch, need) -> None:
    """The person-only graph (no 90-class heads) finds exactly the person rows of the full graph."""
    _both_backends(monkeypatch, need)
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    img = np.concatenate([photo("astronaut"), photo("astronaut")], axis=1)
    full = objects._raw(img, objects=True)
    people = objects._raw(img, objects=False)
    assert len(people) >= 2
    np.testing.assert_allclose(people, full[full[:, 0] == 1], atol=1e-5)


def test_backend_choice(monkeypatch, need) -> None:
    _both_backends(monkeypatch, need)
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "opencv")
    assert objects.backend() == "opencv"
    monkeypatch.delenv("OPENCROP_SSD_BACKEND")
    assert objects.backend() == "onnxruntime"
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "tensorrt")
    with pytest.raises(BackendUnavailable, match="OPENCROP_SSD_BACKEND"):
        objects.backend()
    from opencrop.cues import analyze
    from opencrop.errors import CueUnavailableError

    with pytest.raises(CueUnavailableError, match="OPENCROP_SSD_BACKEND"):  # fail closed: no silent fallback
        analyze(photo("astronaut"), want={"people"})
    cues = analyze(photo("astronaut"), want={"people"}, degrade=True)  # a note when degrading is asked for
    assert len(cues.people) == 0 and any("OPENCROP_SSD_BACKEND" in n for n in cues.notes)


def test_conversion_is_cached_and_survives_an_unwritable_cache(tmp_path, monkeypatch, need) -> None:
    _both_backends(monkeypatch, need)
    paths = tuple(tmp_path / "d" / f"ssd-mobilenet-v2-coco-x-onnx9-{name}.onnx" for name in GRAPHS)
    stale = tmp_path / "d" / "ssd-mobilenet-v2-coco-x-onnx8-full.onnx"
    stale.parent.mkdir()
    stale.write_bytes(b"an older conversion")
    monkeypatch.setattr(objects, "_converted_paths", lambda: paths)
    graphs = objects.convert_for_onnxruntime()
    assert len(graphs) == 4 and all(p.read_bytes() == g for p, g in zip(paths, graphs, strict=True))
    assert [p.name for p in paths if p.with_name(p.name + ".sha256").is_file()] == [p.name for p in paths]
    assert not stale.exists()  # conversions of other versions are removed
    assert not list(paths[0].parent.glob(".*tmp"))  # written atomically, no leftovers

    def no_conversion(net):
        raise AssertionError("converted again although the cache holds the files")

    monkeypatch.setattr("opencrop.cues._ssd_onnx.convert", no_conversion)
    assert objects.convert_for_onnxruntime() == graphs

    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(objects, "_converted_paths", lambda: tuple(blocker / f"{n}.onnx" for n in GRAPHS))
    again = objects.convert_for_onnxruntime()  # cannot be cached: converted in memory, with a warning
    assert again == graphs  # the same bytes: the conversion (int8 quantisation included) is deterministic


def test_thread_count_setting(monkeypatch) -> None:
    monkeypatch.setenv("OPENCROP_SSD_THREADS", "3")
    assert objects._threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("OPENCROP_SSD_THREADS", bad)
        with pytest.raises(BackendUnavailable, match="OPENCROP_SSD_THREADS"):
            objects._threads()
    monkeypatch.delenv("OPENCROP_SSD_THREADS")
    assert 1 <= objects._threads() <= 4


@pytest.mark.parametrize("want", [{"faces", "people", "saliency"}, {"faces", "people", "objects", "saliency"}])
def test_analyze_overlaps_ssd_without_changing_results(want: set[str], need) -> None:
    """analyze() runs the SSD on a worker thread next to the face detector; the cues equal separate calls."""
    need("faces")
    need("people")
    from opencrop.cues import analyze, detect_faces, detect_people_and_objects

    img = np.ascontiguousarray(np.concatenate([photo("astronaut"), photo("coffee")], axis=0))  # 512 × 853
    cues = analyze(img, want=want)
    people, objs = detect_people_and_objects(img)
    faces = detect_faces(img, people=lambda: people.boxes)  # analyze() gates the face tiles on the people
    np.testing.assert_array_equal(cues.faces.boxes, faces.boxes)
    np.testing.assert_allclose(cues.people.boxes, people.boxes, atol=1e-3)
    assert len(cues.people) >= 1 and cues.notes == []
    if "objects" in want:
        assert cues.objects.labels == objs.labels
        np.testing.assert_allclose(cues.objects.boxes, objs.boxes, atol=1e-3)
    else:
        assert len(cues.objects) == 0


def test_falls_back_to_opencv_when_onnxruntime_is_missing(monkeypatch, caplog, need) -> None:
    need("people")
    real = objects.has_module
    monkeypatch.setattr(objects, "has_module", lambda name: name != "onnxruntime" and real(name))
    monkeypatch.delenv("OPENCROP_SSD_BACKEND", raising=False)
    monkeypatch.setattr("opencrop.cues._runtime._NOTED", set())
    objects._ORT.reset()
    try:
        with caplog.at_level("WARNING", logger="opencrop.cues"):
            assert objects.backend() == "opencv"
            people = objects.detect_people(photo("astronaut"))
        assert len(people) == 1  # still detected, by the reference runtime
        assert any("onnxruntime is not installed" in r.getMessage() and "OpenCV" in r.getMessage()
                   for r in caplog.records)
    finally:
        objects._ORT.reset()


def test_a_damaged_cached_conversion_is_converted_again(tmp_path, monkeypatch, caplog, need) -> None:
    _both_backends(monkeypatch, need)
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    paths = tuple(tmp_path / f"ssd-mobilenet-v2-coco-x-{name}.onnx" for name in GRAPHS)
    for p in paths:
        p.write_bytes(b"\x00 half a file")  # what a disk error could leave behind
    monkeypatch.setattr(objects, "_converted_paths", lambda: paths)
    objects._ORT.reset()
    try:
        with caplog.at_level("WARNING", logger="opencrop.cues"):
            people = objects.detect_people(photo("astronaut"))
        assert len(people) == 1
        assert any("converting again" in r.getMessage() for r in caplog.records)  # caught by its sha256
        assert paths[0].stat().st_size > 1_000_000  # replaced by a good conversion
    finally:
        objects._ORT.reset()


def _check_with_onnx(data: bytes) -> None:
    """The ``onnx`` package (dev/export extra only) accepts the bytes the hand-written writer made: the full checker
    with shape inference passes, and parsing then serialising them again gives the same bytes."""
    onnx = pytest.importorskip("onnx", reason="the onnx package (the export extra) checks the hand-written graphs")
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert model.SerializeToString() == data


def test_writer_graphs_pass_the_onnx_checker_and_round_trip() -> None:
    g = GraphBuilder("misc")
    img = g.input("img", np.uint8, [1, 3, "h", "w"])
    x = g.op("Cast", [img], to=1)
    w = np.ones((2, 3, 3, 3), np.float32)
    g.op("Sigmoid", [g.conv(x, w, np.zeros(2, np.float32), stride=2)], out="y")
    g.output("y", np.float32, [1, 2, "oh", "ow"])
    _check_with_onnx(g.to_bytes())


def test_converted_ssd_graphs_pass_the_onnx_checker_and_round_trip(need) -> None:
    """The real conversions that `opencrop models fetch` writes (people-only and full SSD graphs, float32 and with
    int8 class heads)."""
    need("people")
    for path in objects.convert_for_onnxruntime():  # paths (cached) or the bytes (converted in memory)
        _check_with_onnx(path if isinstance(path, bytes) else path.read_bytes())


# -- int8 class heads ------------------------------------------------------------------------------------------


def test_int8_conv_is_the_qdq_arithmetic_by_hand() -> None:
    """``_int8_conv`` (fused by onnxruntime into a QLinearConv) computes what its quantisation says: the input on
    128 levels of [0, 6], per-channel ±127 weights, int32 bias, the output on the uint8 grid of [-4, 8] (checked
    against a float64 convolution of the dequantised operands, to one output step)."""
    from opencrop.cues import _ssd_onnx as S

    rng = np.random.default_rng(7)
    w = (rng.normal(size=(12, 16, 3, 3)) * np.linspace(0.01, 0.3, 12)[:, None, None, None]).astype(np.float32)
    b = rng.normal(size=12).astype(np.float32)
    a = rng.uniform(-1, 6, size=(1, 16, 9, 9)).astype(np.float32)  # negatives too: clamped to 0
    g = GraphBuilder("q")
    x = g.input("x", np.float32, [1, 16, 9, 9])
    g.op("Identity", [S._int8_conv(g, x, w, b)], out="y")
    g.output("y", np.float32, [1, 12, 9, 9])
    (y,) = _run(g, {"x": a})
    s_in, s_out = 6 / 127, 12 / 255
    xi = np.clip(np.round(a / s_in), 0, 255)
    assert xi.max() == 127  # ReLU6's 6 is the top level: pairs of u8·s8 products stay below 2¹⁵
    s_w = np.abs(w).reshape(12, -1).max(axis=1) / 127
    wi = np.round(w / s_w[:, None, None, None])
    assert np.abs(wi).max() == 127
    wq = wi * s_w[:, None, None, None]
    bq = np.round(b / (s_in * s_w)) * (s_in * s_w)
    ref = F.conv2d(F.pad(torch.from_numpy(xi * s_in), (1, 1, 1, 1)), torch.from_numpy(wq), torch.from_numpy(bq))
    ref = (np.clip(np.round(ref.numpy() / s_out) + 85, 0, 255) - 85) * s_out  # zero point 85: -4 + 85 · 12/255 = 0
    assert np.abs(y - ref).max() <= s_out + 1e-6
    assert (np.abs(y - ref) > 1e-6).mean() < 0.01  # rounding ties only
    assert y.min() >= -4 - 1e-6 and y.max() <= 8 + 1e-6


def _scores(name: str, x: np.ndarray) -> np.ndarray:
    from opencrop.cues._ssd_onnx import GRAPHS

    sess = objects._session(GRAPHS.index(name))
    return sess.run(None, {"image": x})


def test_int8_heads_are_close_to_float32_on_a_fixed_input(monkeypatch, need) -> None:
    """On a real photo the int8 graph's class scores stay within 0.05 of the float32 graph's everywhere (the box
    regressors are float32 in both: identical), and the cue's detections are the same boxes and labels."""
    _both_backends(monkeypatch, need)
    import cv2

    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    img = photo("coffee")
    small = cv2.resize(objects._pad_to_aspect(img, objects.MAX_ASPECT)[0], (300, 300), interpolation=cv2.INTER_LINEAR)
    loc, priors, scores = _scores("full", small[None])
    loc8, priors8, scores8 = _scores("full-int8", small[None])
    np.testing.assert_array_equal(loc8, loc)
    np.testing.assert_array_equal(priors8, priors)
    assert np.abs(scores8 - scores).max() < 0.05 and scores.max() > 0.5
    dets = {}
    for p in ("fp32", "int8"):
        monkeypatch.setenv("OPENCROP_SSD_PRECISION", p)
        dets[p] = objects.detect_people_and_objects(img)
    for a, b in zip(dets["fp32"], dets["int8"], strict=True):
        assert a.labels == b.labels
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-3)
        np.testing.assert_allclose(b.scores, a.scores, atol=0.03)
    assert len(dets["fp32"][1]) >= 2  # coffee: a cup and more


def test_precision_selection_is_reported(monkeypatch, need) -> None:
    """int8 class heads by default, float32 with OPENCROP_SSD_PRECISION=fp32; analyze() and the debug text say
    which ran; a bad value is an error naming the setting."""
    _both_backends(monkeypatch, need)
    from opencrop.cues import analyze

    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    monkeypatch.delenv("OPENCROP_SSD_PRECISION", raising=False)
    assert objects.precision() == "int8" and objects.runtime() == "onnxruntime, int8 class heads"
    cues = analyze(photo("astronaut"), want={"people", "objects"})
    assert cues.runtimes == {"people": "onnxruntime, int8 class heads", "objects": "onnxruntime, int8 class heads"}
    monkeypatch.setenv("OPENCROP_SSD_PRECISION", "FP32")
    assert objects.runtime(objects=False) == "onnxruntime, float32"
    assert analyze(photo("astronaut"), want={"people"}).runtimes == {"people": "onnxruntime, float32"}
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "opencv")
    assert analyze(photo("astronaut"), want={"people"}).runtimes == {"people": "OpenCV dnn, float32"}
    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    monkeypatch.setenv("OPENCROP_SSD_PRECISION", "int4")
    with pytest.raises(BackendUnavailable, match="OPENCROP_SSD_PRECISION='int4'"):
        objects.runtime()
    assert analyze(photo("astronaut"), want={"saliency"}).runtimes == {}  # no SSD pass, nothing claimed

    from opencrop import Cropper
    from opencrop.debug import explain

    monkeypatch.delenv("OPENCROP_SSD_PRECISION")
    an = Cropper().analyze(photo("astronaut"))
    assert "people + objects on onnxruntime, int8 class heads" in explain(an, [])["cues"]


def test_int8_graph_that_cannot_load_falls_back_to_float32_with_a_note(monkeypatch, caplog, need) -> None:
    """Default precision: an int8 graph onnxruntime cannot run gives float32 (logged, and runtime() says so);
    with OPENCROP_SSD_PRECISION=int8 asked for explicitly the error is raised instead."""
    _both_backends(monkeypatch, need)
    from opencrop.cues._runtime import Lazy

    monkeypatch.setenv("OPENCROP_SSD_BACKEND", "onnxruntime")
    monkeypatch.delenv("OPENCROP_SSD_PRECISION", raising=False)
    monkeypatch.setattr("opencrop.cues._runtime._NOTED", set())

    def broken():
        raise BackendUnavailable("QLinearConv not implemented (test)")

    sessions = dict(objects._ORT.get().sessions)
    monkeypatch.setitem(objects._ORT.get().sessions, "full-int8", Lazy(broken))
    try:
        with caplog.at_level("WARNING", logger="opencrop.cues"):
            assert objects.runtime() == "onnxruntime, float32"
            assert objects.runtime(objects=False) == "onnxruntime, int8 class heads"  # the people graph still loads
            people, _ = objects.detect_people_and_objects(photo("astronaut"))
        assert len(people) == 1
        assert any("int8 class heads cannot run here" in r.getMessage() and "float32" in r.getMessage()
                   for r in caplog.records)
        monkeypatch.setenv("OPENCROP_SSD_PRECISION", "int8")
        with pytest.raises(BackendUnavailable, match="QLinearConv"):
            objects.detect_objects(photo("astronaut"))
    finally:
        objects._ORT.get().sessions.update(sessions)
