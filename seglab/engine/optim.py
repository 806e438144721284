"""Optimisers and learning-rate policies built from a recipe."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from seglab.recipes.schema import OptimConfig, ScheduleConfig


def build_optimizer(config: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW / RMSprop over the trainable parameters.

    Weight decay is not applied to biases and normalisation parameters (1-D tensors), as is
    usual; the papers' Caffe solvers decayed only weights too (decay_mult 0 on biases).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    return torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum)


def lr_factor(config: ScheduleConfig, step: int) -> float:
    """Multiplier of the base learning rate at iteration ``step`` (0-based).

    poly: (1 - step / steps) ** power (DeepLab, PSPNet); step: gamma ** (step // step_size);
    multistep: gamma ** (milestones passed); exponential: gamma ** step; constant: 1.
    A linear warm-up from ``warmup_factor`` to 1 over ``warmup_steps`` multiplies any policy.
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
    """A per-iteration LambdaLR following ``lr_factor``."""
    return LambdaLR(optimizer, lambda step: lr_factor(config, step))
