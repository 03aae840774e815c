"""GAFIC (AGFF + GACE interpretation, docs/systems.md §4.3): shapes, attention-weighted fusion, crop-dependent
global term, no heat-map input at test time, gradients, CropModel protocol."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch


def _batch(h: int = 64, w: int = 96, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(2, 3, h, w, generator=g),
        "rois": torch.tensor([[0, 0, 0, w, h], [0, 10, 5, 60, 50], [0, 30, 8, 90, 60], [1, 0, 0, 80, 60],
                              [1, 16, 16, 64, 48]], dtype=torch.float32),
        "mos": torch.tensor([3.0, 2.0, 4.0, 3.5, 1.5]),
        "counts": torch.tensor([3, 2]),
        "human_box": torch.full((2, 4), -1.0),
        "heatmap": torch.rand(2, 1, 64, 64, generator=g),
    }


@pytest.fixture(scope="module")
def model():
    from opencrop.models import create_model

    torch.manual_seed(0)
    return create_model("gafic", backbone="mobilenet_v2")


def test_registered_and_config(model):
    from opencrop.models import list_models
    from opencrop.models.gafic import GAFIC

    assert "gafic" in list_models()
    assert isinstance(model, GAFIC) and model.needs == frozenset()
    assert model.config["relation"] == "conv" and model.config["input_mode"] == "gaicd"
    assert "GACE" in GAFIC.__doc__ and "interpretation" in GAFIC.__doc__.lower()


def test_shapes_and_initial_fusion(model):
    b = _batch()
    f = model.forward_features(b["image"])
    assert f["fused"].shape == (2, 32, 4, 6) and f["global"].shape == (2, 32, 4, 6)
    assert f["logits"].shape == (2, 1, 4, 6) and f["alpha"].shape == (2, 3, 4, 6)
    # the scale-weight conv starts at zero: uniform scale weights, fused = HCIC sum fusion × (1 + attention)
    torch.testing.assert_close(f["alpha"], torch.full_like(f["alpha"], 1 / 3))
    att = torch.sigmoid(f["logits"])
    torch.testing.assert_close(f["global"], f["fused"] * att)
    heat = model.heatmap(f)
    assert heat.shape == (2, 1, 64, 64) and ((heat > 0) & (heat < 1)).all()
    assert model.forward_scores(f, b["rois"]).shape == (5,)


def test_attention_weights_the_fusion():
    from opencrop.models import create_model

    torch.manual_seed(0)
    m = create_model("gafic", backbone="mobilenet_v2")
    x = _batch()["image"]
    before = m.forward_features(x)["fused"]
    with torch.no_grad():
        m.scale_weights.weight.normal_()  # non-uniform per-pixel scale weights
    f = m.forward_features(x)
    assert not torch.allclose(f["alpha"], torch.full_like(f["alpha"], 1 / 3))
    torch.testing.assert_close(f["alpha"].sum(1), torch.ones(2, 4, 6))
    assert not torch.allclose(f["fused"], before)


def test_global_term_is_crop_dependent(model):
    """Unlike the released code, the global branch alone ranks crops of one image differently."""
    b = _batch()
    f = model.forward_features(b["image"])
    glob = model.global_branch(f["global"], b["rois"])
    w_glob = model.fc.weight[:, 256:]
    g_scores = (glob @ w_glob.T).reshape(-1)
    assert g_scores[:3].std() > 1e-6  # the global contribution differs between crops of image 0


def test_no_heatmap_input_at_test_time(model):
    """The pseudo heat map is only a target: predictions ignore it (no label leakage)."""
    params = inspect.signature(model.forward_scores).parameters
    assert list(params) == ["features", "rois"]
    b = _batch()
    s1 = model.predict_batch(b)
    b["heatmap"] = 1 - b["heatmap"]
    torch.testing.assert_close(model.predict_batch(b), s1)
    l1, l2 = model.compute_loss(_batch())["heatmap"], model.compute_loss(b)["heatmap"]
    assert not torch.allclose(l1, l2)


def test_gradients_reach_attention_from_both_losses():
    from opencrop.models import create_model

    torch.manual_seed(0)
    m = create_model("gafic", backbone="mobilenet_v2", heatmap_weight=0.0)
    m.compute_loss(_batch())["loss"].backward()  # score + rank only
    assert m.attention[0].weight.grad.abs().sum() > 0
    assert m.global_branch.head[0].weight.grad.abs().sum() > 0
    m.zero_grad()
    f = m.forward_features(_batch()["image"])
    torch.nn.functional.l1_loss(m.heatmap(f), _batch()["heatmap"]).backward()
    assert m.attention[2].weight.grad.abs().sum() > 0 and m.fc.weight.grad is None


def test_crop_model_protocol_on_astronaut(model):
    skimage = pytest.importorskip("skimage")
    from opencrop.models.base import CropModel

    image = skimage.data.astronaut()
    assert isinstance(model, CropModel)
    prep = model.prepare(image)
    assert prep.extra == {}
    boxes = np.array([[0, 0, 512, 512], [0, 0, 512, 288], [100, 0, 400, 512]], np.float32)
    s = model.score(prep, boxes)
    assert s.shape == (3,) and np.isfinite(s).all() and np.ptp(s) > 0


def test_short_training_run_lowers_loss(tmp_path):
    """Synthetic GAICD → pseudo heat maps → the shared trainer, 3 short epochs; the loss goes down."""
    from opencrop.data.gaicd import load_gaicd
    from opencrop.data.heatmaps import write_heatmaps
    from opencrop.data.synth import write_gaicd
    from opencrop.models import create_model
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    torch.manual_seed(0)
    root = tmp_path / "gaicd"
    write_gaicd(root, n=4, seed=1, size=(128, 96))
    records = {s: load_gaicd(root, s) for s in ("train", "test")}
    write_heatmaps(records["train"] + records["test"], root / "heat")
    recipe = Recipe.from_dict({
        "model": {"name": "gafic", "kwargs": {"backbone": "mobilenet_v2", "input_size": 128}},
        "data": {"format": "gaicd", "train_split": "train", "val_split": "test", "test_split": None,
                 "heatmap_dir": str(root / "heat"), "crops_per_image": 6, "photometric": "colorjitter"},
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
        "schedule": {"name": "constant"},
        "train": {"epochs": 3, "batch_size": 1, "amp": False, "num_workers": 0},
    })
    result = train(recipe, tmp_path / "run", records=records, progress=False, device="cpu")
    hist = result.history
    assert len(hist) == 3 and "train_heatmap" in hist[0] and "val_srcc" in hist[0]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    reloaded = create_model("gafic", backbone="mobilenet_v2", weights=str(result.best_path))
    assert reloaded.config["relation"] == "conv"


@pytest.mark.parametrize("recipe_name", ["hcic_gaicd", "hcic_cpc", "gafic_gaicd", "gafic_cpc"])
def test_recipes_carry_the_published_hyperparameters(recipe_name):
    """configs/{hcic,gafic}_{gaicd,cpc}.yaml: HCIC's §3.5 recipe (GAFIC CPC: batch 16), whole train split, build."""
    from pathlib import Path

    from opencrop.models import create_model
    from opencrop.train.recipe import load_recipe

    r = load_recipe(Path(__file__).resolve().parents[2] / "configs" / f"{recipe_name}.yaml")
    gaicd = recipe_name.endswith("gaicd")
    assert r.model.name == recipe_name.split("_")[0]
    assert (r.optim.name, r.optim.lr, r.optim.weight_decay) == ("adam", 1e-4, 1e-4)
    assert (r.schedule.name, r.schedule.warmup_epochs) == ("warmup_cosine", 5)
    assert r.train.epochs == (80 if gaicd else 30)
    assert r.train.batch_size == (1 if gaicd else 16 if recipe_name == "gafic_cpc" else 8)
    assert r.data.crops_per_image == (64 if gaicd else None)
    assert (r.data.flip, r.data.photometric, r.data.val_split, r.train.seed) == (0.5, "colorjitter", "none", 0)
    assert r.model.kwargs["input_mode"] == ("gaicd" if gaicd else "fixed256")
    kwargs = {**r.model.kwargs, "pretrained_backbone": False}
    model = create_model(r.model.name, **kwargs)
    assert model.config["backbone"] == "vgg16" and model.config["reddim"] == 32


