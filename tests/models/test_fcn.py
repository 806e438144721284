"""What is unique to FCN: convolutionalised fc6/fc7, bilinear-initialised deconvolutions, skip fusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import seglab
from seglab.heads.fcn import ConvolutionalizedClassifier
from seglab.layers.upsample import BilinearDeconv, bilinear_kernel


def test_bilinear_kernel_is_the_hand_worked_filter() -> None:
    k = bilinear_kernel(2, 4)  # factor 2: taps 1/4, 3/4, 3/4, 1/4
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(k[0, 0], taps[:, None] * taps[None, :])
    assert k[0, 1].abs().sum() == 0  # no mixing between channels


def test_bilinear_deconv_upsamples_like_bilinear_interpolation() -> None:
    x = torch.rand(1, 3, 6, 7)
    up = BilinearDeconv(3, factor=2)(x)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])  # borders differ by zero padding
    assert up.requires_grad  # learnable, FCN sec. 3.3


def test_fc6_fc7_load_from_a_vgg_classifier_state_dict() -> None:
    torch.manual_seed(0)
    head = ConvolutionalizedClassifier(8, 3, hidden=16, kernel_size=7, dropout=0.0).eval()
    fc6, fc7 = torch.nn.Linear(8 * 7 * 7, 16), torch.nn.Linear(16, 16)
    head.load_vgg_classifier({"classifier.0.weight": fc6.weight, "classifier.0.bias": fc6.bias,
                              "classifier.3.weight": fc7.weight, "classifier.3.bias": fc7.bias})
    pool5 = torch.rand(1, 8, 7, 7)
    # At the centre of a 7x7 map, conv fc6 sees exactly the flattened input the Linear fc6 saw.
    conv_fc7 = torch.relu(head.fc7(torch.relu(head.fc6(pool5))))[0, :, 3, 3]
    linear_fc7 = torch.relu(fc7(torch.relu(fc6(pool5.flatten(1)))))[0]
    torch.testing.assert_close(conv_fc7, linear_fc7)


def test_skips_start_at_zero_and_fuse_pool4_and_pool3() -> None:
    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "backbone": "vgg11", "hidden": 32}
    fcn8s = seglab.create_model("fcn8s_vgg16", **kwargs).eval()
    fcn32s = seglab.create_model("fcn32s_vgg16", **kwargs)
    assert hasattr(fcn8s, "score_pool3") and hasattr(fcn8s, "score_pool4")
    assert not hasattr(fcn32s, "score_pool4")
    assert fcn8s.score_pool3.weight.abs().sum() == 0 and fcn8s.score_pool4.weight.abs().sum() == 0
    images = torch.rand(1, 3, 64, 64)
    before = fcn8s(images).logits
    with torch.no_grad():
        fcn8s.score_pool3.bias.fill_(1.0)  # a pool3 score now reaches the output
    assert not torch.allclose(fcn8s(images).logits, before)


def test_fcn_variants_share_one_builder() -> None:
    specs = [seglab.model_spec(f"fcn{v}_vgg16") for v in ("32s", "16s", "8s")]
    assert {s.survey_row for s in specs} == {"FCN-VGG16"}
