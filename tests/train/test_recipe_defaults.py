"""Faithful recipe defaults (issue 9 item 5): BN/dropout mode during training, HCIC's as-coded rank loss, training on
the whole train split with the selection reported, and configs/*.yaml following the released code."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from opencrop.candidates import gaic_grid
from opencrop.data.record import CropRecord
from opencrop.models.hcic import hcic_loss
from opencrop.train.recipe import Recipe, RecipeError, load_recipe
from opencrop.train.trainer import train, training_mode

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _records(tmp_path: Path, n: int, prefix: str = "im", size: int = 48) -> list[CropRecord]:
    rng = np.random.default_rng(len(prefix) + n)
    recs = []
    for i in range(n):
        p = tmp_path / f"{prefix}{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(p)
        crops = gaic_grid(size, size)
        recs.append(CropRecord(name=f"{prefix}{i}.png", image_path=p, width=size, height=size, crops=crops,
                               scores=1 + 4 * crops[:, 0] / size))
    return recs


# ---------------------------------------------------------------------------------------------- module mode
def test_training_mode_per_epoch():
    assert [training_mode("train", e) for e in range(3)] == [True, True, True]
    assert [training_mode("eval", e) for e in range(3)] == [False, False, False]
    assert [training_mode("eval_after_first_epoch", e) for e in range(3)] == [True, False, False]
    with pytest.raises(RecipeError, match="module_mode"):
        training_mode("frozen", 0)
    with pytest.raises(RecipeError, match=r"train\.module_mode: 'frozen' is not one of"):
        Recipe.from_dict({"train": {"module_mode": "frozen"}})


@pytest.mark.parametrize("mode", ["train", "eval", "eval_after_first_epoch"])
def test_module_mode_batchnorm_stats_and_dropout(tmp_path, monkeypatch, mode):
    """The real GAIC model (MobileNetV2 + head BN + dropout 0.5), 3 epochs × 2 images: BN running statistics move
    exactly in the train-mode epochs, dropout is the identity in the eval-mode epochs, weights train in every mode."""
    from opencrop.models import create_model

    recs = _records(tmp_path, 2)
    recipe = Recipe.from_dict({
        "model": {"name": "gaic", "kwargs": {"pretrained_backbone": False}},
        "data": {"val_split": "none", "test_split": None, "crops_per_image": 8, "flip": 0.0, "photometric": "none"},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": 3, "seed": 0, "amp": False, "module_mode": mode},
    })
    torch.manual_seed(0)
    initial = create_model("gaic", pretrained_backbone=False).state_dict()
    calls: list[dict] = []
    real_create = create_model

    def hooked(*a, **k):  # hook the model the trainer builds
        m = real_create(*a, **k)
        bn = next(x for x in m.modules() if isinstance(x, nn.BatchNorm2d))
        drop = next(x for x in m.modules() if isinstance(x, nn.Dropout))
        bn.register_forward_pre_hook(lambda mod, inp: calls.append(
            {"bn_training": mod.training, "before": mod.running_mean.clone()}))
        bn.register_forward_hook(lambda mod, inp, out: calls[-1].update(after=mod.running_mean.clone()))
        drop.register_forward_hook(lambda mod, inp, out: calls[-1].update(
            drop_training=mod.training, drop_identity=torch.equal(out, inp[0])))
        return m

    monkeypatch.setattr("opencrop.models.create_model", hooked)
    res = train(recipe, tmp_path / "run", records={"train": recs}, progress=False, device="cpu")
    assert len(calls) == 6  # 3 epochs × 2 one-image steps, no evaluation (no validation split)
    for i, c in enumerate(calls):
        want = training_mode(mode, i // 2)
        assert c["bn_training"] is want and c["drop_training"] is want, (i, c)
        assert (not torch.equal(c["before"], c["after"])) is want, f"call {i}: BN stats moved = {not want}?"
        assert c["drop_identity"] is (not want), f"call {i}: dropout active = {want}?"
    last = torch.load(res.last_path, weights_only=True)["model"]
    head_w = [k for k in last if k.endswith("weight") and last[k].dim() == 4][-1]
    assert not torch.equal(last[head_w], initial[head_w])  # parameters train in eval mode too
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["module_mode"] == mode


# ---------------------------------------------------------------------------------------------- HCIC rank loss
def _rank(as_coded: bool, pred: list[float], gt: list[float], counts: list[int]) -> float:
    batch = {"mos": torch.tensor(gt), "counts": torch.tensor(counts)}
    return float(hcic_loss(torch.tensor(pred), batch, None, rank_as_coded=as_coded)["rank"])


def test_hcic_rank_loss_as_coded_counts_both_directions():
    # one image, two crops: gt (1, 0), pred (0, 0). Ordered pairs (0,1): −sin(1)·(0 − 1) = sin 1 and
    # (1,0): −sin(−1)·(0 + 1) = sin 1, both counted, divided by N(N−1)/2 = 1.
    assert _rank(True, [0.0, 0.0], [1.0, 0.0], [2]) == pytest.approx(2 * math.sin(1.0), rel=1e-6)
    assert _rank(False, [0.0, 0.0], [1.0, 0.0], [2]) == pytest.approx(2.0, rel=1e-6)  # sign weighting


def test_hcic_rank_loss_as_coded_pairs_run_over_the_whole_batch():
    """CPC-style batch of two images (2 crops each), flattened to K = 4. Hand computation, ordered pair (i, j) term
    max(0, −sin(g_i − g_j)·((p_i − p_j) − (g_i − g_j))), with g = (1, 0 | 0.5, 0), p = (0.2, 0.4 | 0, 0.1):
    (0,1) 1.2 sin 1, (0,2) 0.3 sin ½, (0,3) 0.9 sin 1, (1,2) 0.9 sin ½, (1,3) 0, (2,3) 0.6 sin ½, and the same for
    every reversed pair. As coded: 2 · (2.1 sin 1 + 1.8 sin ½) / (4·3/2) — cross-image pairs included, one mean."""
    pred, gt, counts = [0.2, 0.4, 0.0, 0.1], [1.0, 0.0, 0.5, 0.0], [2, 2]
    as_coded = 2 * (2.1 * math.sin(1.0) + 1.8 * math.sin(0.5)) / 6
    assert as_coded == pytest.approx(0.876685, abs=1e-6)
    assert _rank(True, pred, gt, counts) == pytest.approx(as_coded, rel=1e-6)
    # the as-coded loss ignores the image grouping; the clean one pairs within each image:
    # image A: 2 · 1.2 / 1, image B: 2 · 0.6 / 1, summed over the images
    assert _rank(True, pred, gt, [4]) == pytest.approx(as_coded, rel=1e-6)
    assert _rank(False, pred, gt, counts) == pytest.approx(2 * 1.2 + 2 * 0.6, rel=1e-6)


# ---------------------------------------------------------------------------------------------- data / selection
def _tiny_recipe(**data):
    return Recipe.from_dict({
        "model": {"name": "gaic", "kwargs": {"pretrained_backbone": False, "backbone": "mobilenet_v2"}},
        "data": {"test_split": None, "crops_per_image": 4, "flip": 0.0, "photometric": "none", **data},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": 2, "seed": 0, "amp": False, "max_steps_per_epoch": 1},
    })


def test_default_trains_on_every_train_image_and_reports_last_epoch(tmp_path):
    assert Recipe().data.val_split == "none"
    recs = {"train": _records(tmp_path, 3, "tr"), "val": _records(tmp_path, 2, "va")}
    err = io.StringIO()
    res = train(_tiny_recipe(train_split="train+val"), tmp_path / "run", records=recs, progress=False,
                device="cpu", stream=err)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(split["train"]) == sorted(r.name for r in recs["train"] + recs["val"]) and split["val"] == []
    assert res.selection.startswith("last epoch (no validation split") and "--select-on-test" in res.selection
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selection"] == split["selection"] == res.selection
    assert metrics["best_epoch"] == res.best_epoch == 2 and metrics["best_value"] is None
    log = err.getvalue()
    assert "selection: last epoch" in log and "best.pt: epoch 2; selection: last epoch" in log


def test_validation_selection_is_one_option_away(tmp_path):
    recs = {"train": _records(tmp_path, 4, "tr"), "val": _records(tmp_path, 2, "va")}
    res = train(_tiny_recipe(val_split="val"), tmp_path / "run", records=recs, progress=False, device="cpu",
                stream=io.StringIO())
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert res.selection == "split 'val'" and len(split["train"]) == 4 and len(split["val"]) == 2
    assert res.best_value is not None and "val_srcc" in res.history[0]


@pytest.mark.parametrize(("data", "key"), [
    ({"train_split": "train+val", "val_split": "val"}, "val_split"),
    ({"train_split": "all", "test_split": "test"}, "test_split"),
    ({"train_split": "train+"}, "train_split"),
])
def test_train_split_overlap_is_an_error(data, key):
    with pytest.raises(RecipeError, match=rf"data\.{key}"):
        Recipe.from_dict({"data": data})


# ---------------------------------------------------------------------------------------------- configs/*.yaml
EXPECTED = {  # recipe: (module_mode, batch, rank_as_coded, relation, num_workers, original file named in the yaml)
    "gaic_gaicd": ("eval_after_first_epoch", 1, None, None, 2, "TrainModel.py"),
    "gaic_cpc": ("eval_after_first_epoch", 1, None, None, 2, "TrainModel.py"),
    "hcic_gaicd": ("train", 1, True, "gcn", 4, "train_on_GAICD.py"),
    "hcic_cpc": ("train", 8, True, "gcn", 4, "train_on_CPC.py"),
    "gafic_gaicd": ("train", 1, True, "conv", 4, "config_GAICD.py"),
    "gafic_cpc": ("train", 16, True, "gcn", 2, "config_CPC.py"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_configs_follow_the_released_code(name):
    mode, batch, as_coded, relation, workers, original = EXPECTED[name]
    path = CONFIGS / f"{name}.yaml"
    r = load_recipe(path)
    assert (r.train.module_mode, r.train.batch_size, r.train.num_workers) == (mode, batch, workers)
    assert r.model.kwargs.get("rank_as_coded") == as_coded and r.model.kwargs.get("relation") == relation
    assert r.data.val_split == "none" and r.data.train_split == ("train" if name.endswith("gaicd") else "all")
    assert original in path.read_text()
    # a clean / validated variant is one override away
    clean = load_recipe(path, ["data.val_split=holdout", "train.module_mode=train"])
    assert (clean.data.val_split, clean.train.module_mode) == ("holdout", "train")


def test_gafic_cpc_recipe_model_runs_a_batch():
    """configs/gafic_cpc.yaml's model options (gcn relation, 256×256 input, as-coded rank loss) on a two-image batch
    (MobileNetV2 instead of VGG16 to keep the test small)."""
    from opencrop.models import create_model

    r = load_recipe(CONFIGS / "gafic_cpc.yaml")
    torch.manual_seed(0)
    model = create_model("gafic", **{**r.model.kwargs, "backbone": "mobilenet_v2", "pretrained_backbone": False})
    assert model.config["relation"] == "gcn" and model.rank_as_coded
    crops = torch.tensor([[0, 0, 256, 256], [32, 0, 224, 256], [0, 64, 256, 192]], dtype=torch.float32)
    rois = torch.cat([torch.cat([torch.full((3, 1), float(b)), crops], 1) for b in range(2)])
    batch = {"image": torch.randn(2, 3, 256, 256), "rois": rois, "mos": torch.tensor([0.9, 0.3, 0.1, 0.2, 0.8, 0.5]),
             "counts": torch.tensor([3, 3]), "heatmap": torch.rand(2, 1, 64, 64)}
    out = model.compute_loss(batch)
    assert {"loss", "score", "rank", "heatmap"} <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in model.relation_encoder.parameters())
