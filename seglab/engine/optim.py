"""Optimisers and learning-rate policies built from a recipe.

Per-parameter-group learning rates follow Caffe's ``lr_mult`` (DeepLab's final classifier at 10x,
arXiv 1412.7062 sec. 4.1; biases at 2x in the FCN and DeepLab solvers). Schedules written in
epochs or rescaled with ``schedule.scale`` become iterations in ``resolve_schedule``.
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from seglab.errors import ConfigError, closest
from seglab.recipes.schema import OptimConfig, ScheduleConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_factor", "param_groups", "resolve_schedule"]


def _matches(name: str, pattern: str) -> bool:
    """Whether parameter ``name`` lies under ``pattern``: a module prefix or a glob, e.g. "head.*.fc"."""
    return (
        name == pattern
        or name.startswith(pattern + ".")
        or fnmatchcase(name, pattern)
        or fnmatchcase(name, pattern + ".*")
    )


def param_groups(config: OptimConfig, model: nn.Module) -> list[dict]:
    """Split the trainable parameters into groups by learning-rate multiplier and weight decay.

    Weight decay is not applied to biases and normalisation parameters (1-D tensors), as is
    usual; the papers' Caffe solvers decayed only weights too (decay_mult 0 on biases).
    A parameter's multiplier is that of the last ``config.lr_mult`` pattern it matches (1 if
    none), times ``config.bias_lr_mult`` for biases.

    Returns:
        Groups ``{"params", "lr", "lr_mult", "weight_decay"}`` with ``lr = config.lr * lr_mult``,
        ordered by multiplier, decayed group first; empty groups are left out.

    Raises:
        ConfigError: an ``optim.lr_mult`` pattern matches no parameter of the model.
    """
    grouped: dict[tuple[float, bool], list[nn.Parameter]] = {}
    used: set[str] = set()
    for name, param in model.named_parameters():
        mult = 1.0
        for pattern, pattern_mult in config.lr_mult.items():
            if _matches(name, pattern):
                mult = pattern_mult
                used.add(pattern)
        if not param.requires_grad:
            continue
        decayed = param.ndim > 1
        if name.rsplit(".", 1)[-1] == "bias":
            mult *= config.bias_lr_mult
        grouped.setdefault((mult, decayed), []).append(param)
    unused = [p for p in config.lr_mult if p not in used]
    if unused:
        top = sorted({name.split(".")[0] for name, _ in model.named_parameters()})
        hint = closest(unused[0].split(".")[0], top)
        raise ConfigError(
            f"optim.lr_mult: pattern {unused[0]!r} matches no parameter of {type(model).__name__}; "
            f"patterns are parameter-name prefixes or globs, its top-level modules are {', '.join(top[:8])}"
            + (f"; {hint}" if hint else "")
        )
    return [
        {
            "params": grouped[key],
            "lr": config.lr * key[0],
            "lr_mult": key[0],
            "weight_decay": config.weight_decay if key[1] else 0.0,
        }
        for key in sorted(grouped, key=lambda k: (k[0], not k[1]))
    ]


def build_optimizer(config: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW / RMSprop over the trainable parameters, grouped by ``param_groups``."""
    groups = param_groups(config, model)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    return torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum)


def resolve_schedule(config: ScheduleConfig, iters_per_epoch: int) -> ScheduleConfig:
    """The schedule in optimiser iterations, with ``unit`` and ``scale`` applied.

    Every length (``steps``, ``step_size``, ``milestones``, ``warmup_steps``) is multiplied by
    ``iters_per_epoch`` (when ``unit`` is "epoch") and by ``scale``, then rounded (at least 1).
    The exponential policy's ``gamma`` becomes ``gamma ** (1 / that factor)``, so the decay at
    every epoch boundary (or at the same fraction of a rescaled run) is unchanged: FC-DenseNet's
    0.995 per epoch becomes 0.995 ** (1 / iters_per_epoch) per iteration, a smooth curve through
    the paper's per-epoch staircase.

    Args:
        config: the recipe's schedule.
        iters_per_epoch: optimiser steps per epoch (``len(train_loader)``).
    Returns:
        A schedule with ``unit="iter"`` and ``scale=1`` (``config`` itself when nothing changes).
    """
    if iters_per_epoch < 1:
        raise ConfigError(f"schedule: iters_per_epoch must be >= 1, got {iters_per_epoch} (is the train split empty?)")
    factor = (iters_per_epoch if config.unit == "epoch" else 1) * config.scale
    if factor == 1 and config.unit == "iter":
        return config

    def length(n: int) -> int:
        return max(1, round(n * factor))

    steps = length(config.steps)
    milestones = sorted({min(length(m), steps - 1) for m in config.milestones} - {0})
    update = {
        "unit": "iter",
        "scale": 1.0,
        "steps": steps,
        "step_size": length(config.step_size),
        "milestones": milestones,
        "warmup_steps": min(round(config.warmup_steps * factor), steps - 1),
    }
    if config.policy == "exponential":
        update["gamma"] = config.gamma ** (1 / factor)
    return ScheduleConfig.model_validate({**config.model_dump(), **update})


def lr_factor(config: ScheduleConfig, step: int) -> float:
    """Multiplier of the base learning rate at iteration ``step`` (0-based).

    poly: (1 - step / steps) ** power (DeepLab, PSPNet); step: gamma ** (step // step_size);
    multistep: gamma ** (milestones passed); exponential: gamma ** step; constant: 1.
    A linear warm-up from ``warmup_factor`` to 1 over ``warmup_steps`` multiplies any policy.
    ``config`` counts iterations (see ``resolve_schedule``).
    """
    if config.policy == "poly":
        factor = max(0.0, 1 - step / config.steps) ** config.power
    elif config.policy == "step":
        factor = config.gamma ** (step // config.step_size)
    elif config.policy == "multistep":
        factor = config.gamma ** sum(step >= m for m in config.milestones)
    elif config.policy == "exponential":
        factor = config.gamma**step
    else:
        factor = 1.0
    if step < config.warmup_steps:
        alpha = step / config.warmup_steps
        factor *= config.warmup_factor * (1 - alpha) + alpha
    assert math.isfinite(factor)
    return factor


def build_scheduler(config: ScheduleConfig, optimizer: torch.optim.Optimizer) -> LambdaLR:
    """A per-iteration LambdaLR following ``lr_factor``.

    One factor multiplies every parameter group's initial rate, so the ``lr_mult`` ratios hold
    throughout training.

    Raises:
        ConfigError: ``config`` still counts epochs or has a ``scale``; call ``resolve_schedule``.
    """
    if config.unit != "iter" or config.scale != 1:
        raise ConfigError(
            f"schedule (unit={config.unit!r}, scale={config.scale}) must be converted to iterations "
            "with seglab.engine.optim.resolve_schedule before building the scheduler"
        )
    return LambdaLR(optimizer, lambda step: lr_factor(config, step))
