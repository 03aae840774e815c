"""Backbones: tap shapes and strides, upstream parameter names, real ImageNet weights where installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opencrop.errors import ModelFileError
from opencrop.nn import (
    VGG16,
    EfficientNetLite0,
    FeatureInfo,
    MobileNetV2,
    ResNet50,
    ShuffleNetV2,
    Tap,
    create_backbone,
    list_backbones,
)
from opencrop.nn.weights import resolve_weights

H, W = 256, 384

EXPECTED_CHANNELS = {
    "mobilenet_v2": [32, 96, 320],
    "vgg16": [512, 512, 512],
    "resnet50": [512, 1024, 2048],
    "shufflenet_v2_x0_5": [48, 96, 192],
    "shufflenet_v2_x1_0": [116, 232, 464],
    "efficientnet_lite0": [40, 112, 320],
}


@pytest.mark.parametrize("name", list_backbones())
def test_tap_shapes_and_feature_info(name):
    torch.manual_seed(0)
    bb = create_backbone(name, with_classifier=False).eval()
    assert bb.feature_info.channels() == EXPECTED_CHANNELS[name]
    assert bb.feature_info.reduction() == [8, 16, 32]
    with torch.no_grad():
        taps = bb(torch.randn(1, 3, H, W))
    assert len(taps) == 3
    for t, info in zip(taps, bb.feature_info, strict=True):
        assert t.shape == (1, info.num_chs, H // info.reduction, W // info.reduction), (name, info)
        assert torch.isfinite(t).all()
        assert info.module in dict(bb.named_modules())


def test_resnet50_dc5_keeps_stride_16():
    bb = ResNet50(dilate_last=True, with_classifier=False).eval()
    assert bb.feature_info.reduction() == [8, 16, 16]
    with torch.no_grad():
        _, f4, f5 = bb(torch.randn(1, 3, 64, 96))
    assert f4.shape[-2:] == f5.shape[-2:] == (4, 6)
    # torchvision's replace_stride_with_dilation: first layer4 block dilation 1, the others dilation 2
    assert bb.layer4[0].conv2.dilation == (1, 1) and bb.layer4[0].conv2.stride == (1, 1)
    assert bb.layer4[1].conv2.dilation == (2, 2) and bb.layer4[2].conv2.padding == (2, 2)


def test_resnet50_frozen_bn_loads_batchnorm_state():
    src = ResNet50(with_classifier=False)
    with torch.no_grad():
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    frozen = ResNet50(frozen_bn=True, with_classifier=False)
    frozen.load_state_dict(src.state_dict())  # num_batches_tracked accepted
    assert not any("bn" in n for n, _ in frozen.named_parameters())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(src.eval()(x), frozen.eval()(x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_torchvision_key_layouts():
    with torch.device("meta"):  # names and shapes only, no memory for VGG16's 138 M parameters
        r, v, s = ResNet50().state_dict(), VGG16(with_classifier=True).state_dict(), ShuffleNetV2(1.0).state_dict()
        m, e = MobileNetV2().state_dict(), EfficientNetLite0().state_dict()
    # 53 convs/BNs: 53 conv weights + 106 BN affine + 2 fc = 161 parameters; 159 BN buffers
    assert len(r) == 320
    assert {"layer1.0.downsample.0.weight", "layer4.2.bn3.running_var", "fc.bias"} <= set(r)
    assert len(v) == 32 and "features.28.weight" in v and "classifier.6.bias" in v
    assert [k for k in v if k.startswith("features.")][-1] == "features.28.bias"
    assert {"conv1.0.weight", "stage2.0.branch1.0.weight", "stage2.0.branch1.2.weight", "stage2.1.branch2.5.weight",
            "stage4.3.branch2.6.running_mean", "conv5.1.weight", "fc.weight"} <= set(s)
    assert s["stage2.0.branch1.0.weight"].shape == (24, 1, 3, 3)
    assert s["stage3.0.branch2.0.weight"].shape == (116, 116, 1, 1)
    assert len(m) == 314
    assert m["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert m["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert len([k for k in e if not k.endswith("num_batches_tracked")]) == 247
    assert "_blocks.0._expand_conv.weight" not in e and e["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)


def test_every_parameter_gets_a_gradient():
    bb = create_backbone("mobilenet_v2", with_classifier=False)
    f3, f4, f5 = bb(torch.randn(2, 3, 32, 32))  # small: depthwise-conv backward is slow on CPU
    (f3.mean() + f4.mean() + f5.mean()).backward()
    assert all(p.grad is not None for p in bb.parameters())


def test_feature_info_checks_order():
    with pytest.raises(ValueError, match="decrease"):
        FeatureInfo([Tap("a", 1, 16, "x"), Tap("b", 1, 8, "y")])


def test_unknown_backbone():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        create_backbone("alexnet")
    with pytest.raises(ValueError, match="width"):
        ShuffleNetV2(width=2.0)


def test_explicit_weights_file_round_trip(tmp_path):
    src = create_backbone("shufflenet_v2_x0_5")
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    dst = create_backbone("shufflenet_v2_x0_5", weights=path, with_classifier=False)  # classifier keys ignored
    for k, v in dst.state_dict().items():
        torch.testing.assert_close(v, src.state_dict()[k])
    torch.save({"conv1.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelFileError, match="does not fit"):
        create_backbone("shufflenet_v2_x0_5", weights=tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="readable"):
        create_backbone("shufflenet_v2_x0_5", weights=tmp_path / "junk.pth")


# ---------------------------------------------------------------------------------------------------------------
# real ImageNet weights


def _chelsea_batch(size: int = 224) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the chelsea photo")
    from PIL import Image

    img = Image.fromarray(skimage_data.chelsea()).resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255)[None]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _real_weights(name: str) -> object:
    """The real weight file, wherever the resolver finds it (opencrop cache after `opencrop models fetch`, the
    torch hub cache or the installed registry package); skips with the fix when it is nowhere."""
    try:
        return resolve_weights(name)
    except ModelFileError as e:
        pytest.skip(f"{name} weights absent ({e.problem[:80]}…); run `opencrop models fetch --all`")


def test_mobilenet_v2_real_weights_strict_and_imagenet_cat():
    path = _real_weights("mobilenet_v2-imagenet")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert len(sd) == 314
    bb = create_backbone("mobilenet_v2", pretrained=True).eval()  # resolved through opencrop.modelfiles
    result = bb.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(bb.state_dict()) == list(sd)  # same names in the same order
    with torch.no_grad():
        probs = bb.classify(_chelsea_batch()).softmax(1)[0]
        taps = bb(_chelsea_batch(256))
    top = int(probs.argmax())
    assert 281 <= top <= 285, f"chelsea classified as ImageNet class {top}"
    assert float(probs[281:286].sum()) > 0.8
    assert [t.shape[1] for t in taps] == [32, 96, 320]
    slim = create_backbone("mobilenet_v2", pretrained=True, with_classifier=False)
    key = "features.17.conv.3.running_var"
    torch.testing.assert_close(slim.state_dict()[key], sd[key])


def test_efficientnet_lite0_real_weights_strict_and_imagenet_cat():
    path = _real_weights("efficientnet_lite0-imagenet")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert len([k for k in sd if not k.endswith("num_batches_tracked")]) == 247
    bb = create_backbone("efficientnet_lite0", pretrained=True).eval()
    result = bb.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(bb.state_dict()) == list(sd)  # same names in the same order
    with torch.no_grad():
        probs = bb.classify(_chelsea_batch()).softmax(1)[0]
    top = int(probs.argmax())
    assert 281 <= top <= 285, f"chelsea classified as ImageNet class {top}"
    assert float(probs[281:286].sum()) > 0.8


def test_load_by_order_from_other_naming(tmp_path):
    # a MobileNetV2 file in another implementation's naming (flat Sequential indices, no BN counters, like
    # d-li14's mobilenetv2 used by GAIC / S2CNet): same tensors in the same order
    src = MobileNetV2()
    with torch.no_grad():
        for p in src.parameters():
            p.uniform_(-1, 1)
    renamed = {f"t{i:03d}": v for i, (k, v) in enumerate(src.state_dict().items())
               if not k.endswith("num_batches_tracked")}
    torch.save(renamed, tmp_path / "other.pth")
    dst = MobileNetV2()
    dst.load_weights(tmp_path / "other.pth", by_order=True)
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(dst.state_dict()[k], v)
    slim = MobileNetV2(with_classifier=False)
    slim.load_weights(tmp_path / "other.pth", by_order=True)  # the head at the end of the file is dropped
    torch.testing.assert_close(slim.features[17].conv[3].weight, src.features[17].conv[3].weight)
    torch.save(dict(list(renamed.items())[:-3]), tmp_path / "short.pth")
    with pytest.raises(ModelFileError, match="by order"):
        dst.load_weights(tmp_path / "short.pth", by_order=True)
