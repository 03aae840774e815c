"""SetCrop (opencrop.models.setcrop): exact-ratio adjustment, proposals and the no-fit note, best-matching-query
scoring, the EMA teacher and its trainer hooks, checkpoints, exact resume of a training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opencrop.boxes import box_iou
from opencrop.candidates import gaic_grid
from opencrop.data.record import CropRecord
from opencrop.errors import ModelFileError
from opencrop.models import create_model
from opencrop.models.base import Request
from opencrop.models.setcrop import EmaTeacher, SetCrop, convert_conditional_detr_state_dict, ratio_adjust

SMALL = {"backbone": "mobilenet_v2", "hidden_dim": 32, "nheads": 4, "enc_layers": 1, "dec_layers": 2,
         "dim_feedforward": 64, "num_queries": 8, "input_size": 64, "max_input_size": 128, "train_sizes": [64, 96]}


def _small(**kw) -> SetCrop:
    torch.manual_seed(0)
    return create_model("setcrop", **{**SMALL, **kw})


def _image(w=96, h=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- ratio adjustment
def _sees_final_boxes(m, x: torch.Tensor) -> None:
    """A box-scoring validity head sees the boxes: moving the box priors changes the final layer's validity."""
    m.eval()
    with torch.no_grad():
        before = m.forward_features(x)["logits"][-1]
        m.bbox_embed.layers[-1].bias += torch.tensor([0.5, -0.5, -0.8, -0.8])
        after = m.forward_features(x)["logits"][-1]
    assert not torch.allclose(before, after)


def test_ratio_adjust_keeps_area_and_centre_and_stays_inside():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 200, (50, 2))], 1).clip(0, [400, 300, 400, 300])
    for r in (1.0, 16 / 9, 9 / 16, 4.0):
        out = ratio_adjust(boxes, r, 400, 300)
        w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
        np.testing.assert_allclose(w / h, r, rtol=1e-9)
        assert (out[:, :2] >= -1e-9).all() and (out[:, 2] <= 400 + 1e-9).all() and (out[:, 3] <= 300 + 1e-9).all()
        fits = (np.sqrt(w * h * r) <= 400) & (np.sqrt(w * h / r) <= 300)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        np.testing.assert_allclose((w * h)[fits], area[fits], rtol=1e-9)  # same area whenever it fits
    # a centred square stays where it is; a full-width box at 4:1 is shrunk to the image width
    sq = ratio_adjust(np.array([[150.0, 100.0, 250.0, 200.0]]), 1.0, 400, 300)
    np.testing.assert_allclose(sq, [[150, 100, 250, 200]], atol=1e-9)
    wide = ratio_adjust(np.array([[0.0, 0.0, 400.0, 300.0]]), 4.0, 400, 300)
    np.testing.assert_allclose(wide, [[0, 100, 400, 200]], atol=1e-9)
    with pytest.raises(ValueError, match="ratio"):
        ratio_adjust(sq, 0.0, 400, 300)


# ---------------------------------------------------------------------------------------------- proposals
def test_propose_ranks_queries_by_validity_and_scores_given_boxes_through_the_best_query():
    m = _small().eval()
    p = m.prepare(_image())
    qb, val = m.query_boxes(p)
    assert qb.shape == (8, 4) and val.shape == (8,) and ((val > 0) & (val < 1)).all()
    boxes, scores = m.propose(p, Request(top_k=5))
    order = np.argsort(-val, kind="stable")
    np.testing.assert_allclose(boxes, qb[order])
    np.testing.assert_allclose(scores, val[order])
    # a query's own box scores its validity (IoU 1 with itself, unless another query coincides)
    _, s = m.propose(p, Request(boxes=qb))
    best = box_iou(qb, qb).argmax(1)
    np.testing.assert_allclose(s, val[best] * box_iou(qb, qb)[np.arange(8), best], rtol=1e-5)
    far = np.array([[0.0, 0.0, 2.0, 2.0]])
    _, s_far = m.propose(p, Request(boxes=far))
    iou = box_iou(far, qb)[0]
    assert s_far[0] == pytest.approx(val[int(iou.argmax())] * iou.max(), rel=1e-5, abs=1e-7)


