"""Inference fast paths: channels_last, bf16/fp16 autocast where the hardware has it, batch-norm folding,
and torch.compile as an option (issue 16 part 1).

``resolve_precision("auto", device)`` picks bfloat16 autocast on CUDA and on CPUs with AVX512-BF16 or
AMX (read from the CPU flags at run time, ``seglab.engine.machine``), fp32 elsewhere, and says why.
``fast_model`` wraps a semantic model for prediction: a copy with every convolution that feeds a batch
norm folded into it (checked against the original on one input, undone if the outputs differ), in
channels_last memory layout, run under autocast, logits returned as float32. The original model is
left as it was (training, export and ``seglab.save`` keep using it).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.ops import FrozenBatchNorm2d

from seglab.engine.machine import describe_machine
from seglab.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # None: no autocast
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # native bfloat16 dot products; without them bf16 is emulated (slower)


@dataclass
class FastPaths:
    """Which fast paths a model runs with, and why others were skipped (one phrase each)."""

    precision: str = "fp32"
    channels_last: bool = False
    folded_bn: int = 0
    compiled: bool = False
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [self.precision, "channels_last" if self.channels_last else "contiguous"]
        parts += [f"{self.folded_bn} batch norms folded"] if self.folded_bn else []
        parts += ["torch.compile"] if self.compiled else []
        return ", ".join(parts) + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else "")


def resolve_precision(precision: str, device: torch.device | str, *,
                      field: str = "--precision") -> tuple[str, str | None]:
    """(``fp32`` | ``bf16`` | ``fp16``, why auto chose fp32 or None) for ``precision`` on ``device``.

    Raises:
        ConfigError: an unknown precision, or fp16 on a CPU (no fast fp16 kernels there), naming ``field``
            (the CLI flag, or ``train.precision``).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{field} {precision!r}: use one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(f"{field} fp16 is for GPUs; on a CPU use bf16 (fast with AVX512-BF16 or AMX) or fp32")
    if precision != "auto":
        return precision, None
    if device.type == "cuda":
        return ("bf16", None) if torch.cuda.is_bf16_supported() else ("fp16", None)
    if device.type != "cpu":
        return "fp32", f"bf16 autocast not chosen on {device.type}"
    flags = describe_machine()["cpu_flags"]
    if any(f in flags for f in BF16_CPU_FLAGS):
        return "bf16", None
    return "fp32", "bf16: this CPU has neither AVX512-BF16 nor AMX"


def describe_precision(precision: str, task: str = "semantic") -> str:
    """How ``seglab bench`` runs a task's models at ``precision`` (auto, fp32, bf16, or off), for its title.

    Raises:
        ConfigError: an unknown precision (before any model is timed).
    """
    if task == "panoptic":
        return "fp32 eager"
    if precision == "off":
        return "fp32 eager (fast paths off)"
    chosen, why = resolve_precision(precision, "cpu")
    scope = "" if task == "semantic" else " where a model names its stages (Mask R-CNN; others fp32 eager)"
    return f"{chosen}, channels_last, batch norms folded{scope}" + (f" ({why})" if why else "")


class FastModel(nn.Module):
    """A semantic model run with fast paths: input in channels_last, forward under autocast, float32 logits."""

    def __init__(self, model: nn.Module, *, device: torch.device, paths: FastPaths) -> None:
        super().__init__()
        self.model, self.device, self.paths = model, device, paths
        self.dtype = AUTOCAST_DTYPES[paths.precision]

    def forward(self, images: Tensor) -> Any:
        if self.paths.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        context = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext())
        with context:
            output = self.model(images)
        return dataclasses.replace(output, logits=output.logits.float().contiguous())


def fast_model(model: nn.Module, *, device: torch.device | str, precision: str = "auto", channels_last: bool = True,
               fold_bn: bool = True, compile: bool = False, example: Tensor | None = None) -> FastModel:  # noqa: A002
    """``model`` (a semantic seglab model) wrapped, in eval mode, with the fast paths asked for and available.

    The wrapped module is a copy when batch norms are folded or the layout changes; ``model`` itself keeps
    its mode, weights and memory layout.

    Args:
        example: one input [1, 3, H, W] to check the folded copy against the original (default 1x3x128x128).
    """
    device = torch.device(device)
    chosen, why = resolve_precision(precision, device)
    paths = FastPaths(precision=chosen, skipped=[why] if why else [])
    original, was_training = model, model.training
    model.eval()
    if fold_bn:
        model, paths.folded_bn, note = fold_batchnorm(model, example=example, device=device)
        paths.skipped += [note] if note else []
    if channels_last:
        if model is original:  # not folded: copy, so the caller's model keeps its layout
            model = copy.deepcopy(original)
        model = model.to(memory_format=torch.channels_last)
        paths.channels_last = True
    if model is not original:
        original.train(was_training)  # the caller's model is left as it was (training evaluates mid-run)
    if compile:
        model = torch.compile(model)
        paths.compiled = True
    return FastModel(model, device=device, paths=paths).eval()


