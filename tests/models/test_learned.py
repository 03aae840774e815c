"""LearnedCropModel base class: preprocessing, CropModel protocol, weight loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from opencrop.errors import ModelFileError
from opencrop.models.base import CropModel
from opencrop.models.learned import LearnedCropModel, PreparedImage
from opencrop.models.preprocess import Preprocess


class _Toy(LearnedCropModel):
    """Mean feature inside each box (nearest pixel at stride 16) → linear score. Enough to test the plumbing."""

    name = "toy"

    def __init__(self) -> None:
        super().__init__(Preprocess.gaic(), {"width": 4})
        self.conv = nn.Conv2d(3, 4, 16, stride=16)
        self.fc = nn.Linear(4, 1)

    def forward_features(self, images):
        return self.conv(images)

    def forward_scores(self, features, rois, **extra):
        h, w = features.shape[-2:]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * 16
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * 16
        inside = ((xs[None, None, :] >= rois[:, 1, None, None]) & (xs[None, None, :] <= rois[:, 3, None, None])
                  & (ys[None, :, None] >= rois[:, 2, None, None]) & (ys[None, :, None] <= rois[:, 4, None, None]))
        f = features[rois[:, 0].long()]  # [K, C, h, w]
        m = inside[:, None].float()
        pooled = (f * m).sum((-1, -2)) / m.sum((-1, -2)).clamp_min(1)
        return self.fc(pooled).squeeze(-1)

    def compute_loss(self, batch):
        pred = self.predict_batch(batch)
        return {"loss": ((pred - batch["mos"]) ** 2).mean()}


def test_preprocess_sizes_follow_gaic_rule():
    p = Preprocess.gaic()
    assert p.output_size(1024, 683) == (384, 256)  # 683 → 256, 1024 · 256/683 = 383.8 → 384
    assert p.output_size(683, 1024) == (256, 384)
    assert p.output_size(300, 300) == (256, 256)
    assert p.output_size(1000, 250) == (1024, 256)
    assert Preprocess.hcic(fixed=True).output_size(1024, 683) == (256, 256)
    sx, sy = p.scale_factors(1024, 683)
    assert sx == pytest.approx(384 / 1024) and sy == pytest.approx(256 / 683)


def test_preprocess_normalisation_uses_pixel_scale_and_imagenet_stats():
    img = np.full((64, 96, 3), 128, np.uint8)
    x, (sx, sy) = Preprocess.gaic()(img)
    assert tuple(x.shape) == (3, 256, 384) and (sx, sy) == (4.0, 4.0)
    expect = (128 / 256 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x.mean((1, 2)).numpy(), expect, atol=1e-5)
    x255, _ = Preprocess.hcic()(img)
    expect255 = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x255.mean((1, 2)).numpy(), expect255, atol=1e-4)


def test_preprocess_roundtrip_and_validation():
    p = Preprocess.hcic(fixed=True)
    assert Preprocess.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="resize"):
        Preprocess(resize="longest")
    with pytest.raises(ValueError, match="unknown Preprocess keys"):
        Preprocess.from_dict({"sise": 3})


def test_cropmodel_protocol_scores_match_batched_forward():
    torch.manual_seed(0)
    m = _Toy()
    assert isinstance(m, CropModel)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 180, 3), dtype=np.uint8)
    prep = m.prepare(img)
    assert isinstance(prep, PreparedImage) and prep.input_size == (384, 256)
    boxes = np.array([[0, 0, 180, 120], [10, 20, 100, 110], [90, 0, 180, 60]], np.float32)
    s = m.score(prep, boxes)
    assert s.shape == (3,) and s.dtype == np.float32
    # the same through forward() on input-pixel rois
    x, (sx, sy) = m.preprocess(img)
    rois = torch.cat([torch.zeros(3, 1), torch.from_numpy(boxes) * torch.tensor([sx, sy, sx, sy])], 1)
    m.eval()
    with torch.no_grad():
        ref = m(x[None], rois).numpy()
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)
    assert m.score(prep, np.zeros((0, 4))).shape == (0,)
    # prepare/score leave the training flag as they found it
    m.train()
    m.score(m.prepare(img), boxes)
    assert m.training


def test_weights_roundtrip_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    a, b = _Toy(), _Toy()
    path = a.save_weights(tmp_path / "toy.pt")
    ckpt = b.load_weights(path)
    assert ckpt["config"] == {"name": "toy", "width": 4} and "opencrop_version" in ckpt
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    # wrong shapes
    bad = a.checkpoint()
    bad["model"]["fc.weight"] = torch.zeros(1, 5)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=r"bad\.pt.*fc\.weight"):
        b.load_weights(tmp_path / "bad.pt")
    # another model's file
    other = a.checkpoint()
    other["config"]["name"] = "gaic"
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="for model 'gaic'"):
        b.load_weights(tmp_path / "other.pt")
    # a bare state dict gets a hint
    torch.save(a.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(ModelFileError, match="weights import"):
        b.load_weights(tmp_path / "bare.pth")
    with pytest.raises(ModelFileError, match="no such"):
        b.load_weights(tmp_path / "missing.pt")


def test_precision_option_is_checked_reported_and_not_saved(tmp_path, monkeypatch):
    """``precision``: fp32 by default; bad values, models without bf16 and CPUs without native bf16 are errors
    (before building); bf16 is reported (``model.precision``, the Cropper's notes, not the saved config); GAIC's
    bf16 scores are within 2 % of the fp32 scores' spread (random weights enlarged by 0.05·N(0, 1))."""
    import opencrop.models.learned as learned
    from opencrop.api import Cropper
    from opencrop.candidates import gaic_grid
    from opencrop.models import create_model

    assert create_model("gaic").precision == "fp32"
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"):
        create_model("gaic", precision="fp16")
    with pytest.raises(ValueError, match="not supported by this model"):
        create_model("hcic", backbone="mobilenet_v2", precision="bf16")
    with pytest.raises(TypeError):  # a rule-based model takes no precision
        create_model("composition", precision="bf16")
    monkeypatch.setattr(learned, "bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="native bfloat16"):
        create_model("gaic", precision="bf16")
    monkeypatch.setattr(learned, "bf16_supported", lambda: True)
    torch.manual_seed(0)
    m = create_model("gaic", precision="bf16")
    assert m.precision == "bf16"
    path = m.save_weights(tmp_path / "gaic.pt")
    assert "precision" not in torch.load(path, weights_only=True)["config"]
    assert create_model("gaic", weights=str(path)).precision == "fp32"
    assert create_model("gaic", weights=str(path), precision="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        from opencrop.models.export import export_onnx

        export_onnx(m, tmp_path / "gaic.onnx")
    res = Cropper(m, cues=False, random_weights=True).run(np.zeros((64, 96, 3), np.uint8), ["1:1"])
    assert any("bf16" in n for n in res.notes), res.notes

    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    img = np.random.default_rng(0).integers(0, 255, (256, 384, 3), dtype=np.uint8)
    boxes = gaic_grid(384, 256)
    prepared = m.set_precision("fp32").prepare(img)
    s32 = m.score(prepared, boxes)
    s16 = m.set_precision("bf16").score(prepared, boxes)
    assert np.abs(s16 - s32).max() <= 0.02 * np.ptp(s32) and not np.array_equal(s16, s32)