def test_ratio_request_gives_exact_ratio_and_a_note_when_no_query_fits():
    from opencrop.cues.types import Cues

    m = _small().eval()  # untrained: validity ≈ 0.01 < 0.5, so no query fits
    cues = Cues(96, 64)
    p = m.prepare(_image(), cues)
    boxes, scores = m.propose(p, Request(ratio=1.5, top_k=3))
    np.testing.assert_allclose((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]), 1.5, rtol=1e-9)
    assert (np.diff(scores) <= 0).all() and (scores < 0).all()  # none fits: every score is offset by −1
    assert len(cues.notes) == 1 and "no valid query fits ratio 1.5" in cues.notes[0]
    m.propose(p, Request(ratio=1.5))
    assert len(cues.notes) == 1  # said once per image and ratio
    # confident queries fit: the best box is a fitting one, its score validity × kept IoU, and no note
    with torch.no_grad():
        m.class_embed.bias.fill_(8.0)
    cues = Cues(96, 64)
    p = m.prepare(_image(), cues)
    qb, val = m.query_boxes(p)
    boxes, scores = m.propose(p, Request(ratio=1.0))
    adj = ratio_adjust(qb, 1.0, 96, 64)
    kept = np.diagonal(box_iou(adj, qb))
    assert not cues.notes and scores[0] == pytest.approx(float(np.max(val * kept - (kept < 0.5))))
    # the rules' mask is applied to the boxes in the order they are returned
    _, ruled = m.propose(p, Request(ratio=1.0, allow=lambda b: np.arange(len(b)) >= 1))
    assert np.isneginf(ruled[0]) and np.isfinite(ruled[1:]).all()


# ---------------------------------------------------------------------------------------------- training
def test_forward_shapes_and_loss_use_every_layer():
    m = _small().train()
    x = torch.randn(2, 3, 64, 96)
    out = m.forward_features(x)
    assert out["logits"].shape == (2, 2, 8) and out["boxes"].shape == (2, 2, 8, 4) and out["size"] == (96, 64)
    assert ((out["boxes"] > 0) & (out["boxes"] < 1)).all()
    crops = torch.as_tensor(gaic_grid(96, 64)[:12], dtype=torch.float32)
    batch = {"image": x, "rois": torch.cat([torch.cat([torch.zeros(6, 1), torch.ones(6, 1)]), crops], 1),
             "mos": torch.linspace(1, 5, 12), "counts": torch.tensor([6, 6])}
    loss = m.compute_loss(batch)
    assert set(loss) == {"loss", "ce", "l1", "giou"} and loss["loss"].isfinite()
    crops_n, mos, good = m.targets_from_batch(batch)
    torch.testing.assert_close(torch.cat(mos), batch["mos"])
    # image 0: no MOS ≥ 4, so its best crop only; image 1: the three crops with MOS ≥ 4
    assert [int(g.sum()) for g in good] == [1, 3] and bool(good[0][5]) and good[1][3:].all()
    assert (crops_n[0] <= 1).all() and (crops_n[0] >= 0).all()


def test_ema_teacher_starts_updates_and_swaps():
    m = _small(ema_start_epoch=1, ema_decay=0.5)
    assert isinstance(m.teacher, EmaTeacher) and not m.teacher.is_active
    name = m.teacher.names[0]
    p = m.get_parameter(name)
    m.on_train_epoch_start(0)
    assert not m.teacher.is_active
    m.on_optimizer_step()  # inactive: no update
    assert torch.count_nonzero(getattr(m.teacher, name.replace(".", "__"))) == 0
    m.on_train_epoch_start(1)
    ema = getattr(m.teacher, name.replace(".", "__"))
    assert m.teacher.is_active and torch.equal(ema, p.detach())
    start = p.detach().clone()
    with torch.no_grad():
        p.add_(1.0)
    m.on_optimizer_step()
    torch.testing.assert_close(ema, 0.5 * start + 0.5 * (start + 1.0))
    m.train()
    with m.teacher.swapped(m):
        assert torch.equal(m.get_parameter(name), ema) and not m.training
    assert torch.equal(m.get_parameter(name), start + 1.0) and m.training
    # the teacher's state is in the state dict (so in last.pt) and frozen parameters are not copied
    sd = m.state_dict()
    assert "teacher.active" in sd and bool(sd["teacher.active"])
    assert all(m.get_parameter(n).requires_grad for n in m.teacher.names)
    # with an active teacher the validity loss mixes the hard and the teacher targets (set_losses tests the formula)
    x = torch.randn(1, 3, 64, 96)
    crops = torch.as_tensor(gaic_grid(96, 64)[:6], dtype=torch.float32)
    batch = {"image": x, "rois": torch.cat([torch.zeros(6, 1), crops], 1), "mos": torch.linspace(1, 5, 6),
             "counts": torch.tensor([6])}
    m.eval()
    with_teacher = float(m.compute_loss(batch)["ce"])
    m.teacher.active.fill_(False)
    without = float(m.compute_loss(batch)["ce"])
    assert with_teacher != pytest.approx(without)


