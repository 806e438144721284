"""Inference fast paths for instance models whose class names its convolution stages (Mask R-CNN).

A model opts in with ``autocast_stages``: the dotted names of the submodules that are plain stacks of
convolutions and linear layers (Mask R-CNN: backbone, FPN, the RPN's head, the box and mask heads).
``fast_instance_model`` returns a copy in which frozen and ordinary batch norms are folded into their
convolutions (checked on the dense features of one input), the stages run in channels_last under
bf16/fp16 autocast, and every stage hands float32 to what follows. So anchor and box decoding, NMS,
score thresholds, top-k and mask pasting run in float32 as before: in bf16 (8 bits of mantissa) a box
corner at x = 500 px would move by up to 2 px. Models that name no stages run as loaded, in fp32.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from seglab.inference.fast import AUTOCAST_DTYPES, FastPaths, fold_batchnorm, resolve_precision, set_submodule


class AutocastStage(nn.Module):
    """``module`` with its 4-D inputs in channels_last, run under autocast (``dtype`` None: none), its
    floating outputs returned as float32. Attributes not found on the stage are read from ``module``."""

    def __init__(self, module: nn.Module, *, device_type: str, dtype: torch.dtype | None, channels_last: bool) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype, self.channels_last = module, device_type, dtype, channels_last

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.channels_last:
            args = tuple(_map_tensors(a, _to_channels_last) for a in args)
        context = torch.autocast(self.device_type, dtype=self.dtype) if self.dtype is not None else nullcontext()
        with context:
            output = self.module(*args, **kwargs)
        return _map_tensors(output, _to_float32)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def fast_instance_model(model: nn.Module, *, device: torch.device | str, precision: str = "auto",
                        channels_last: bool = True, fold_bn: bool = True,
                        example: Tensor | None = None) -> tuple[nn.Module, FastPaths]:
    """(a fast copy of ``model`` in eval mode, its ``FastPaths``); ``model`` itself is left as it was.

    Args:
        example: one image [3, H, W] (or a batch [1, 3, H, W]) to check the folded copy against the original
            (default 3x256x256 random); folding is undone if the dense features differ.
    """
    device = torch.device(device)
    chosen, why = resolve_precision(precision, device)
    stages = tuple(getattr(model, "autocast_stages", ()))
    if not stages:
        return model, FastPaths(precision="fp32", skipped=[f"{type(model).__name__} names no autocast stages, "
                                                            "so it runs in fp32 as loaded"])
    paths = FastPaths(precision=chosen, skipped=[why] if why else [])
    was_training = model.training
    model.eval()
    fast = model
    if fold_bn:
        image = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0)) if example is None else example
        image = image[0] if image.dim() == 4 else image
        fast, paths.folded_bn, note = fold_batchnorm(model, example=image.to(device), device=device,
                                                     outputs=dense_features)
        paths.skipped += [note] if note else []
    fast = copy.deepcopy(model) if fast is model else fast
    model.train(was_training)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        paths.channels_last = True
    for name in stages:
        set_submodule(fast, name, AutocastStage(fast.get_submodule(name), device_type=device.type,
                                                dtype=AUTOCAST_DTYPES[chosen], channels_last=channels_last))
    return fast.eval(), paths


def dense_features(model: nn.Module, image: Tensor) -> list[Tensor]:
    """The features a two-stage model's heads read for ``image`` (where every batch norm lives)."""
    batch, _ = model.prepare([image], None)
    features = model.dense_features(batch.tensor)
    return list(features.values()) if isinstance(features, Mapping) else [features]


def _to_channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _to_float32(x: Tensor) -> Tensor:
    return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x


def _map_tensors(value: Any, fn: Any) -> Any:
    """``fn`` applied to every tensor in ``value`` (a tensor, or lists, tuples and dicts of them)."""
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _map_tensors(v, fn)) for k, v in value.items())
    return value
