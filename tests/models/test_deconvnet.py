"""What is unique to DeconvNet: unpooling by switches, BN after every layer, fc6/fc7 and deconv-fc6."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import seglab

SMALL = {"base_channels": 8, "fc_channels": 16}


def _window_maxima(x: Tensor) -> Tensor:
    """True where x equals the maximum of its 2x2 pooling window (even sizes)."""
    return x == F.interpolate(F.max_pool2d(x, 2), scale_factor=2, mode="nearest")


def test_unpooling_by_switches_of_the_mirrored_pool() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("deconvnet_vgg16", num_classes=3, **SMALL).eval()
    pools, unpools = [], []
    for pool in (m for m in model.encoder.modules() if isinstance(m, nn.MaxPool2d)):
        pool.register_forward_hook(lambda m, args, out: pools.append((args[0].clone(), out[1])))
    for stage in model.decoder.stages:
        stage.unpool.register_forward_hook(
            lambda m, args, kwargs, out: unpools.append((args[0], args[1], kwargs["output_size"], out)),
            with_kwargs=True,
        )
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert len(pools) == len(unpools) == 5
    for (pool_in, switches), (unpool_in, used, size, unpooled) in zip(pools, reversed(unpools)):
        assert torch.equal(used, switches) and tuple(size) == tuple(pool_in.shape[-2:])
        # Sec. 3.2.1: each activation goes back to the location of the maximum it came from.
        assert not (unpooled != 0)[~_window_maxima(pool_in)].any()
        assert (unpooled != 0).sum() == (unpool_in != 0).sum() > 0


def test_batch_norm_and_relu_after_every_conv_and_deconv() -> None:
    model = seglab.create_model("deconvnet_vgg16", num_classes=21, **SMALL)
    leaves = [m for m in model.modules() if not list(m.children())]
    layers = [i for i, m in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    convs = [leaves[i] for i in layers if type(leaves[i]) is nn.Conv2d]
    deconvs = [leaves[i] for i in layers if isinstance(leaves[i], nn.ConvTranspose2d)]
    assert len(convs) == 13 + 2 + 1  # conv1_1 .. conv5_3, fc6, fc7, the 1x1 score layer
    assert len(deconvs) == 1 + 13  # deconv-fc6, deconv5_3 .. deconv1_1
    for i in layers:
        if leaves[i] is model.classifier:
            continue
        norm, act = leaves[i + 1], leaves[i + 2]
        assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == leaves[i].out_channels
        assert isinstance(act, nn.ReLU)
    assert not any(isinstance(m, nn.Dropout2d) for m in model.modules())  # BN instead of dropout (sec. 4.1)


def test_fc6_fc7_and_deconv_fc6_keep_the_pool5_size() -> None:
    model = seglab.create_model("deconvnet_vgg16", num_classes=3, **SMALL).eval()
    fc6, deconv_fc6 = model.fc6[0], model.deconv_fc6[0]
    assert fc6.kernel_size == deconv_fc6.kernel_size == (7, 7) and model.fc7[0].kernel_size == (1, 1)
    pool5 = torch.rand(2, 64, 2, 3)  # a 64 x 96 input: far smaller than the paper's 7x7 pool5
    with torch.no_grad():
        assert model.deconv_fc6(model.fc7(model.fc6(pool5))).shape == pool5.shape


def test_fc6_fc7_load_from_a_vgg_classifier_state_dict() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("deconvnet_vgg16", num_classes=3, **SMALL).eval()
    fc6, fc7 = nn.Linear(64 * 7 * 7, 16), nn.Linear(16, 16)
    model.load_vgg_classifier({"classifier.0.weight": fc6.weight, "classifier.0.bias": fc6.bias,
                               "classifier.3.weight": fc7.weight, "classifier.3.bias": fc7.bias})
    pool5 = torch.rand(1, 64, 7, 7)
    # At the centre of a 7x7 map, the padded conv fc6 sees exactly the paper's (valid) fc6 input.
    with torch.no_grad():
        conv = model.fc7[0](torch.relu(model.fc6[0](pool5)))[0, :, 3, 3]
        linear = fc7(torch.relu(fc6(pool5.flatten(1))))[0]
    torch.testing.assert_close(conv, linear)


def test_parameter_count() -> None:
    with torch.device("meta"):
        model = seglab.create_model("deconvnet_vgg16", num_classes=21)  # PASCAL VOC
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in model.named_children()}
    assert counts["fc6"] == 512 * 7 * 7 * 4096 + 4096 + 2 * 4096  # conv weight, bias, BN scale and shift
    assert counts["deconv_fc6"] == 4096 * 7 * 7 * 512 + 512 + 2 * 512
    total = sum(counts.values())
    assert total == 251_805_653 and abs(total - 252e6) / 252e6 < 0.02  # the paper: about 252 M