def test_optimizer_groups_put_the_backbone_at_its_own_lr():
    m = _small(backbone_lr=1e-5)
    groups = m.optimizer_groups(1e-4)
    assert len(groups) == 2 and groups[1]["lr"] == 1e-5
    n_trainable = sum(1 for p in m.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_trainable
    frozen = _small(backbone_lr=0)
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert len(frozen.optimizer_groups(1e-4)) == 1


def test_weights_round_trip_and_conditional_detr_mapping(tmp_path):
    m = _small(ema_start_epoch=0).eval()
    m.on_train_epoch_start(0)
    path = m.save_weights(tmp_path / "s.pt")
    again = create_model("setcrop", weights=str(path))
    assert again.weights_source == str(path) and again.teacher is not None and again.teacher.is_active
    img = _image()
    np.testing.assert_allclose(m.propose(m.prepare(img), Request())[1], again.propose(again.prepare(img), Request())[1],
                               rtol=1e-6)
    # a Conditional-DETR-style state dict maps by renaming the backbone; the class head and queries are dropped
    target = _small().state_dict()
    detr = {("backbone.0.body." + k[len("backbone."):] if k.startswith("backbone.") else k): v
            for k, v in target.items() if not k.startswith(("class_embed.", "query_embed."))}
    detr["class_embed.weight"] = torch.zeros(91, 32)
    detr["query_embed.weight"] = torch.zeros(300, 32)
    out = convert_conditional_detr_state_dict({"module." + k: v for k, v in detr.items()}, target)
    assert set(out) == {k for k in target if not k.startswith(("class_embed.", "query_embed."))}
    bad = dict(detr)
    bad["input_proj.weight"] = torch.zeros(16, 320, 1, 1)
    with pytest.raises(ModelFileError, match=r"input_proj\.weight"):
        convert_conditional_detr_state_dict(bad, target)
    with pytest.raises(ModelFileError, match="no such weight file"):
        create_model("setcrop", weights=str(tmp_path / "missing.pt"))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="backbone"):
        SetCrop(backbone="vgg16")
    with pytest.raises(ValueError, match="tap"):
        SetCrop(backbone="mobilenet_v2", tap="f3")
    with pytest.raises(ValueError, match="num_queries"):
        SetCrop(backbone="mobilenet_v2", num_queries=0)


# ---------------------------------------------------------------------------------------------- exact resume
def _records(tmp_path, n=4):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 72, 3), dtype=np.uint8)).save(p)
        crops = gaic_grid(72, 48)[:20]
        recs.append(CropRecord(name=f"im{i}.jpg", image_path=p, width=72, height=48, crops=crops,
                               scores=1 + 4 * crops[:, 0] / 72))
    return recs


