"""Backbones: declared feature specs match real outputs, torchvision keys load, errors are clear."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from seglab.backbones import (
    Backbone,
    DenseNetBackbone,
    ResNetBackbone,
    ResNeXtBackbone,
    VGGBackbone,
    WideResNetBackbone,
    build_backbone,
    list_backbones,
    load_pretrained,
)
from seglab.errors import ConfigError

CHEAP = ["vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet50", "densenet121"]
LARGE = ["resnet101", "resnet152", "wide_resnet50_2", "resnext101_32x8d"]
NOMINAL_STRIDES = {"c1": 2, "c2": 4, "c3": 8, "c4": 16, "c5": 32}


@functools.cache
def _built(name: str, output_stride: int = 32) -> Backbone:
    """Each backbone is built once per session; tests only read it."""
    torch.manual_seed(0)
    return build_backbone(name, output_stride=output_stride).eval()


def _torchvision_on_meta(name: str) -> nn.Module:
    """torchvision's reference model without allocating or initialising its weights."""
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None)


def _assert_specs_match_outputs(backbone: Backbone, size: int) -> None:
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, size, size))
    assert list(features) == ["c1", "c2", "c3", "c4", "c5"]
    for level, spec in backbone.feature_specs.items():
        expected = (1, spec.channels, size // spec.stride, size // spec.stride)
        actual = tuple(features[level].shape)
        assert actual == expected, f"{level}: {actual} != {expected}"


@pytest.mark.parametrize("name", CHEAP)
def test_declared_specs_match_outputs(name: str) -> None:
    backbone = _built(name)
    assert {level: spec.stride for level, spec in backbone.feature_specs.items()} == NOMINAL_STRIDES
    _assert_specs_match_outputs(backbone, size=64)


@pytest.mark.parametrize("name", CHEAP)
def test_keys_are_torchvision_keys_without_classifier(name: str) -> None:
    reference = _torchvision_on_meta(name).state_dict()
    dropped = ("fc.", "classifier.")
    assert set(_built(name).state_dict()) == {key for key in reference if not key.startswith(dropped)}


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilated_resnet_reaches_output_stride(name: str, output_stride: int) -> None:
    backbone = _built(name, output_stride)
    strides = {level: spec.stride for level, spec in backbone.feature_specs.items()}
    assert strides == {level: min(stride, output_stride) for level, stride in NOMINAL_STRIDES.items()}
    _assert_specs_match_outputs(backbone, size=64)


@pytest.mark.parametrize(
    "output_stride, flags", [(16, [False, False, True]), (8, [False, True, True])]
)
def test_dilation_equals_torchvision_replace_stride_with_dilation(
    output_stride: int, flags: list[bool]
) -> None:
    with torch.device("meta"):
        reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=flags)
    ours = _built("resnet50", output_stride)
    for name, conv in reference.named_modules():
        if isinstance(conv, nn.Conv2d):
            mine = ours.get_submodule(name)
            expected = (conv.stride, conv.dilation, conv.padding)
            assert (mine.stride, mine.dilation, mine.padding) == expected, name


def test_basic_block_dilation_follows_torchvision_rule() -> None:
    # First block of a dilated stage keeps the previous dilation; later blocks use the new one.
    backbone = _built("resnet18", 8)
    assert backbone.layer3[0].conv1.dilation == (1, 1) and backbone.layer3[1].conv2.dilation == (2, 2)
    assert backbone.layer4[0].conv1.dilation == (2, 2) and backbone.layer4[1].conv1.dilation == (4, 4)
    assert backbone.layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("name", LARGE)
def test_large_backbone_is_torchvision_without_fc(name: str) -> None:
    backbone = build_backbone(name).eval()
    reference = _torchvision_on_meta(name)
    expected = sum(p.numel() for key, p in reference.named_parameters() if not key.startswith("fc."))
    assert sum(p.numel() for p in backbone.parameters()) == expected
    _assert_specs_match_outputs(backbone, size=32)


@pytest.fixture(scope="module")
def resnet18_state_dict() -> dict[str, torch.Tensor]:
    """A torchvision checkpoint, ``fc.*`` included, as users download it."""
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_pretrained_round_trip(tmp_path: Path, resnet18_state_dict: dict, suffix: str) -> None:
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(resnet18_state_dict, path)
    else:
        torch.save(resnet18_state_dict, path)
    backbone = build_backbone("resnet18", pretrained=path)
    assert torch.equal(backbone.layer4[1].conv2.weight, resnet18_state_dict["layer4.1.conv2.weight"])
    assert torch.equal(backbone.bn1.running_var, resnet18_state_dict["bn1.running_var"])


