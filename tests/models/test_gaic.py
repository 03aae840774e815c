"""GAIC: shapes, registry, released-weight key mapping, CropModel protocol on a real photo, a short training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opencrop.candidates import gaic_grid, ratio_windows
from opencrop.errors import ModelFileError
from opencrop.models import create_model
from opencrop.models.base import CropModel
from opencrop.models.gaic import GAIC, convert_released_state_dict, import_released


def _bn(prefix: str, c: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var")] + [
        (f"{prefix}.num_batches_tracked", ())
    ]


def released_mobilenet_keys(reddim: int = 8, align: int = 9) -> dict[str, tuple[int, ...]]:
    """Key → shape table of lld533's ``mobilenet_0.625_…pth`` (crop_model_multi_scale_shared + d-li14 MobileNetV2
    width 1.0), written out from the reference code: features[:7] / [7:14] / [14:] wrapped in Sequential."""
    cfgs = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    blocks = [[("0.weight", (32, 3, 3, 3)), *_bn("1", 32)]]
    inp = 32
    for t, c, n, _s in cfgs:
        for _ in range(n):
            hid = inp * t
            if t == 1:
                blocks.append([("conv.0.weight", (hid, 1, 3, 3)), *_bn("conv.1", hid),
                               ("conv.3.weight", (c, hid, 1, 1)), *_bn("conv.4", c)])
            else:
                blocks.append([("conv.0.weight", (hid, inp, 1, 1)), *_bn("conv.1", hid),
                               ("conv.3.weight", (hid, 1, 3, 3)), *_bn("conv.4", hid),
                               ("conv.6.weight", (c, hid, 1, 1)), *_bn("conv.7", c)])
            inp = c
    assert len(blocks) == 18
    keys: dict[str, tuple[int, ...]] = {}
    for i, block in enumerate(blocks):
        grp, j = ("feature3", i) if i < 7 else ("feature4", i - 7) if i < 14 else ("feature5", i - 14)
        for suffix, shape in block:
            keys[f"Feat_ext.{grp}.0.{j}.{suffix}"] = shape
    return {**keys, **_released_head(32 + 96 + 320, reddim, align)}


def released_shufflenet_keys(reddim: int = 8, align: int = 9) -> dict[str, tuple[int, ...]]:
    """Key → shape table of lld533's ``shufflenet_…pth`` (ShuffleNetV2 x1.0 in lld533's ShuffleNetV2.py):
    feature3 = Sequential(conv1, maxpool, features[:4]), feature4 = Sequential(features[4:12]),
    feature5 = Sequential(features[12:])."""
    keys: dict[str, tuple[int, ...]] = {"Feat_ext.feature3.0.0.weight": (24, 3, 3, 3)}
    keys.update(dict(_bn("Feat_ext.feature3.0.1", 24)))
    inp = 24
    blocks = []
    for reps, oup in ((4, 116), (8, 232), (4, 464)):
        for i in range(reps):
            half = oup // 2
            b: list[tuple[str, tuple[int, ...]]] = []
            if i == 0:
                b += [("banch1.0.weight", (inp, 1, 3, 3)), *_bn("banch1.1", inp),
                      ("banch1.2.weight", (half, inp, 1, 1)), *_bn("banch1.3", half)]
                first_in = inp
            else:
                first_in = half
            b += [("banch2.0.weight", (half, first_in, 1, 1)), *_bn("banch2.1", half),
                  ("banch2.3.weight", (half, 1, 3, 3)), *_bn("banch2.4", half),
                  ("banch2.5.weight", (half, half, 1, 1)), *_bn("banch2.6", half)]
            blocks.append(b)
            inp = oup
    for i, block in enumerate(blocks):
        prefix = (f"Feat_ext.feature3.2.{i}" if i < 4 else f"Feat_ext.feature4.0.{i - 4}" if i < 12
                  else f"Feat_ext.feature5.0.{i - 12}")
        for suffix, shape in block:
            keys[f"{prefix}.{suffix}"] = shape
    return {**keys, **_released_head(116 + 232 + 464, reddim, align)}


def _released_head(cin: int, reddim: int, align: int) -> dict[str, tuple[int, ...]]:
    return {
        "DimRed.weight": (reddim, cin, 1, 1), "DimRed.bias": (reddim,),
        "FC_layers.0.0.weight": (768, 2 * reddim, align, align), "FC_layers.0.0.bias": (768,),
        **dict(_bn("FC_layers.0.1", 768)),
        "FC_layers.1.0.weight": (128, 768, 1, 1), "FC_layers.1.0.bias": (128,),
        **dict(_bn("FC_layers.1.1", 128)),
        "FC_layers.3.weight": (1, 128, 1, 1), "FC_layers.3.bias": (1,),
    }


def _fake_state(table: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in table.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1234)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


def test_forward_shapes_and_registry():
    torch.manual_seed(0)
    m = create_model("gaic")
    assert isinstance(m, GAIC) and isinstance(m, CropModel)
    assert m.config == {"backbone": "mobilenet_v2", "reddim": 8, "align_size": 9, "fusion": "multi",
                        "batchnorm": True, "dropout": 0.5}
    assert m.neck.dimred.in_channels == 448 and m.head[0].kernel_size == (9, 9) and m.head[0].out_channels == 768
    x = torch.randn(2, 3, 64, 96)
    feats = m.forward_features(x)
    assert feats.shape == (2, 8, 4, 6)
    rois = torch.tensor([[0, 0, 0, 96, 64], [1, 10, 5, 80, 60], [1, 0, 0, 48, 32.0]])
    m.eval()
    s = m(x, rois)
    assert s.shape == (3,) and torch.isfinite(s).all()
    m.train()
    loss = m.compute_loss({"image": x, "rois": rois, "mos": torch.tensor([3.0, 4.0, 2.0]),
                           "counts": torch.tensor([1, 2])})["loss"]
    loss.backward()
    assert all(p.grad is not None for p in m.head.parameters()) and m.neck.dimred.weight.grad.abs().sum() > 0
    single = GAIC(fusion="single", batchnorm=False)
    assert single.neck.in_channels == 96 and not any(isinstance(l, torch.nn.BatchNorm2d) for l in single.head)


@pytest.mark.parametrize("backbone,table", [("mobilenet_v2", released_mobilenet_keys),
                                            ("shufflenet_v2", released_shufflenet_keys)])
def test_released_checkpoint_mapping_lands_every_tensor(tmp_path, backbone, table):
    keys = table()
    src = _fake_state(keys)
    sd, cfg = convert_released_state_dict(src, backbone)
    assert cfg["backbone"] == backbone and cfg["reddim"] == 8 and cfg["batchnorm"]
    model = GAIC(backbone=backbone)
    assert set(sd) == set(model.state_dict())
    # every released tensor lands exactly once, unchanged (values are unique random draws)
    landed = {}
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked"):
            landed[v.flatten()[:8].numpy().tobytes() + str(tuple(v.shape)).encode()] = k
    for k, v in src.items():
        if k.endswith("num_batches_tracked"):
            continue
        sig = v.flatten()[:8].numpy().tobytes() + str(tuple(v.shape)).encode()
        assert sig in landed, f"{k} did not land"
        torch.testing.assert_close(sd[landed[sig]], v)
    # head by name, backbone in order: first and last backbone tensors
    torch.testing.assert_close(sd["head.0.weight"], src["FC_layers.0.0.weight"])
    torch.testing.assert_close(sd["head.4.running_var"], src["FC_layers.1.1.running_var"])
    torch.testing.assert_close(sd["head.7.bias"], src["FC_layers.3.bias"])
    torch.testing.assert_close(sd["neck.dimred.weight"], src["DimRed.weight"])
    bb = [k for k in model.state_dict() if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    first_src = next(k for k in keys if k.startswith("Feat_ext."))  # the tables are written in execution order
    torch.testing.assert_close(sd[bb[0]], src[first_src])
    last_src = [k for k in keys if k.startswith("Feat_ext.feature5") and not k.endswith("num_batches_tracked")][-1]
    torch.testing.assert_close(sd[bb[-1]], src[last_src])
    # through the file-level importer and back through create_model(weights=...)
    f = tmp_path / "released.pth"
    torch.save({f"module.{k}": v for k, v in src.items()}, f)  # DataParallel prefix tolerated
    import_released(f, backbone, out=tmp_path / "gaic.pt")
    m = create_model("gaic", weights=tmp_path / "gaic.pt")
    assert not m.training and m.config["backbone"] == backbone
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    scores = m.score(m.prepare(img), gaic_grid(300, 200))
    assert scores.shape == (len(gaic_grid(300, 200)),) and np.isfinite(scores).all() and scores.std() > 0


def test_import_rejects_wrong_files(tmp_path):
    src = _fake_state(released_mobilenet_keys())
    with pytest.raises(ModelFileError, match="not a released GAIC"):
        convert_released_state_dict({"x.weight": torch.zeros(1)})
    bad = dict(src)
    bad["Feat_ext.feature4.0.0.conv.0.weight"] = torch.zeros(5, 5, 1, 1)
    with pytest.raises(ModelFileError, match=r"does not fit|tensors"):
        convert_released_state_dict(bad, "mobilenet_v2", source="x.pth")
    with pytest.raises(ModelFileError, match="--backbone"):
        convert_released_state_dict(src, "vgg16", source="x.pth")
    with pytest.raises(ModelFileError, match="no such"):
        import_released(tmp_path / "none.pth")


def test_cropmodel_protocol_on_a_real_photo():
    skd = pytest.importorskip("skimage.data", reason="scikit-image provides the bundled test photo")
    torch.manual_seed(0)
    m = create_model("gaic").eval()
    img = skd.chelsea()  # 300×451 real photo
    prep = m.prepare(img)
    assert prep.input_size == (384, 256) and prep.features.shape == (1, 8, 16, 24)
    grid = gaic_grid(451, 300)
    wins = ratio_windows(451, 300, "16:9", max_count=200)
    boxes = np.concatenate([grid, wins])
    s = m.score(prep, boxes)  # every candidate of every ratio from one backbone pass
    assert s.shape == (len(boxes),) and np.isfinite(s).all()
    # same numbers as the batched nn.Module path
    x, (sx, sy) = m.preprocess(img)
    rois = torch.cat([torch.zeros(len(boxes), 1), torch.from_numpy(boxes).float() * torch.tensor([sx, sy, sx, sy])], 1)
    with torch.no_grad():
        ref = m(x[None], rois).numpy()
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.score(prep, boxes[:5]), s[:5], rtol=1e-5, atol=1e-6)  # box order/batch invariant


def test_short_real_training_run_lowers_the_loss(tmp_path):
    """4 tiny synthetic photos through the real preprocessing (short side 256), 2 epochs of the real trainer."""
    from PIL import Image

    from opencrop.data.record import CropRecord
    from opencrop.models.preprocess import Preprocess
    from opencrop.train.datasets import CropDataset, batch_to, collate
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    rng = np.random.default_rng(0)
    recs = []
    for i in range(4):
        w, h = 48, 48  # → 256×256 network input (the real preprocessing)
        arr = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        cx = int(rng.integers(16, w - 16))
        arr[12:36, cx - 8 : cx + 8] = 255  # a bright subject
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
        crops = gaic_grid(w, h)
        centre = (crops[:, 0] + crops[:, 2]) / 2
        mos = 4.5 - 3.0 * np.abs(centre - cx) / w  # crops centred on the subject score high
        recs.append(CropRecord(name=f"{i}.png", image_path=tmp_path / f"{i}.png", width=w, height=h,
                               crops=crops, scores=mos))
    recipe = Recipe.from_dict({
        "model": {"name": "gaic", "kwargs": {"pretrained_backbone": False}},
        "data": {"val_split": "none", "test_split": None, "crops_per_image": 64, "flip": 0.5, "photometric": "ssd"},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": 2, "seed": 0, "amp": False},
    })

    def fixed_loss(model):
        ds = CropDataset(recs, Preprocess.gaic(), crops_per_image=None)
        model.eval()
        with torch.no_grad():
            return float(np.mean([model.compute_loss(batch_to(collate([ds[i]]), "cpu"))["loss"]
                                  for i in range(len(ds))]))

    torch.manual_seed(0)
    before = fixed_loss(create_model("gaic", pretrained_backbone=False))
    res = train(recipe, tmp_path / "run", records={"train": recs}, progress=False, device="cpu")
    after = fixed_loss(create_model("gaic", weights=res.last_path))
    assert res.epochs_run == 2 and np.isfinite(after)
    assert after < 0.8 * before, (before, after)


def test_cropper_uses_gaic_with_a_weight_file(tmp_path):
    """``Cropper(model="gaic", weights=...)``: one analysis serves several ratios."""
    from opencrop.api import Cropper

    torch.manual_seed(0)
    path = GAIC().save_weights(tmp_path / "gaic.pt")
    cropper = Cropper(model="gaic", weights=str(path), cues=False, analysis_size=384)
    img = (np.random.default_rng(0).random((240, 360, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "photo.png")
    an = cropper.analyze(tmp_path / "photo.png")
    crops = cropper.crop(an, ratios=["16:9", "1:1"])
    assert len(crops) == 2
    for c, r in zip(crops, (16 / 9, 1.0), strict=True):
        x1, y1, x2, y2 = c.box
        assert 0 <= x1 < x2 <= 360 and 0 <= y1 < y2 <= 240
        assert abs((x2 - x1) / (y2 - y1) - r) < 0.05


def test_cli_weights_import(tmp_path, capsys):
    from opencrop import cli

    src = _fake_state(released_mobilenet_keys())
    torch.save(src, tmp_path / "mobilenet_released.pth")
    out = tmp_path / "out" / "gaic_mbv2.pt"
    rc = cli.main(["weights", "import", "gaic", str(tmp_path / "mobilenet_released.pth"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    ck = torch.load(out, weights_only=True)
    assert ck["config"]["name"] == "gaic" and ck["source"].startswith("lld533/")
    assert set(ck) == {"model", "config", "opencrop_version", "source", "model_sha256"}
    torch.save({"x": torch.zeros(1)}, tmp_path / "junk.pth")
    assert cli.main(["weights", "import", "gaic", str(tmp_path / "junk.pth"), "--out", str(out)]) == 1
    assert "not a released GAIC checkpoint" in capsys.readouterr().err
