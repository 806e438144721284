"""PANet's three mechanisms, each against a direct computation: the bottom-up path, adaptive feature
pooling (every RoI from every level, max-fused after a per-level layer) and the mask head's fc fusion."""

from __future__ import annotations

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

import seglab
from seglab.backbones.base import FeatureSpec
from seglab.heads.adaptive_pooling import AllLevelsRoIAlign
from seglab.heads.panet import AdaptiveBoxHead, FusedMaskHead
from seglab.necks.bottom_up import BottomUpPath

LEVELS = ("n2", "n3", "n4", "n5")


def pyramid(channels: int = 8, size: tuple[int, int] = (32, 48), prefix: str = "p") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {f"{prefix}{k}": torch.randn(1, channels, size[0] // 2 ** (k - 2), size[1] // 2 ** (k - 2))
            for k in range(2, 6)}


def test_bottom_up_path_is_n2_p2_then_conv_of_downsampled_plus_lateral() -> None:
    specs = {f"p{k}": FeatureSpec(8, 2 ** k) for k in range(2, 6)}
    path = BottomUpPath(specs, channels=8, groups=4).eval()
    p = pyramid()
    n = path(p)
    assert list(n) == ["n2", "n3", "n4", "n5", "n6"]
    assert torch.equal(n["n2"], p["p2"])
    for i, k in enumerate(range(3, 6)):
        expected = path.fuse[i](path.down[i](n[f"n{k - 1}"]) + p[f"p{k}"])
        assert torch.allclose(n[f"n{k}"], expected) and n[f"n{k}"].shape == p[f"p{k}"].shape
    assert torch.equal(n["n6"], n["n5"][..., ::2, ::2])
    assert path.feature_specs["n6"].stride == 64
    conv, norm, _ = path.down[0]
    assert conv.stride == (2, 2) and conv.bias is None and isinstance(norm, torch.nn.GroupNorm)


def test_every_roi_is_pooled_from_every_level() -> None:
    features = pyramid(prefix="n")
    boxes = [torch.tensor([[16.0, 16.0, 80.0, 112.0], [120.0, 8.0, 184.0, 40.0]])]
    sizes = [(128, 192)]  # n2 (32x48) at stride 4
    pooled = AllLevelsRoIAlign(LEVELS, output_size=7)(features, boxes, sizes)
    assert len(pooled) == 4
    for k, x in zip(range(2, 6), pooled):
        expected = roi_align(features[f"n{k}"], boxes, (7, 7), spatial_scale=1 / 2 ** k, sampling_ratio=2)
        assert torch.equal(x, expected)
    # FPN's pooler takes each RoI from one level only: equal to one of the four, never all
    single = MultiScaleRoIAlign(list(LEVELS), output_size=7, sampling_ratio=2)(features, boxes, sizes)
    assert any(torch.equal(single[0], x[0]) for x in pooled)


def test_box_head_fuses_levels_by_max_after_a_layer_each() -> None:
    head = AdaptiveBoxHead(8, num_levels=4, num_classes=3, channels=8, hidden=16).eval()
    torch.manual_seed(1)
    pooled = [torch.randn(5, 8, 7, 7) for _ in range(4)]
    fused = torch.stack([layer(x) for layer, x in zip(head.first, pooled)]).amax(0)
    x = torch.relu(head.fc(head.convs(fused).flatten(1)))
    logits, deltas = head(pooled)
    assert torch.allclose(logits, head.cls_score(x)) and torch.allclose(deltas, head.bbox_pred(x))
    assert logits.shape == (5, 3) and deltas.shape == (5, 12)
    pooled[3] = pooled[3].requires_grad_()
    head(pooled)[0].sum().backward()
    assert pooled[3].grad.abs().sum() > 0, "the coarsest level reaches every RoI's output"


def test_mask_head_adds_one_class_agnostic_fc_mask_to_every_class() -> None:
    head = FusedMaskHead(8, num_levels=4, num_classes=4, channels=8).eval()
    pooled = [torch.randn(3, 8, 14, 14) for _ in range(4)]
    logits = head(pooled)
    assert logits.shape == (3, 4, 28, 28)
    x = head.convs(torch.stack([layer(p) for layer, p in zip(head.first, pooled)]).amax(0))
    fcn = head.logits(torch.relu(head.deconv(head.conv4(x))))
    fc = torch.relu(head.fc(head.conv5_fc(head.conv4_fc(x)).flatten(1))).view(3, 1, 28, 28)
    assert torch.allclose(logits, fcn + fc)
    assert head.conv5_fc[0].out_channels == 4, "conv5_fc halves the channels"
    assert head.fc.out_features == 28 * 28
    torch.nn.init.zeros_(head.logits.weight)
    torch.nn.init.zeros_(head.logits.bias)
    flat = head(pooled)
    assert torch.equal(flat[:, 0], flat[:, 3]), "without the FCN path every class gets the same fc mask"


def test_reference_configuration_parameters_add_up() -> None:
    with torch.device("meta"):
        panet = seglab.create_model("panet_resnet50_fpn", num_classes=81)
    conv = 256 * 256 * 9 + 2 * 256  # 3x3 conv without bias + GroupNorm
    box = 4 * conv + 3 * conv + (256 * 49 * 1024 + 1024) + (1024 * 81 + 81) + (1024 * 324 + 324)
    mask = (4 * conv + 2 * conv + conv + (256 * 256 * 4 + 256) + (256 * 81 + 81)
            + conv + (256 * 128 * 9 + 2 * 128) + (128 * 196 * 784 + 784))
    bottom_up = 6 * conv
    assert sum(p.numel() for p in panet.box_head.parameters()) == box
    assert sum(p.numel() for p in panet.mask_head.parameters()) == mask
    assert sum(p.numel() for p in panet.neck[1].parameters()) == bottom_up
    assert sum(p.numel() for p in panet.parameters()) == 73_354_821
