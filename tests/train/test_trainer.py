"""Trainer: recipes, schedules, exact resume, atomic checkpoints, selection split, logs (toy model, tiny data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from opencrop.candidates import gaic_grid
from opencrop.data.record import CropRecord
from opencrop.models.learned import LearnedCropModel
from opencrop.models.preprocess import Preprocess
from opencrop.models.registry import _REGISTRY, register_model
from opencrop.train import trainer as trainer_mod
from opencrop.train.recipe import Recipe, RecipeError, apply_overrides, load_recipe
from opencrop.train.trainer import holdout_split, lr_factor, save_atomic, train


class _TinyScorer(LearnedCropModel):
    """Stride-32 conv features; a crop's score = MLP(mean feature inside the box) with dropout (exercises RNG)."""

    name = "_tiny_test"

    def __init__(self) -> None:
        super().__init__(Preprocess(resize="fixed", size=64), {})
        self.conv = nn.Conv2d(3, 6, 32, stride=32)
        self.head = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))

    def forward_features(self, images):
        return self.conv(images)

    def forward_scores(self, features, rois, **extra):
        h, w = features.shape[-2:]
        c = (torch.arange(w, dtype=torch.float32) + 0.5) * 32
        r = (torch.arange(h, dtype=torch.float32) + 0.5) * 32
        x1, y1, x2, y2 = (rois[:, i, None, None] for i in range(1, 5))
        inside = ((c[None, None] >= x1 - 16) & (c[None, None] <= x2 + 16)
                  & (r[None, :, None] >= y1 - 16) & (r[None, :, None] <= y2 + 16))
        f = features[rois[:, 0].long()]
        m = inside[:, None].float()
        pooled = (f * m).sum((-1, -2)) / m.sum((-1, -2)).clamp_min(1)
        rest = (f * (1 - m)).sum((-1, -2)) / (1 - m).sum((-1, -2)).clamp_min(1)
        return self.head(torch.cat([pooled, rest], 1)).squeeze(-1)

    def compute_loss(self, batch):
        pred = self.predict_batch(batch)
        return {"loss": nn.functional.smooth_l1_loss(pred, (batch["mos"] - 3) / 1.0)}


if "_tiny_test" not in _REGISTRY:
    register_model("_tiny_test")(lambda **kw: _TinyScorer())


def _records(tmp_path, n=6):
    recs = []
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        p = tmp_path / f"im{i}.png"
        Image.fromarray(arr).save(p)
        crops = gaic_grid(64, 48)
        recs.append(CropRecord(name=f"im{i}.jpg", image_path=p, width=64, height=48, crops=crops,
                               scores=1 + 4 * (crops[:, 0] / 64)))  # crops further right score higher
    return recs


def _recipe(**train):
    return Recipe.from_dict({
        "model": {"name": "_tiny_test"},
        "data": {"format": "gaicd", "val_split": "holdout", "holdout_fraction": 0.34, "test_split": None,
                 "crops_per_image": 8, "flip": 0.5, "photometric": "ssd"},
        "optim": {"name": "adam", "lr": 1e-2},
        "schedule": {"name": "warmup_cosine", "warmup_epochs": 1},
        "train": {"epochs": 2, "seed": 1, "amp": False, **train},
    })


