"""Torchvision's Mask R-CNN checkpoints in seglab's module names.

torchvision's ``maskrcnn_resnet50_fpn`` and seglab's ``mask_rcnn_resnet50_fpn`` hold the same layers
(the tests check the parameter count and the outputs), under other names. ``TORCHVISION_KEYS`` maps
one onto the other, covering both the names of torchvision's published COCO file (``rpn.head.conv``,
``mask_head.mask_fcn1``) and those of current torchvision (``rpn.head.conv.0.0``, ``mask_head.0.0``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from seglab.backbones.weights import read_state_dict
from seglab.errors import ConfigError

# (torchvision pattern, seglab replacement), tried in order; the first match wins.
TORCHVISION_KEYS: tuple[tuple[str, str], ...] = (
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.", "neck.fpn."),
    (r"^rpn\.head\.conv\.(?:0\.0\.)?(weight|bias)$", r"proposer.head.conv.\1"),
    (r"^rpn\.head\.cls_logits\.", "proposer.head.objectness."),
    (r"^rpn\.head\.bbox_pred\.", "proposer.head.deltas."),
    (r"^roi_heads\.box_head\.(fc6|fc7)\.", r"box_head.\1."),
    (r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.", r"box_head.\1."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "mask_head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "mask_head.logits."),
)
_MASK_CONV_NEW = re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$")
_MASK_CONV_OLD = re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$")


def from_torchvision(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision Mask R-CNN state dict to seglab's keys (unknown keys are kept as they are)."""
    renamed = {}
    for key, value in state_dict.items():
        renamed[_rename(key)] = value
    return renamed


def _rename(key: str) -> str:
    if (match := _MASK_CONV_NEW.match(key)) is not None:
        return f"mask_head.convs.{2 * int(match.group(1))}.{match.group(2)}"  # convs holds conv, ReLU pairs
    if (match := _MASK_CONV_OLD.match(key)) is not None:
        return f"mask_head.convs.{2 * (int(match.group(1)) - 1)}.{match.group(2)}"
    for pattern, replacement in TORCHVISION_KEYS:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    return key


# Layers whose size is the number of classes: with other classes they keep their init (fine-tuning).
CLASS_SPECIFIC = ("box_head.cls_score.", "box_head.bbox_pred.", "mask_head.logits.")


def load_torchvision_weights(model: nn.Module, path: str | Path) -> None:
    """Fill ``model`` from a local torchvision Mask R-CNN checkpoint (.pth / .safetensors), strictly.

    Every tensor of the model must come from the file (seglab's input normalisation constants
    excepted, they are not weights), with the same shape; file keys the model lacks are errors too.
    The one exception is fine-tuning: when the file was trained for another number of classes, the
    class-specific predictors (``CLASS_SPECIFIC``) keep their initialisation, with a warning.

    Raises:
        ConfigError: naming the file and the first keys that are missing, unexpected or mis-shaped.
    """
    path = Path(path)
    weights = from_torchvision(read_state_dict(path))
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    score = weights.get("box_head.cls_score.weight")
    if score is not None and score.shape != expected["box_head.cls_score.weight"].shape:
        warnings.warn(f"{path} was trained for {score.shape[0]} classes, this model has "
                      f"{expected['box_head.cls_score.weight'].shape[0]}: the class-specific layers "
                      f"({', '.join(k.rstrip('.') for k in CLASS_SPECIFIC)}) keep their initialisation", stacklevel=3)
        weights = {k: v for k, v in weights.items() if not k.startswith(CLASS_SPECIFIC)}
        expected = {k: v for k, v in expected.items() if not k.startswith(CLASS_SPECIFIC)}
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected and not k.endswith("num_batches_tracked")]
    shapes = [f"{k}: file {list(weights[k].shape)} vs model {list(v.shape)}"
              for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (
            f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "",
            f"wrong shapes {shapes[:3]}" if shapes else "") if part)
        raise ConfigError(f"{path} is not a torchvision Mask R-CNN checkpoint for this model ({detail}); "
                          "pass the backbone it was trained with (resnet50 for torchvision's COCO file) and "
                          "the same fpn_channels, box_hidden and mask_channels")
    model.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=False)