def test_training_resumes_exactly_with_the_ema_teacher(tmp_path, monkeypatch):
    from opencrop.train import trainer as trainer_mod
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    recs = _records(tmp_path)

    def recipe() -> Recipe:
        return Recipe.from_dict({
            "model": {"name": "setcrop", "kwargs": {**SMALL, "ema_start_epoch": 1, "backbone_lr": 1e-4}},
            "data": {"format": "gaicd", "val_split": "none", "test_split": None, "crops_per_image": None,
                     "flip": 0.0, "photometric": "ssd"},
            "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "grad_clip": 0.1},
            "schedule": {"name": "multistep", "milestones": [2], "gamma": 0.1},
            "train": {"epochs": 3, "seed": 3, "amp": False, "batch_size": 2, "num_workers": 0},
        })

    straight = train(recipe(), tmp_path / "a", records={"train": recs}, progress=False)
    real = trainer_mod.save_atomic
    calls = {"n": 0}

    def kill_after_second(obj, path):
        real(obj, path)
        calls["n"] += 1
        if calls["n"] == 2:  # the teacher started in epoch 2 (0-based 1): it is active in this last.pt
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_atomic", kill_after_second)
    with pytest.raises(KeyboardInterrupt):
        train(recipe(), tmp_path / "b", records={"train": recs}, progress=False)
    monkeypatch.setattr(trainer_mod, "save_atomic", real)
    mid = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert mid["epoch"] == 2 and bool(mid["model"]["teacher.active"])
    resumed = train(recipe(), tmp_path / "b", records={"train": recs}, resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert set(a["model"]) == set(b["model"]) and any(k.startswith("teacher.") for k in a["model"])
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert resumed.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    assert straight.history[0]["train_loss"] != straight.history[-1]["train_loss"]


# ---------------------------------------------------------------------------------------------- k-means anchors
def _grid_records(tmp_path, n, w=72, h=48, tag="im"):
    """Records whose good crops (MOS ≥ 4) depend on the record: in image ``i`` the grid crops starting at
    ``x1 = (3, 9, 21)[i % 3]`` have MOS 5, the others ≤ 2 (so the good crops differ between records)."""
    rng = np.random.default_rng(1)
    recs = []
    for i in range(n):
        p = tmp_path / f"{tag}{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        crops = gaic_grid(w, h)
        mos = 5 - np.abs(crops[:, 0] - (3, 9, 21)[i % 3]) / 2
        recs.append(CropRecord(name=f"{tag}{i}.jpg", image_path=p, width=w, height=h, crops=crops, scores=mos))
    return recs


def test_kmeans_anchor_prior_sets_the_initial_boxes(tmp_path):
    from opencrop.boxes import cxcywh_to_xyxy, kmeans_boxes, xyxy_to_cxcywh
    from opencrop.models.setcrop import good_crops_normalised

    recs = _grid_records(tmp_path, 5)
    good = good_crops_normalised(recs)
    expected = np.concatenate([r.crops[r.scores >= 4] / [72, 48, 72, 48] for r in recs])
    np.testing.assert_allclose(good, expected, rtol=1e-12)
    m = _small(anchor_init="kmeans").eval()
    assert not any(p.requires_grad for p in m.transformer.decoder.ref_point_head.parameters())
    m.init_from_data(recs)
    centres = kmeans_boxes(good, 8, seed=0)
    prior = m.anchor_boxes.detach().sigmoid().double().numpy()
    np.testing.assert_allclose(prior, xyxy_to_cxcywh(centres), atol=1e-5)
    # the initial boxes are the priors (the last box layer starts at ~0), on any image, at every decoder layer
    x = torch.from_numpy(_image(96, 64, seed=3)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        boxes = m.forward_features(x)["boxes"]
    assert boxes.shape == (2, 1, 8, 4)
    np.testing.assert_allclose(boxes.double().numpy(), np.broadcast_to(xyxy_to_cxcywh(centres), (2, 1, 8, 4)),
                               atol=0.01)
    # without the option the initial boxes are not the priors: centre = ref point, size ≈ 0.5 × 0.5
    with torch.no_grad():
        plain = _small().eval().forward_features(x)["boxes"][-1, 0].double().numpy()
    np.testing.assert_allclose(plain[:, 2:], 0.5, atol=0.01)
    assert np.abs(plain - xyxy_to_cxcywh(centres)).max() > 0.1
    # the query boxes the model proposes are the k-means centres in pixels
    qb, _ = m.query_boxes(m.prepare(_image(96, 64)))
    np.testing.assert_allclose(qb, cxcywh_to_xyxy(xyxy_to_cxcywh(centres)) * [96, 64, 96, 64], atol=1.5)
    # box_lr: the box head and the priors form their own group; the unused ref_point_head is in none
    groups = _small(anchor_init="kmeans", box_lr=1e-5, backbone_lr=0).optimizer_groups(1e-4)
    assert [g.get("lr") for g in groups] == [None, 1e-5]
    assert len(groups[1]["params"]) == 7  # bbox_embed: 3 weights + 3 biases, + anchor_boxes
    with pytest.raises(ValueError, match="anchor_init"):
        SetCrop(backbone="mobilenet_v2", anchor_init="grid")


RANKING = {"quality_target": True, "quality_power": 2.0, "valid_loss": "qfl", "rank_weight": 1.0}


@pytest.mark.parametrize("extra", [{}, RANKING], ids=["paper-loss", "ranking-options"])
def test_trainer_initialises_the_anchors_from_the_training_split_only_and_resumes_exactly(tmp_path, monkeypatch,
                                                                                         extra):
    from opencrop.boxes import kmeans_boxes, xyxy_to_cxcywh
    from opencrop.models.setcrop import good_crops_normalised
    from opencrop.train import trainer as trainer_mod
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    recs = _grid_records(tmp_path, 8)
    test = _grid_records(tmp_path, 3, tag="test")
    seen: list[list[str]] = []
    real_init = SetCrop.init_from_data

    def spy(self, records):
        seen.append([r.name for r in records])
        real_init(self, records)

    monkeypatch.setattr(SetCrop, "init_from_data", spy)

    def recipe() -> Recipe:
        return Recipe.from_dict({
            "model": {"name": "setcrop", "kwargs": {**SMALL, "anchor_init": "kmeans", "backbone_lr": 0,
                                                    "train_sizes": None, **extra}},
            "data": {"format": "gaicd", "val_split": "holdout", "holdout_fraction": 0.25, "test_split": "test",
                     "crops_per_image": None, "flip": 0.0, "photometric": "none"},
            "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "grad_clip": 0.1},
            "train": {"epochs": 2, "seed": 3, "amp": False, "batch_size": 1, "num_workers": 0},
        })

    straight = train(recipe(), tmp_path / "a", records={"train": recs, "test": test}, progress=False)
    import json

    split = json.loads((tmp_path / "a" / "split.json").read_text())
    assert seen == [split["train"]] and len(split["train"]) == 6
    assert not set(seen[0]) & ({r.name for r in test} | set(split["val"]))
    # the run started from the k-means centres of the training records' good crops
    train_recs = [r for r in recs if r.name in split["train"]]
    start = xyxy_to_cxcywh(kmeans_boxes(good_crops_normalised(train_recs), 8, seed=0))
    first = create_model("setcrop", **{**SMALL, "anchor_init": "kmeans"})
    torch.manual_seed(0)
    first.init_from_data(train_recs)
    np.testing.assert_allclose(first.anchor_boxes.detach().sigmoid().numpy(), start, atol=1e-5)
    # a resumed run takes its priors from last.pt: the hook is not called again, the result is bit-exact
    real_save = trainer_mod.save_atomic
    calls = {"n": 0}

    def kill_after_first(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_atomic", kill_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(recipe(), tmp_path / "b", records={"train": recs, "test": test}, progress=False)
    monkeypatch.setattr(trainer_mod, "save_atomic", real_save)
    seen.clear()
    resumed = train(recipe(), tmp_path / "b", records={"train": recs, "test": test}, resume=True, progress=False)
    assert seen == []
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    moved = a["anchor_boxes"].sigmoid().numpy()
    assert 0 < np.abs(moved - start).max() < 0.2  # the priors are trained, starting from the centres
    if extra:  # opencrop's ranking options are model-file config keys and reach the criterion
        saved = create_model("setcrop", weights=tmp_path / "b" / "best.pt")
        assert {k: saved.config[k] for k in RANKING} == RANKING
        assert saved.loss_cfg.quality_target and saved.loss_cfg.valid_loss == "qfl"
        assert saved.loss_cfg.quality_power == 2.0 and saved.loss_cfg.rank_weight == 1.0
        assert "train_rank" in straight.history[-1]


# ---------------------------------------------------------------------------------------------- evaluation
def test_evaluation_uses_the_proposals_for_set_metrics_and_the_top_query_on_gt_data(tmp_path):
    from opencrop.data.registry import load_dataset
    from opencrop.data.synth import synthesize
    from opencrop.eval.metrics import set_prediction_metrics
    from opencrop.eval.runner import evaluate, read_frame

    m = _small(input_size=96, max_input_size=192).eval()
    recs = load_dataset(f"gaicd:{synthesize('gaicd', tmp_path / 'g', n=8, seed=0, size=(160, 120))}", split="test")
    assert len(recs) == 2
    # stand-in query boxes (analysis pixels) per image: image 0 has its best crop as its most valid query, image 1
    # has it as its least valid one (rank 8 of 8), so hit@5 is 50 %
    frames = [read_frame(r, m.analysis_size) for r in recs]
    fake = []
    for i, (r, f) in enumerate(zip(recs, frames, strict=True)):
        crops = f.to_analysis(f.from_stored(r.crops))
        best = crops[int(np.argmax(r.scores))]
        others = crops[np.argsort(box_iou(crops, best[None])[:, 0], kind="stable")[:7]]  # far from the best crop
        assert box_iou(others, best[None]).max() < 0.85
        boxes = np.concatenate([best[None], others]) if i == 0 else np.concatenate([others, best[None]])
        fake.append((boxes, np.linspace(0.9, 0.2, 8)))
    calls, per_image = iter(fake), {}  # one stand-in per prepared image (its proposals and its scored crops)

    def stand_in(prepared):
        if id(prepared) not in per_image:
            per_image[id(prepared)] = next(calls)
        return per_image[id(prepared)]

    m.query_boxes = stand_in
    res = evaluate(m, recs)
    assert res.protocol == "scored" and {"srcc", "hit5@0.85", "ap90@0.90"} <= set(res.metrics)
    want = set_prediction_metrics([f.to_original(b) for f, (b, _) in zip(frames, fake, strict=True)],
                                  [v for _, v in fake], [f.from_stored(r.crops) for f, r in zip(frames, recs,
                                                                                               strict=True)],
                                  [r.scores for r in recs])
    assert res.metrics["hit5@0.85"] == pytest.approx(50.0) and res.metrics["hit10@0.85"] == pytest.approx(100.0)
    for k in ("hit5@0.90", "ap5@0.85", "ap10@0.85", "ap90@0.90"):
        assert res.metrics[k] == pytest.approx(want[k]), k
    assert res.metrics["ap10@0.85"] > 0
    del m.query_boxes
    flms = load_dataset(f"flms:{synthesize('flms', tmp_path / 'f', n=2, seed=1, size=(160, 120))}")
    gt = evaluate(m, flms)
    assert gt.protocol == "gt-free" and {"iou", "bde"} <= set(gt.metrics)
    frame = read_frame(flms[0], m.analysis_size)
    qb, val = m.query_boxes(m.prepare(frame))
    np.testing.assert_allclose(gt.per_image[0]["pred"], frame.to_original(qb[int(np.argmax(val))])[0])


# ---------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name,queries,soft,ema,good,nms,milestones,epochs", [
    ("setcrop_gaicd", 90, 0.5, None, 4.0, 0.0, [40, 50], 70),
    ("setcrop_cpc", 24, 0.0, 45, 2.0, 0.8, [40], 50),
])
def test_recipes_follow_the_specification(name, queries, soft, ema, good, nms, milestones, epochs):
    from pathlib import Path

    from opencrop.train.recipe import load_recipe

    r = load_recipe(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    kw = r.model.kwargs
    assert r.model.name == "setcrop" and kw["backbone"] == "resnet50" and kw["num_queries"] == queries
    assert (kw["soft_bound"], kw.get("ema_start_epoch"), kw["good_thresh"], kw["good_nms"]) == (soft, ema, good, nms)
    assert (kw["hidden_dim"], kw["enc_layers"], kw["dec_layers"], kw["input_size"], kw["max_input_size"]) == (
        256, 6, 6, 600, 1333)
    assert (r.optim.name, r.optim.lr, r.optim.weight_decay, r.optim.grad_clip, kw["backbone_lr"]) == (
        "adamw", 1e-4, 1e-4, 0.1, 1e-5)
    assert (r.schedule.milestones, r.train.epochs, r.train.batch_size, r.data.flip) == (milestones, epochs, 1, 0.0)
    assert r.data.crops_per_image is None  # every annotated crop: the good crops and the smoothing need them all
    # opencrop's additions stay off in the paper recipes (absent, or at the paper's value)
    m = create_model("setcrop", **{**kw, "pretrained_backbone": False})
    assert m.anchor_boxes is None and m.box_lr is None and m.rank_nms is None
    assert (m.loss_cfg.quality_target, m.loss_cfg.valid_loss, m.loss_cfg.rank_weight) == (False, "focal", 0.0)
    small = {**kw, **{k: v for k, v in SMALL.items() if k != "num_queries"}, "pretrained_backbone": False}
    m = create_model("setcrop", **small)
    assert m.config["num_queries"] == queries and (m.teacher is not None) == (ema is not None)


def test_rank_nms_puts_near_duplicates_after_distinct_crops() -> None:
    from opencrop.models.setcrop_post import propose_from_queries

    # queries 0 and 1 are near duplicates (IoU 0.9), 2 overlaps 0 at IoU 1/3, 3 is far away
    qb = np.array([[0, 0, 100, 100], [0, 0, 100, 90], [50, 0, 150, 100], [200, 0, 300, 100]], np.float64)
    val = np.array([0.9, 0.8, 0.7, 0.6])
    assert box_iou(qb[:1], qb[1:2])[0, 0] == pytest.approx(0.9)
    boxes, scores = propose_from_queries(qb, val, 300, 100, Request(ratio=None), 0.5, 0.5)
    np.testing.assert_array_equal(boxes, qb)  # the paper: by validity
    np.testing.assert_allclose(scores, val)
    boxes, scores = propose_from_queries(qb, val, 300, 100, Request(ratio=None), 0.5, 0.5, rank_nms=0.8)
    np.testing.assert_array_equal(boxes, qb[[0, 2, 3, 1]])  # the duplicate of 0 goes last, the others keep order
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6, 0.8 - 1])
    boxes, _ = propose_from_queries(qb, val, 300, 100, Request(ratio=None), 0.5, 0.5, rank_nms=0.3)
    np.testing.assert_array_equal(boxes, qb[[0, 3, 1, 2]])  # at 0.3 query 2 is suppressed too