def test_recipe_validation_names_the_key(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("version: 1\ntrain: {epoks: 3}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: train\.epoks: unknown key; did you mean 'epochs'"):
        load_recipe(f)
    f.write_text("version: 1\noptim: {name: adamax}\n")
    with pytest.raises(RecipeError, match=r"optim\.name"):
        load_recipe(f)
    f.write_text("version: 1\ntrain: {epochs: 3}\n")
    r = load_recipe(f, ["train.epochs=5", "model.kwargs.backbone=vgg16", "optim.lr=3e-4"])
    assert r.train.epochs == 5 and r.model.kwargs == {"backbone": "vgg16"} and r.optim.lr == pytest.approx(3e-4)
    with pytest.raises(RecipeError, match=r"section\.key=value"):
        apply_overrides({}, ["epochs"])
    assert Recipe.from_dict(r.to_dict()).to_dict() == r.to_dict()


def test_schedules():
    from opencrop.train.recipe import ScheduleConfig

    f = lr_factor(ScheduleConfig(name="warmup_cosine", warmup_epochs=5), 80)
    assert [f(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f(5) == pytest.approx(1.0) and f(80) == pytest.approx(0.0, abs=1e-12)
    assert f(42) == pytest.approx(0.5 * (1 + math.cos(math.pi * 37 / 75)))
    g = lr_factor(ScheduleConfig(name="multistep", milestones=[2, 4], gamma=0.1), 10)
    assert [g(e) for e in range(6)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(ScheduleConfig(), 3)(2) == 1.0


def test_holdout_is_seeded_and_disjoint(tmp_path):
    recs = [CropRecord(name=f"{i}.jpg") for i in range(20)]
    tr, va = holdout_split(recs, 0.1, seed=0)
    assert len(va) == 2 and len(tr) == 18 and not {r.name for r in tr} & {r.name for r in va}
    assert [r.name for r in holdout_split(recs[::-1], 0.1, seed=0)[1]] == [r.name for r in va]


def test_train_two_epochs_equals_one_plus_resume(tmp_path):
    recs = _records(tmp_path)
    straight = train(_recipe(), tmp_path / "a", records={"train": recs}, progress=False)
    assert straight.epochs_run == 2 and (tmp_path / "a" / "best.pt").exists()
    # run 1 epoch with a 2-epoch schedule by killing after epoch 1: simulate with epochs=2 and an interrupt hook
    r1 = _recipe()
    calls = {"n": 0}
    real = trainer_mod.save_atomic

    def kill_after_first(obj, path):
        real(obj, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the process dies right after the epoch-1 checkpoint

    trainer_mod.save_atomic = kill_after_first
    try:
        with pytest.raises(KeyboardInterrupt):
            train(r1, tmp_path / "b", records={"train": recs}, progress=False)
    finally:
        trainer_mod.save_atomic = real
    with pytest.raises(RecipeError, match="--resume"):
        train(r1, tmp_path / "b", records={"train": recs}, progress=False)
    resumed = train(r1, tmp_path / "b", records={"train": recs}, resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 2
    assert resumed.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    split = json.loads((tmp_path / "a" / "split.json").read_text())
    assert split["selection"].startswith("holdout") and len(split["val"]) == 3 and len(split["train"]) == 3
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,lr,train_loss") and "val_srcc" in log[0] and len(log) == 3


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"model": {"w": torch.ones(3)}}, path)

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_atomic({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no stray temporary file


def test_select_on_test_is_explicit(tmp_path):
    recs = _records(tmp_path, 4)
    r = _recipe(epochs=2, max_steps_per_epoch=1)
    r.data.test_split = "test"
    res = train(r, tmp_path / "run", records={"train": recs[:2], "test": recs[2:]}, select_on_test=True,
                progress=False)
    sel = json.loads((tmp_path / "run" / "split.json").read_text())["selection"]
    assert sel.startswith("test") and res.best_epoch in (1, 2)


def _write_gaicd(root, split, n, rng):
    (root / "images" / split).mkdir(parents=True)
    (root / "annotations" / split).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "images" / split / f"{i}.jpg")
        crops = gaic_grid(64, 48)
        lines = [f"{int(b[1])} {int(b[0])} {int(b[3])} {int(b[2])} {1 + 4 * b[0] / 64:.2f}" for b in crops]
        (root / "annotations" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")


def test_cli_train_on_gaicd_txt_and_usage_errors(tmp_path, monkeypatch, capsys):
    from opencrop import cli

    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("opencrop.train.cli",))
    rng = np.random.default_rng(0)
    _write_gaicd(tmp_path / "gaicd", "train", 4, rng)
    _write_gaicd(tmp_path / "gaicd", "test", 2, rng)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nmodel: {name: _tiny_test}\n"
        "data: {format: gaicd, val_split: holdout, holdout_fraction: 0.25, crops_per_image: 8}\n"
        "train: {epochs: 1, amp: false}\n"
    )
    out = tmp_path / "run"
    rc = cli.main(["train", str(recipe), "optim.lr=1e-3", "--data", str(tmp_path / "gaicd"), "--out", str(out),
                   "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "best srcc" in captured.out and "test:" in captured.out
    assert {"recipe.yaml", "split.json", "log.csv", "last.pt", "best.pt", "metrics.json"} <= {
        p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] is not None and "srcc" in metrics["test"]
    assert load_recipe(out / "recipe.yaml").optim.lr == pytest.approx(1e-3)
    # a typo in an override is a usage error (exit 2) naming the key
    assert cli.main(["train", str(recipe), "train.epoks=3", "--out", str(tmp_path / "x")]) == 2
    assert "train.epoks: unknown key; did you mean 'epochs'" in capsys.readouterr().err


def test_resume_from_a_damaged_last_pt_is_a_model_file_error(tmp_path):
    """last.pt carries the digest of its weights (save_atomic); one flipped byte stops --resume with the file named."""
    from opencrop.errors import ModelFileError

    recs = _records(tmp_path)
    train(_recipe(), tmp_path / "run", records={"train": recs}, progress=False)
    last = tmp_path / "run" / "last.pt"
    ck = torch.load(last, weights_only=True)
    assert len(ck["model_sha256"]) == 64
    data = bytearray(last.read_bytes())
    w = ck["model"]["head.0.weight"].contiguous().numpy().tobytes()
    at = bytes(data).find(w[:32])
    assert at > 0
    data[at + 4] ^= 0x55
    last.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"last\.pt: damaged"):
        train(_recipe(epochs=3), tmp_path / "run", records={"train": recs}, resume=True, progress=False)