def test_the_evaluator_is_shared_with_setcrops_head_and_keeps_gafics_parameter_names(model):
    """GAFIC's AGFF + GACE live in one place (:class:`GAFICEvaluator`): the stand-alone :class:`GAFICHead` (SetCrop's
    ``valid_head="gafic"``) with GAFIC's weights computes GAFIC's features and scores; GAFIC's model-file keys stay."""
    from opencrop.models.gafic import GAFICHead

    keys = set(model.state_dict())
    assert {"fusion.f3_layer.weight", "scale_weights.weight", "crop_branch.head.0.weight",
            "global_branch.head.0.weight", "fc.weight", "attention.0.weight"} <= keys
    head = GAFICHead(model.backbone.feature_info.channels(), reddim=32)
    missing = head.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")})
    assert not missing.missing_keys and not missing.unexpected_keys
    b = _batch()
    model.eval()
    head.eval()
    with torch.no_grad():
        f = model.forward_features(b["image"])
        g = head.agff(*model.backbone(b["image"]))
        for k in ("fused", "global", "logits", "alpha"):
            torch.testing.assert_close(g[k], f[k], rtol=0, atol=0)
        torch.testing.assert_close(head.forward_scores(g, b["rois"]), model.forward_scores(f, b["rois"]), rtol=0,
                                   atol=0)