def test_rank_nms_is_a_saved_inference_option(tmp_path) -> None:
    m = _small(rank_nms=0.8).eval()
    assert m.config["rank_nms"] == 0.8 and _small().config["rank_nms"] is None
    prep = m.prepare(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8))
    qb, _ = m.query_boxes(prep)
    boxes, scores = m.propose(prep, Request(ratio=None))
    assert sorted(map(tuple, boxes)) == sorted(map(tuple, qb))  # a reordering, no box lost
    assert np.all(np.diff(scores) <= 0)
    path = m.save_weights(tmp_path / "s.pt")
    assert create_model("setcrop", weights=str(path)).rank_nms == 0.8
    off = create_model("setcrop", weights=str(path), rank_nms=1.0)  # nothing overlaps more than 1: the paper's order
    p = off.prepare(_image(128, 96))
    qb, val = off.query_boxes(p)
    np.testing.assert_array_equal(off.propose(p, Request(ratio=None))[0], qb[np.argsort(-val, kind="stable")])


# ---------------------------------------------------------------------------------------------- valid_head="roi"
def test_roi_validity_head_scores_the_final_boxes(tmp_path) -> None:
    m = _small(valid_head="roi").eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = m.forward_features(x)
        assert out["logits"].shape == (2, 1, 8)
        # the final layer's validity comes from the RoI head, the auxiliary layer's from class_embed
        m.roi_head[-1].bias += 1.0
        again = m.forward_features(x)
    torch.testing.assert_close(again["logits"][:-1], out["logits"][:-1])
    torch.testing.assert_close(again["logits"][-1], out["logits"][-1] + 1.0)
    # the final validity trains the RoI head and the fusion, not class_embed
    m.train().zero_grad()
    m.forward_features(x)["logits"][-1].sum().backward()
    assert any(p.grad is not None and p.grad.any() for p in m.roi_head.parameters())
    assert any(p.grad is not None and p.grad.any() for p in m.roi_neck.parameters())
    assert m.class_embed.weight.grad is None or not m.class_embed.weight.grad.any()
    _sees_final_boxes(m, x)
    # the option is saved with the weights
    path = m.save_weights(tmp_path / "roi.pt")
    loaded = create_model("setcrop", weights=str(path))
    img = _image()
    np.testing.assert_allclose(m.propose(m.prepare(img), Request())[1],
                               loaded.propose(loaded.prepare(img), Request())[1], rtol=1e-6)
    with pytest.raises(ValueError, match="valid_head"):
        SetCrop(backbone="mobilenet_v2", valid_head="mlp")
    with pytest.raises(ValueError, match="roi_crop_weight"):
        SetCrop(backbone="mobilenet_v2", roi_crop_weight=1.0)  # the term needs the RoI head


