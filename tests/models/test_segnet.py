"""What is unique to SegNet: the decoder unpools with the encoder's max-pooling indices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

import seglab
from seglab.layers.unpool import PoolingIndicesEncoder, vgg16_stages


def _record_pools_and_unpools(model: nn.Module, images: Tensor) -> tuple[list, list]:
    """Run ``model`` and return, per encoder pool, (input, indices), and per decoder unpool, (input, indices,
    output_size, output)."""
    pools, unpools = [], []
    hooks = [
        pool.register_forward_hook(lambda m, args, out: pools.append((args[0].clone(), out[1])))
        for pool in model.encoder.modules()
        if isinstance(pool, nn.MaxPool2d)
    ] + [
        stage.unpool.register_forward_hook(
            lambda m, args, kwargs, out: unpools.append((args[0], args[1], kwargs["output_size"], out)),
            with_kwargs=True,
        )
        for stage in model.decoder.stages
    ]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return pools, unpools


def _window_maxima(x: Tensor) -> Tensor:
    """True where x equals the maximum of its 2x2 pooling window (even sizes)."""
    return x == F.interpolate(F.max_pool2d(x, 2), scale_factor=2, mode="nearest")


def test_decoder_unpools_at_the_argmax_of_the_matching_pool() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("segnet_vgg16", num_classes=3, base_channels=8).eval()
    pools, unpools = _record_pools_and_unpools(model, torch.rand(1, 3, 64, 64))
    assert len(pools) == len(unpools) == 5
    for (pool_in, indices), (unpool_in, used, size, unpooled) in zip(pools, reversed(unpools)):
        assert torch.equal(used, indices) and tuple(size) == tuple(pool_in.shape[-2:])
        # Every value lands on a distinct argmax position of the matching encoder pool.
        assert not (unpooled != 0)[~_window_maxima(pool_in)].any()
        assert (unpooled != 0).sum() == (unpool_in != 0).sum()
    # The deepest decoder unpools pool5's own output: non-zero exactly at pool5's maxima.
    pool5_in, _ = pools[-1]
    expected = torch.where(_window_maxima(pool5_in) & (pool5_in > 0), pool5_in, 0.0)
    assert torch.equal(unpools[0][3], expected)


def test_odd_sizes_go_through_without_padding() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("segnet_vgg16", num_classes=3, base_channels=8).eval()
    with torch.no_grad():
        features, switches = model.encoder(torch.rand(2, 3, 37, 45))
        out = model.classifier(model.decoder(features, switches))
    assert out.shape == (2, 3, 37, 45)


def test_13_encoder_and_13_decoder_convs_each_with_batch_norm() -> None:
    model = seglab.create_model("segnet_vgg16", num_classes=11, base_channels=8)
    for part in (model.encoder, model.decoder):
        convs = [m for m in part.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(convs) == len(norms) == 13
        assert all(c.kernel_size == (3, 3) for c in convs)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # no fully connected layers
    assert model.classifier.kernel_size == (1, 1) and model.classifier.in_channels == 8


def test_parameter_count() -> None:
    with torch.device("meta"):
        model = seglab.create_model("segnet_vgg16", num_classes=11)  # CamVid
    # VGG16's 13 convs (14,714,688) plus BN scale and shift (8,448): the survey's "14.7M in the encoder".
    assert sum(p.numel() for p in model.encoder.parameters()) == 14_723_136
    total = sum(p.numel() for p in model.parameters())
    assert total == 29_480_779 and abs(total - 29.5e6) / 29.5e6 < 0.02  # the paper: about 29.5 M


def test_pretrained_backbone_initialises_the_encoder(tmp_path) -> None:
    torch.manual_seed(1)
    source = PoolingIndicesEncoder(vgg16_stages(8))  # torchvision vgg16_bn key names, 8-wide
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, like a real torchvision checkpoint's fc layers
    save_file(state, tmp_path / "vgg16_bn.safetensors")
    model = seglab.create_model(
        "segnet_vgg16", num_classes=3, base_channels=8, pretrained_backbone=tmp_path / "vgg16_bn.safetensors"
    )
    for key, value in source.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
