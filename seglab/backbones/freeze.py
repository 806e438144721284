"""Frozen batch norm and frozen early stages, as detectors fine-tune an ImageNet backbone.

Mask R-CNN (arXiv 1703.06870) trains from ImageNet weights with the backbone's batch-norm
statistics and affine parameters fixed (FrozenBN: images per GPU are too few to estimate
statistics) and, in Detectron, the stem and res2 frozen (``FREEZE_AT = 2``); torchvision's
equivalent is ``trainable_backbone_layers = 3``.
"""

from __future__ import annotations

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

RESNET_STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")  # deepest first


def freeze_batchnorm(module: nn.Module, *, eps: float = 1e-5) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a FrozenBatchNorm2d with the same statistics and affine terms.

    Returns:
        the module (changed in place; a bare BatchNorm2d is returned replaced).
    """
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=eps)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(frozen, name).copy_(getattr(module, name).detach())
        return frozen
    for name, child in module.named_children():
        replaced = freeze_batchnorm(child, eps=eps)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def freeze_resnet_stages(backbone: nn.Module, *, trainable_layers: int) -> None:
    """Keep gradients for the last ``trainable_layers`` ResNet stages only (0..5; 5 trains everything).

    Stages counted from the deepest: layer4, layer3, layer2, layer1, then the stem conv1 (with bn1).
    """
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
    trained = RESNET_STAGES[:trainable_layers] + (("bn1",) if trainable_layers == 5 else ())
    for name, parameter in backbone.named_parameters():
        if not name.startswith(trained):
            parameter.requires_grad_(False)