def test_roi_crop_term_adds_the_annotated_crops_loss() -> None:
    crops = torch.as_tensor(gaic_grid(96, 64)[:12], dtype=torch.float32)
    batch = {"image": torch.randn(1, 3, 64, 96), "rois": torch.cat([torch.zeros(12, 1), crops], 1),
             "mos": torch.linspace(1, 5, 12), "counts": torch.tensor([12])}
    torch.manual_seed(1)
    plain = _small(valid_head="roi").eval().compute_loss(batch)
    torch.manual_seed(1)
    m = _small(valid_head="roi", roi_crop_weight=2.0).eval()
    loss = m.compute_loss(batch)
    assert "roi_crop" not in plain and float(loss["roi_crop"]) > 0
    torch.testing.assert_close(loss["loss"], plain["loss"] + m.loss_cfg.cls_weight * 2.0 * loss["roi_crop"])


# ---------------------------------------------------------------------------------------------- valid_head="gafic"
def _crop_batch(n_img: int = 1, heatmap: bool = True) -> dict:
    crops = torch.as_tensor(gaic_grid(96, 64)[:12], dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(n_img, 3, 64, 96, generator=g),
             "rois": torch.cat([torch.arange(n_img).repeat_interleave(12)[:, None].float(), crops.repeat(n_img, 1)],
                               1),
             "mos": torch.linspace(1, 5, 12 * n_img), "counts": torch.full((n_img,), 12)}
    if heatmap:
        batch["heatmap"] = torch.rand(n_img, 1, 64, 64, generator=g)
    return batch


