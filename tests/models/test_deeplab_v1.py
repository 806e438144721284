"""What is unique to DeepLab v1: the atrous VGG at stride 8, LargeFOV fc6, decimated fc6/fc7, the CRF."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import vgg

import seglab
from seglab.errors import ConfigError
from seglab.inference.onnx_export import export_onnx
from seglab.models.semantic.deeplab_v1 import upsample_corner_aligned

SMALL = {"num_classes": 3, "backbone": "vgg11", "hidden": 8}


def test_pools_and_dilations_give_output_stride_8() -> None:
    model = seglab.create_model("deeplabv1_vgg16", **SMALL).eval()
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in convs[-2:]] == [(2, 2)] * 2  # conv5 (vgg11 has two)
    assert all(c.dilation == (1, 1) for c in convs[:-2])
    with torch.no_grad():
        assert model.features(torch.rand(1, 3, 64, 48)).shape[-2:] == (8, 6)


def test_large_fov_head_matches_table_2() -> None:
    with torch.device("meta"):
        model = seglab.create_model("deeplabv1_vgg16", num_classes=21)
    assert (model.fc6.kernel_size, model.fc6.dilation, model.fc6.out_channels) == ((3, 3), (12, 12), 1024)
    assert model.fc7.out_channels == 1024 and model.fc8.out_channels == 21
    assert sum(p.numel() for p in model.parameters()) == 20_505_429  # paper: 20.5 M
    assert [k for k in model.state_dict() if k.startswith("features.")][:2] == ["features.0.weight", "features.0.bias"]


def test_corner_aligned_upsampling_puts_score_k_on_pixel_8k() -> None:
    scores = torch.rand(1, 2, 3, 4)
    up = upsample_corner_aligned(scores, 8)
    assert up.shape == (1, 2, 24, 32)
    torch.testing.assert_close(up[..., ::8, ::8], scores)
    torch.testing.assert_close(up[..., 4, 0], (scores[..., 0, 0] + scores[..., 1, 0]) / 2)


def test_torchvision_vgg_file_loads_and_fc6_fc7_are_decimated(tmp_path) -> None:
    torch.manual_seed(0)
    torchvision_like = nn.Module()
    torchvision_like.features = vgg.make_layers(vgg.cfgs["A"])  # torchvision's vgg11 layout and keys
    state = dict(torchvision_like.state_dict())
    hidden = SMALL["hidden"]
    state |= {  # a classifier 4x wider than fc6/fc7, as 4096 is to 1024
        "classifier.0.weight": torch.randn(4 * hidden, 512 * 7 * 7), "classifier.0.bias": torch.randn(4 * hidden),
        "classifier.3.weight": torch.randn(4 * hidden, 4 * hidden), "classifier.3.bias": torch.randn(4 * hidden),
    }
    torch.save(state, tmp_path / "vgg11.pth")
    model = seglab.create_model("deeplabv1_vgg16", **SMALL, pretrained_backbone=tmp_path / "vgg11.pth")
    torch.testing.assert_close(model.features[0].weight, state["features.0.weight"])
    fc6 = state["classifier.0.weight"].view(4 * hidden, 512, 7, 7)
    torch.testing.assert_close(model.fc6.weight, fc6[::4, :, ::3, ::3])  # taps 0, 3, 6 of 7; every 4th filter
    torch.testing.assert_close(model.fc7.weight[:, :, 0, 0], state["classifier.3.weight"][::4, ::4])
    torch.testing.assert_close(model.fc7.bias, state["classifier.3.bias"][::4])


def test_crf_refines_only_in_eval_and_blocks_export(tmp_path) -> None:
    torch.manual_seed(0)
    plain = seglab.create_model("deeplabv1_vgg16", **SMALL)
    with_crf = seglab.create_model("deeplabv1_vgg16", **SMALL, crf=True)
    with_crf.load_state_dict(plain.state_dict())
    images = torch.rand(2, 3, 32, 40)
    targets = torch.randint(0, 3, (2, 32, 40))
    torch.manual_seed(1)
    loss_plain = plain.train()(images, targets)
    torch.manual_seed(1)
    loss_crf = with_crf.train()(images, targets)
    torch.testing.assert_close(loss_crf, loss_plain)  # training never runs the CRF
    plain.eval()
    with_crf.eval()
    refined, raw = with_crf(images).logits, plain(images).logits
    assert refined.shape == raw.shape and not torch.allclose(refined, raw)
    torch.testing.assert_close(refined, with_crf.crf(raw, images * 255))
    with pytest.raises(ConfigError, match="exportable"):
        export_onnx(with_crf, tmp_path / "m.onnx")
    assert plain.exportable and seglab.model_spec("deeplabv1_vgg16").exportable