def test_load_pretrained_unwraps_training_checkpoint(tmp_path: Path, resnet18_state_dict: dict) -> None:
    # A training checkpoint: weights under "model", saved from DataParallel ("module." prefix).
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {f"module.{k}": v for k, v in resnet18_state_dict.items()}, "epoch": 3}, path)
    backbone = build_backbone("resnet18", pretrained=path)
    assert torch.equal(backbone.conv1.weight, resnet18_state_dict["conv1.weight"])


def test_load_pretrained_missing_key_names_file_and_key(tmp_path: Path, resnet18_state_dict: dict) -> None:
    path = tmp_path / "incomplete.pth"
    torch.save({k: v for k, v in resnet18_state_dict.items() if k != "layer1.0.conv1.weight"}, path)
    with pytest.raises(ConfigError, match="incomplete.pth") as error:
        build_backbone("resnet18", pretrained=path)
    assert "layer1.0.conv1.weight" in str(error.value)


def test_load_pretrained_shape_mismatch_names_key(tmp_path: Path, resnet18_state_dict: dict) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save({**resnet18_state_dict, "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}, path)
    with pytest.raises(ConfigError, match=r"layer1\.0\.conv1\.weight: file \[64, 64, 1, 1\]"):
        build_backbone("resnet18", pretrained=path)


def test_load_pretrained_strict_prefixes_allow_partial_file(
    tmp_path: Path, resnet18_state_dict: dict
) -> None:
    path = tmp_path / "no_layer4.pth"
    torch.save({k: v for k, v in resnet18_state_dict.items() if not k.startswith("layer4.")}, path)
    backbone = ResNetBackbone(arch="resnet18")
    load_pretrained(backbone, path, strict_prefixes=("conv1.", "bn1.", "layer1.", "layer2.", "layer3."))
    assert torch.equal(backbone.layer3[0].conv1.weight, resnet18_state_dict["layer3.0.conv1.weight"])


def test_load_pretrained_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(ConfigError, match="nowhere"):
        build_backbone("resnet18", pretrained=path)


class _NotATensor:
    """Pickled by reference: ``weights_only`` loading must refuse to rebuild it."""


def test_load_pretrained_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "code.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _NotATensor()}, path)
    with pytest.raises(ConfigError, match=r"code\.pth' is refused: loading it would run code or build objects") as caught:
        load_pretrained(ResNetBackbone(arch="resnet18"), path)
    assert "weights_only=False" not in str(caught.value)  # never torch's advice to unpickle it anyway


def test_load_pretrained_renames_legacy_densenet_keys(tmp_path: Path) -> None:
    # torchvision's published DenseNet files spell "norm1" as "norm.1" (pre-1.0 module names).
    state_dict = _built("densenet121").state_dict()
    legacy = {
        key.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): value
        for key, value in state_dict.items()
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet121.pth"
    torch.save(legacy, path)
    load_pretrained(DenseNetBackbone(), path)


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ConfigError, match="resnet50"):
        build_backbone("resnet5")


@pytest.mark.parametrize("name, output_stride", [("vgg16", 8), ("densenet121", 8), ("resnet50", 4)])
def test_unsupported_output_stride(name: str, output_stride: int) -> None:
    with pytest.raises(ConfigError, match=rf"{name}.*output_stride={output_stride}.*supported"):
        build_backbone(name, output_stride=output_stride)


def test_list_backbones() -> None:
    assert set(list_backbones()) == {"vgg11", "vgg16", "vgg16_bn", "resnet34", *CHEAP, *LARGE}


@pytest.mark.parametrize(
    "cls, arxiv",
    [
        (VGGBackbone, "1409.1556"),
        (ResNetBackbone, "1512.03385"),
        (WideResNetBackbone, "1605.07146"),
        (ResNeXtBackbone, "1611.05431"),
        (DenseNetBackbone, "1608.06993"),
    ],
)
def test_docstring_cites_paper(cls: type, arxiv: str) -> None:
    assert arxiv in cls.__doc__.splitlines()[0]


def test_vgg_at_output_stride_16_drops_pool5_and_keeps_torchvision_keys() -> None:
    """Fast R-CNN / MNC pool RoIs from conv5_3 at stride 16: pool5 is removed, the layer indices stay."""
    ours, reference = _built("vgg16", 16), _built("vgg16")
    assert ours.state_dict().keys() == reference.state_dict().keys()
    features = ours(torch.rand(1, 3, 64, 96))
    assert features["c5"].shape == (1, 512, 4, 6) and ours.feature_specs["c5"].stride == 16