def test_gafic_validity_head_scores_the_final_boxes(tmp_path) -> None:
    from opencrop.models.gafic import GAFICHead

    m = _small(valid_head="gafic").eval()
    assert isinstance(m.gafic_head, GAFICHead) and m.roi_head is None
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = m.forward_features(x)
        assert out["logits"].shape == (2, 1, 8) and out["gafic"]["fused"].shape == (1, 32, 4, 6)
        # the final validity is exp(calib[0]) · (GACE score of the final box − calib[1]); the auxiliary layer's
        # comes from class_embed
        cx, cy, bw, bh = out["boxes"][-1, 0].unbind(-1)  # the final boxes, not clipped to the image
        rois = torch.stack([torch.zeros(8), (cx - bw / 2) * 96, (cy - bh / 2) * 64, (cx + bw / 2) * 96,
                            (cy + bh / 2) * 64], 1)
        s = m.gafic_head.forward_scores(out["gafic"], rois)
        torch.testing.assert_close(out["logits"][-1, 0], 2.0 * (s - 4.0), rtol=1e-5, atol=1e-4)
        m.gafic_calib[1] -= 1.0
        again = m.forward_features(x)
    torch.testing.assert_close(again["logits"][:-1], out["logits"][:-1])
    torch.testing.assert_close(again["logits"][-1], out["logits"][-1] + 2.0)
    # the final validity trains the GAFIC head and its calibration, not class_embed
    m.train().zero_grad()
    m.forward_features(x)["logits"][-1].sum().backward()
    for part in (m.gafic_head.fusion, m.gafic_head.attention, m.gafic_head.crop_branch, m.gafic_head.global_branch,
                 m.gafic_head.fc):
        assert any(p.grad is not None and p.grad.any() for p in part.parameters()), part
    assert m.gafic_calib.grad is not None and m.gafic_calib.grad.abs().min() > 0
    assert m.class_embed.weight.grad is None or not m.class_embed.weight.grad.any()
    _sees_final_boxes(m, x)
    # the option and its keys are saved with the weights; the other heads' configs do not gain the keys
    path = m.save_weights(tmp_path / "gafic.pt")
    loaded = create_model("setcrop", weights=str(path))
    assert loaded.config["valid_head"] == "gafic" and loaded.config["gafic_reddim"] == 32
    img = _image()
    np.testing.assert_allclose(m.propose(m.prepare(img), Request())[1],
                               loaded.propose(loaded.prepare(img), Request())[1], rtol=1e-6)
    assert "gafic_loss_weight" not in _small(valid_head="roi").config
    with pytest.raises(ValueError, match="gafic_loss_weight"):
        SetCrop(backbone="mobilenet_v2", valid_head="gafic", gafic_loss_weight=-1.0)
    with pytest.raises(ValueError, match="roi_crop_weight"):
        SetCrop(backbone="mobilenet_v2", valid_head="gafic", roi_crop_weight=1.0)  # the term is the RoI head's


