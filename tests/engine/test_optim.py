"""Learning-rate policies on hand-worked values, and optimiser parameter groups."""

from __future__ import annotations

import pytest
import torch

from seglab.engine.optim import build_optimizer, build_scheduler, lr_factor
from seglab.recipes.schema import OptimConfig, ScheduleConfig


@pytest.mark.parametrize(
    ("config", "step", "expected"),
    [
        (ScheduleConfig(policy="poly", steps=100, power=0.9), 0, 1.0),
        (ScheduleConfig(policy="poly", steps=100, power=0.9), 50, 0.5**0.9),
        (ScheduleConfig(policy="poly", steps=100, power=1.0), 75, 0.25),
        (ScheduleConfig(policy="step", steps=10000, step_size=2000, gamma=0.1), 1999, 1.0),
        (ScheduleConfig(policy="step", steps=10000, step_size=2000, gamma=0.1), 4000, 0.01),
        (ScheduleConfig(policy="multistep", steps=100, milestones=[30, 80], gamma=0.5), 29, 1.0),
        (ScheduleConfig(policy="multistep", steps=100, milestones=[30, 80], gamma=0.5), 80, 0.25),
        (ScheduleConfig(policy="exponential", steps=100, gamma=0.995), 2, 0.995**2),
        (ScheduleConfig(policy="constant", steps=100), 99, 1.0),
        # warm-up from 0.1 to 1 over 10 steps, multiplying the policy: halfway 0.55 * poly(5)
        (ScheduleConfig(policy="poly", steps=100, power=1.0, warmup_steps=10, warmup_factor=0.1), 5, 0.55 * 0.95),
        (ScheduleConfig(policy="constant", steps=100, warmup_steps=10, warmup_factor=0.1), 10, 1.0),
    ],
)
def test_lr_factor(config: ScheduleConfig, step: int, expected: float) -> None:
    assert lr_factor(config, step) == pytest.approx(expected)


def test_scheduler_steps_the_optimizer_lr() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(OptimConfig(name="sgd", lr=0.1, momentum=0.9), model)
    scheduler = build_scheduler(ScheduleConfig(policy="poly", steps=4, power=1.0), optimizer)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.075, 0.05, 0.025])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_weight_decay_skips_biases_and_norms(name: str) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = build_optimizer(OptimConfig(name=name, lr=0.01, weight_decay=1e-4), model)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-4 and plain["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 3, 3, 3])]
    assert len(plain["params"]) == 3  # conv bias, BN weight, BN bias
