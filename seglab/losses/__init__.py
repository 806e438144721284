"""Loss functions; models call them and return named, weighted terms.

A recipe picks the main per-pixel loss of a semantic model by name (``loss.name``):

    ce       PixelCrossEntropy, mean over labelled pixels (FCN, U-Net, SegNet, PSPNet, ...)
    ce_sum   PixelCrossEntropy(reduction="sum"), DeepLab's / FCN's unnormalised sum
    focal    FocalLoss (option focal_gamma)
    dice     DiceLoss (option dice_smooth)
    ce+dice  CrossEntropyDiceLoss (options dice_weight, dice_smooth)

Every builder turns ``(loss, class_weights, loss_options)`` into its criterion with
``pixel_criterion``. The other losses (binary, DeepMask, detection, Gated-SCNN's dual task) take
other inputs and are imported and called directly by the models that need them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

from torch import nn

from seglab.errors import ConfigError, closest
from seglab.losses.binary import DeepMaskLoss, binary_cross_entropy
from seglab.losses.cross_entropy import PixelCrossEntropy
from seglab.losses.detection import (
    fast_rcnn_losses,
    mask_rcnn_losses,
    mask_rcnn_mask_loss,
    rpn_losses,
    smooth_l1,
    tensormask_mask_loss,
)
from seglab.losses.dice import CrossEntropyDiceLoss, DiceLoss
from seglab.losses.dual_task import DualTaskLoss
from seglab.losses.focal import FocalLoss, sigmoid_focal_loss, sigmoid_focal_loss_star

__all__ = [
    "CrossEntropyDiceLoss",
    "DeepMaskLoss",
    "DiceLoss",
    "DualTaskLoss",
    "FocalLoss",
    "PixelCrossEntropy",
    "binary_cross_entropy",
    "build_loss",
    "fast_rcnn_losses",
    "loss_names",
    "loss_options",
    "mask_rcnn_losses",
    "mask_rcnn_mask_loss",
    "pixel_criterion",
    "rpn_losses",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_star",
    "smooth_l1",
    "tensormask_mask_loss",
]

Weights = Sequence[float] | None


def _ce(*, class_weights: Weights, ignore_index: int) -> nn.Module:
    return PixelCrossEntropy(class_weights=class_weights, ignore_index=ignore_index)


def _ce_sum(*, class_weights: Weights, ignore_index: int) -> nn.Module:
    return PixelCrossEntropy(class_weights=class_weights, ignore_index=ignore_index, reduction="sum")


def _focal(*, class_weights: Weights, ignore_index: int, focal_gamma: float = 2.0) -> nn.Module:
    return FocalLoss(gamma=focal_gamma, class_weights=class_weights, ignore_index=ignore_index)


def _dice(*, class_weights: Weights, ignore_index: int, dice_smooth: float = 1.0) -> nn.Module:
    return DiceLoss(smooth=dice_smooth, class_weights=class_weights, ignore_index=ignore_index)


def _ce_dice(
    *, class_weights: Weights, ignore_index: int, dice_weight: float = 1.0, dice_smooth: float = 1.0
) -> nn.Module:
    return CrossEntropyDiceLoss(
        dice_weight=dice_weight, smooth=dice_smooth, class_weights=class_weights, ignore_index=ignore_index
    )


_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": _ce,
    "ce_sum": _ce_sum,
    "focal": _focal,
    "dice": _dice,
    "ce+dice": _ce_dice,
}


def loss_names() -> list[str]:
    """Names accepted by ``build_loss`` (and the recipe field ``loss.name``)."""
    return sorted(_LOSSES)


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name not in _LOSSES:
        hint = closest(str(name), _LOSSES)
        raise ConfigError(
            f"unknown loss {name!r}; {hint + ' ' if hint else ''}known losses: {', '.join(loss_names())}"
        )
    return _LOSSES[name]


def loss_options(name: str) -> tuple[str, ...]:
    """The option names a loss takes besides class_weights and ignore_index (e.g. ("focal_gamma",))."""
    params = inspect.signature(_lookup(name)).parameters
    return tuple(p for p in params if p not in ("class_weights", "ignore_index"))


def build_loss(name: str, *, class_weights: Weights = None, ignore_index: int = 255, **options: float) -> nn.Module:
    """Build a per-pixel loss by name.

    Args:
        name: one of ``loss_names()``.
        class_weights: optional [C] class weights, used by every loss.
        ignore_index: label of ignored pixels (255).
        **options: the loss's own settings, named as in the recipe's loss section (``focal_gamma``,
            ``dice_smooth``, ``dice_weight``); see ``loss_options(name)``.

    Returns:
        A module called as ``criterion(logits [N, C, H, W], targets [N, H, W] int64) -> scalar``.

    Raises:
        ConfigError: unknown name (with the closest ones) or an option the loss does not take.
    """
    factory = _lookup(name)
    accepted = loss_options(name)
    for option in options:
        if option not in accepted:
            takes = ", ".join(accepted) if accepted else "no options"
            raise ConfigError(f"loss {name!r} has no option {option!r}; it takes {takes}")
    return factory(class_weights=class_weights, ignore_index=ignore_index, **options)


def pixel_criterion(
    loss: str = "ce", class_weights: Weights = None, options: Mapping[str, float] | None = None
) -> nn.Module:
    """The criterion a semantic builder passes to its model: ``build_loss(loss, ...)`` with ignore index 255.

    Args:
        loss: loss name (the builder's ``loss`` argument, from the recipe's ``loss.name``).
        class_weights: optional [C] weights (the builder's ``class_weights``).
        options: the builder's ``loss_options`` (from the recipe's loss section), or None.
    """
    return build_loss(loss, class_weights=class_weights, **dict(options or {}))
