"""Real detectors on real photos: positions checked against independent measurements (offline-models.md §1)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from cues_helpers import photo
from PIL import Image

from opencrop.boxes import box_iou
from opencrop.cues import analyze, detect_faces, detect_objects, detect_people, person_mask, saliency

# Astronaut face and person on the 512² image. References: MediaPipe's own FaceDetection (235, 69, 99, 99 xywh)
# and SSD-MobileNetV2 (14, 9)-(463, 478), both measured on the 640×480 resize (offline-models.md §1.2-1.3),
# mapped to 512² (x × 0.8, y × 16/15).
ASTRONAUT_FACE = np.array([188.0, 73.6, 267.2, 179.2])
ASTRONAUT_PERSON = np.array([11.2, 9.6, 370.4, 509.9])
# CenterFace's box on the same photo (229, 48)-(335, 172) → 512²: a looser face box that must hold ours' centre.
CENTERFACE_BOX = np.array([183.2, 51.2, 268.0, 183.5])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(box_iou(np.asarray(a, float)[None], np.asarray(b, float)[None])[0, 0])


def test_astronaut_face(need):
    need("faces")
    det = detect_faces(photo("astronaut"))
    assert len(det) == 1 and det.labels == ["face"]
    box = det.boxes[0]
    assert det.boxes.dtype == np.float32 and det.scores[0] > 0.8
    assert _iou(box, ASTRONAUT_FACE) > 0.6
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert CENTERFACE_BOX[0] < cx < CENTERFACE_BOX[2] and CENTERFACE_BOX[1] < cy < CENTERFACE_BOX[3]


def test_astronaut_person(need):
    need("people")
    det = detect_people(photo("astronaut"))
    assert det.labels == ["person"]
    assert _iou(det.boxes[0], ASTRONAUT_PERSON) > 0.8


def test_camera_person_and_face(need):
    need("faces")
    need("people")
    img = photo("camera")  # grey cameraman, stacked to RGB
    faces, people = detect_faces(img), detect_people(img)
    assert len(faces) == 1 and len(people) == 1
    f, p = faces.boxes[0], people.boxes[0]
    # the face is in the upper half, inside the person box, on the cameraman's head (x 180-270)
    assert 170 < f[0] < f[2] < 280 and 100 < f[1] < f[3] < 230
    assert p[0] - 2 <= f[0] and f[2] <= p[2] + 2 and p[1] - 2 <= f[1]
    assert (p[3] - p[1]) > 0.8 * img.shape[0]


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_false_people(name, need):
    need("faces")
    need("people")
    img = photo(name)
    assert len(detect_people(img)) == 0
    assert len(detect_faces(img)) == 0


def test_objects_coco_labels(need):
    need("objects")
    assert "cup" in detect_objects(photo("coffee")).labels
    chelsea = detect_objects(photo("chelsea"))
    assert chelsea.labels[0] == "cat" and "person" not in chelsea.labels


def _group() -> np.ndarray:
    """Two astronauts side by side, 512×256: a 2:1 'group photo'."""
    a = photo("astronaut")
    return np.asarray(Image.fromarray(np.concatenate([a, a], axis=1)).resize((512, 256), Image.LANCZOS))


def test_group_two_faces_two_people(need):
    need("faces")
    need("people")
    g = _group()
    faces = detect_faces(g)
    assert len(faces) == 2
    # each half holds one face, at the astronaut face's position scaled by 1/2
    ref = np.concatenate([ASTRONAUT_FACE[None] / 2, ASTRONAUT_FACE[None] / 2 + [256, 0, 256, 0]])
    ious = box_iou(faces.boxes.astype(float), ref)
    assert (ious.max(axis=0) > 0.5).all()
    people = detect_people(g)
    assert len(people) == 2
    pref = np.concatenate([ASTRONAUT_PERSON[None] / 2, ASTRONAUT_PERSON[None] / 2 + [256, 0, 256, 0]])
    assert (box_iou(people.boxes.astype(float), pref).max(axis=0) > 0.6).all()


def test_person_at_the_edge(need):
    need("faces")
    need("people")
    # the left 250 px of a 384² astronaut (her body runs to x≈277, so the frame cuts it) pasted flush with the
    # right edge of a grey 683×384 canvas: a person leaving the picture on the right
    a = np.asarray(Image.fromarray(photo("astronaut")).resize((384, 384), Image.LANCZOS))
    img = np.full((384, 683, 3), 120, np.uint8)
    img[:, 683 - 250 :] = a[:, :250]
    people = detect_people(img)
    assert len(people) == 1
    assert people.boxes[0, 2] > 675 and 425 < people.boxes[0, 0] < 460  # from the paste to the right edge
    faces = detect_faces(img)
    assert len(faces) == 1
    expected = ASTRONAUT_FACE * 0.75 + [433, 0, 433, 0]
    assert _iou(faces.boxes[0], expected) > 0.55


def test_person_mask(need):
    need("person_mask")
    img = photo("astronaut")
    m = person_mask(img)
    assert m is not None and m.shape == img.shape[:2] and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    x1, y1, x2, y2 = ASTRONAUT_FACE.astype(int)
    assert m[y1:y2, x1:x2].mean() > 0.9  # the face is person
    assert m[:60, 420:].mean() < 0.1  # the shuttle model's corner is not


def test_saliency_map():
    img = photo("coffee")
    s = saliency(img)
    assert s.dtype == np.float32 and s.shape == (43, 64)  # long side 64, aspect kept
    assert s.min() == 0.0 and s.max() == pytest.approx(1.0)
    # the cup (SSD's box, roughly x 150-400, y 15-210 of 512×341) is more salient than the image as a whole
    sy, sx = s.shape[0] / img.shape[0], s.shape[1] / img.shape[1]
    cup = s[int(15 * sy) : int(210 * sy), int(150 * sx) : int(400 * sx)]
    assert cup.mean() > 1.3 * s.mean()
    assert not saliency(np.full((100, 80, 3), 90, np.uint8)).any()  # a flat image has no salient point


def test_analyze_astronaut(need):
    need("faces")
    need("people")
    img = photo("astronaut")
    cues = analyze(img, want={"faces", "people", "objects", "saliency", "person_mask"})
    assert (cues.width, cues.height) == (512, 512)
    assert len(cues.faces) == 1 and len(cues.people) == 1 and cues.notes == []
    assert cues.saliency is not None and cues.person_mask is not None
    assert "person" not in cues.objects.labels


def test_analyze_no_person_mask_without_people(need):
    need("people")
    cues = analyze(photo("chelsea"), want={"faces", "people", "person_mask"})
    assert cues.person_mask is None  # the selfie model lights up the cat; analyze() does not pass that on


def test_analyze_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown cue"):
        analyze(photo("coffee"), want={"faces", "hands"})
    with pytest.raises(ValueError, match="uint8"):
        analyze(np.zeros((10, 10, 3), np.float32))


def test_detectors_thread_safe(need):
    need("faces")
    need("people")
    imgs = [photo("astronaut"), _group(), photo("coffee")]
    expected = [(detect_faces(i).boxes, detect_people(i).boxes) for i in imgs]
    errors: list[str] = []

    def work(k: int) -> None:
        for j in range(3):
            i = (k + j) % 3
            f, p = detect_faces(imgs[i]).boxes, detect_people(imgs[i]).boxes
            if not (np.allclose(f, expected[i][0], atol=1e-3) and np.allclose(p, expected[i][1], atol=1e-3)):
                errors.append(f"thread {k} image {i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize(("nx", "ny"), [(2, 2), (3, 2)])
def test_small_faces_in_a_grid_group(nx, ny, need):
    """nx × ny astronauts shrunk to 512 px (faces of 26-40 px): every face found, at its grid position."""
    need("faces")
    a = photo("astronaut")
    grid = np.concatenate([np.concatenate([a] * nx, axis=1)] * ny, axis=0)
    s = 512 / max(grid.shape[:2])
    img = np.asarray(Image.fromarray(grid).resize((round(512 * nx * s), round(512 * ny * s)), Image.LANCZOS))
    faces = detect_faces(img)
    ref = np.array([ASTRONAUT_FACE * s + 512 * s * np.array([i, j, i, j]) for j in range(ny) for i in range(nx)])
    assert len(faces) == nx * ny
    assert (box_iou(faces.boxes.astype(float), ref).max(axis=0) > 0.5).all()


def test_peers_astronaut_16x9_cases(need):
    """peers.md §1.3: the 16:9 crops other tools chose on astronaut (1225² boxes scaled to 512²), judged with the
    real detections. Centre and smartcrop.js cut the head, smartcrop.py drops it, libvips keeps it."""
    need("faces")
    need("people")
    from opencrop.cues import body_cut_penalty, face_terms, head_boxes

    img = photo("astronaut")
    heads = head_boxes(detect_faces(img).boxes)
    s = 512 / 1225
    peers = {
        "libvips attention": [0, 0, 1225, 689],
        "libvips entropy": [0, 67, 1225, 689],
        "centre": [0, 268, 1225, 689],
        "smartcrop.js": [0, 344, 1225, 684],
        "smartcrop.py": [0, 441, 1223, 683],
    }
    boxes = np.array(list(peers.values()), dtype=float) * s
    state = dict(zip(peers, face_terms(boxes, heads).state[:, 0].tolist(), strict=True))
    # libvips entropy starts at y = 28 (512 px): it trims the top of her hair (y ≈ 15-20, marked in
    # benchmarks/subject_marks.json), which the head box has covered since head_pad_top went 0.45 → 0.60
    assert state == {"libvips attention": 0, "libvips entropy": 1, "centre": 1, "smartcrop.js": 1, "smartcrop.py": 2}
    pen = body_cut_penalty(boxes, detect_people(img).boxes)
    assert pen[2] > pen[0] > 0  # every 16:9 crop trims the seated body; the centre crop also takes the head off