def fast_runner(model: nn.Module, config: dict[str, Any], *, device: torch.device | str, precision: str = "auto",
                compile: bool = False, enabled: bool = True,  # noqa: A002
                task: str = "semantic") -> tuple[nn.Module, FastPaths]:
    """(the module to run, its ``FastPaths``) for a checkpoint's ``model``: a semantic one through ``fast_model``
    checked on one input of the checkpoint's ``input_size`` (else 128 px, rounded up to the model's input
    multiple), an instance one through ``fast_instance_model`` (a model that names its ``autocast_stages``),
    a panoptic one as loaded; with ``enabled`` False, the model itself in fp32 as loaded (``--no-fast``)."""
    if not enabled:
        resolve_precision(precision, device)  # still refuse a bad --precision
        return model, FastPaths(precision="fp32", skipped=["fast paths turned off (--no-fast)"])
    if task == "instance":
        from seglab.inference.fast_instance import fast_instance_model  # noqa: PLC0415 - imports this module

        return fast_instance_model(model, device=device, precision=precision)
    if task != "semantic":
        resolve_precision(precision, device)
        return model, FastPaths(precision="fp32", skipped=[f"{task} models run in fp32 as loaded"])
    multiple = max(int(getattr(model, "input_multiple", 1)), 1)
    side = max(128, int(getattr(model, "min_size", 1)))
    height, width = config.get("input_size") or (side, side)
    height, width = (-(-int(v) // multiple) * multiple for v in (height, width))
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    runner = fast_model(model, device=device, precision=precision, compile=compile, example=example)
    return runner, runner.paths


@torch.no_grad()
def fold_batchnorm(model: nn.Module, *, example: Tensor | None = None, device: torch.device | str = "cpu",
                   outputs: Callable[[nn.Module, Tensor], list[Tensor]] | None = None) -> tuple[nn.Module, int, str | None]:
    """A copy of ``model`` with each Conv2d -> BatchNorm2d (or torchvision's FrozenBatchNorm2d) pair, found by
    running ``example``, fused into one convolution, the batch norm replaced by Identity. Returns (model,
    pairs folded, why nothing was folded).

    A pair is folded only when the batch norm's input is the convolution's output and both run once; the
    copy's ``outputs(model, example)`` (default: a semantic model's logits) are compared with the original's,
    and the original is returned if they differ.
    """
    example = torch.rand(1, 3, 128, 128, device=device) if example is None else example.to(device)
    outputs = outputs or _logits
    pairs = _conv_bn_pairs(model, lambda: outputs(model, example))
    if not pairs:
        return model, 0, None
    folded = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        set_submodule(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        set_submodule(folded, bn_name, nn.Identity())
    for expected, got in zip(outputs(model, example), outputs(folded, example), strict=True):
        scale = float(expected.abs().max()) if expected.numel() else 1.0
        if not torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * (scale or 1.0)):
            return model, 0, "batch-norm folding changed the outputs of this model, so it was not folded"
    return folded, len(pairs), None


def _logits(model: nn.Module, example: Tensor) -> list[Tensor]:
    return [model(example).logits]


def _conv_bn_pairs(model: nn.Module, run: Callable[[], object]) -> list[tuple[str, str]]:
    """(conv name, bn name) of the batch norms whose input is a Conv2d's output, each run once in ``run()``."""
    produced: dict[int, str] = {}  # id of a conv's output tensor -> conv name
    alive: list[Tensor] = []  # conv outputs kept referenced while tracing, so no later tensor reuses their id
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []

    def after_conv(name: str):  # noqa: ANN202
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            calls[name] = calls.get(name, 0) + 1
            produced[id(output)] = name
            alive.append(output)
        return hook

    def before_bn(name: str):  # noqa: ANN202
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            calls[name] = calls.get(name, 0) + 1
            if inputs and id(inputs[0]) in produced:
                pairs.append((produced[id(inputs[0])], name))
        return hook

    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            hooks.append(module.register_forward_hook(after_conv(name)))
        elif (type(module) is nn.BatchNorm2d and module.track_running_stats) or type(module) is FrozenBatchNorm2d:
            hooks.append(module.register_forward_pre_hook(before_bn(name)))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    alive.clear()
    return [(c, b) for c, b in pairs if calls.get(c) == 1 and calls.get(b) == 1]


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)