def test_gafic_head_adds_gafics_own_loss_on_the_annotated_crops() -> None:
    from opencrop.models.hcic import hcic_loss

    batch = _crop_batch(n_img=2)
    torch.manual_seed(1)
    plain = _small(valid_head="gafic", gafic_loss_weight=0.0).eval().compute_loss(batch)
    torch.manual_seed(1)
    m = _small(valid_head="gafic", gafic_loss_weight=2.0).eval()
    loss = m.compute_loss(batch)
    assert "gafic" not in plain and float(loss["gafic"]) > 0
    torch.testing.assert_close(loss["loss"], plain["loss"] + 2.0 * loss["gafic"])
    # the term is GAFIC's loss of the head's scores of the batch's crops (in input pixels) and heat maps
    with torch.no_grad():
        feats = m.gafic_head.agff(*m.backbone(batch["image"])[:3])
        want = hcic_loss(m.gafic_head.forward_scores(feats, batch["rois"]), batch, m.gafic_head.heatmap(feats))
    torch.testing.assert_close(loss["gafic"], want["loss"], rtol=1e-4, atol=1e-5)
    # the heat-map term needs the pseudo heat maps, unless it is off
    with pytest.raises(ValueError, match="heat map"):
        m.compute_loss(_crop_batch(heatmap=False))
    off = _small(valid_head="gafic", gafic_heatmap_weight=0.0).eval().compute_loss(_crop_batch(heatmap=False))
    assert float(off["gafic"]) > 0
    # gradients of the term reach the whole GAFIC head, the heat-map attention included
    m2 = _small(valid_head="gafic", train_sizes=None).train()
    m2.compute_loss(batch)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m2.gafic_head.parameters())


def test_training_with_the_gafic_head_and_heat_maps_resumes_exactly(tmp_path, monkeypatch):
    from opencrop.train import trainer as trainer_mod
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    recs = _records(tmp_path)
    heat = tmp_path / "heat"
    heat.mkdir()
    rng = np.random.default_rng(1)
    for r in recs:
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(heat / f"{Path(r.name).stem}.png")

    def recipe() -> Recipe:
        return Recipe.from_dict({
            "model": {"name": "setcrop", "kwargs": {**SMALL, "valid_head": "gafic", "anchor_init": "kmeans",
                                                    "backbone_lr": 1e-4, "gafic_loss_weight": 0.5}},
            "data": {"format": "gaicd", "val_split": "none", "test_split": None, "crops_per_image": None,
                     "flip": 0.0, "photometric": "ssd", "heatmap_dir": str(heat)},
            "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "grad_clip": 0.1},
            "train": {"epochs": 2, "seed": 3, "amp": False, "batch_size": 2, "num_workers": 0},
        })

    straight = train(recipe(), tmp_path / "a", records={"train": recs}, progress=False)
    real = trainer_mod.save_atomic
    calls = {"n": 0}

    def kill_after_first(obj, path):
        real(obj, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_atomic", kill_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(recipe(), tmp_path / "b", records={"train": recs}, progress=False)
    monkeypatch.setattr(trainer_mod, "save_atomic", real)
    resumed = train(recipe(), tmp_path / "b", records={"train": recs}, resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert any(k.startswith("gafic_head.") for k in a["model"]) and "gafic_calib" in a["model"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert resumed.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    assert straight.history[0]["train_loss"] != straight.history[-1]["train_loss"]
