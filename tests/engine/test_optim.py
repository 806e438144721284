"""Learning-rate policies on hand-worked values, optimiser parameter groups and multipliers, epoch schedules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seglab.engine import train as train_module
from seglab.engine.optim import build_optimizer, build_scheduler, lr_factor, resolve_schedule
from seglab.errors import ConfigError
from seglab.recipes import load_recipe
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


# ----------------------------------------------------------------------------- per-group multipliers


def _toy_segmenter() -> torch.nn.Module:
    """backbone (conv + BN), head.branches.{0,1}.fc (two 1x1 classifiers), as named_parameters sees them."""
    head = torch.nn.Module()
    head.branches = torch.nn.ModuleList()
    for _ in range(2):
        branch = torch.nn.Module()
        branch.fc = torch.nn.Conv2d(4, 3, 1)
        head.branches.append(branch)
    model = torch.nn.Module()
    model.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model.head = head
    return model


def _lr_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> float:
    (lr,) = [g["lr"] for g in optimizer.param_groups if any(p is param for p in g["params"])]
    return lr


def test_lr_mult_prefix_and_bias_mult_set_each_group() -> None:
    model = _toy_segmenter()
    config = OptimConfig(name="sgd", lr=0.001, weight_decay=5e-4, lr_mult={"head": 10.0}, bias_lr_mult=2.0)
    optimizer = build_optimizer(config, model)
    fc = model.head.branches[1].fc
    # DeepLab v1 (Caffe): classifier weights at 10x, its biases at 20x; trunk biases at 2x.
    assert _lr_of(optimizer, fc.weight) == pytest.approx(0.01)
    assert _lr_of(optimizer, fc.bias) == pytest.approx(0.02)
    assert _lr_of(optimizer, model.backbone[0].weight) == pytest.approx(0.001)
    assert _lr_of(optimizer, model.backbone[0].bias) == pytest.approx(0.002)
    assert _lr_of(optimizer, model.backbone[1].weight) == pytest.approx(0.001)  # BN scale: not a bias
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(fc.weight)] == 5e-4 and decay[id(fc.bias)] == 0.0
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_lr_mult_glob_and_last_match_wins() -> None:
    model = _toy_segmenter()
    config = OptimConfig(lr=0.1, lr_mult={"head.*.fc": 10.0, "head.branches.0": 5.0})
    optimizer = build_optimizer(config, model)
    assert _lr_of(optimizer, model.head.branches[0].fc.weight) == pytest.approx(0.5)
    assert _lr_of(optimizer, model.head.branches[1].fc.weight) == pytest.approx(1.0)
    assert _lr_of(optimizer, model.backbone[0].weight) == pytest.approx(0.1)


def test_scheduler_keeps_the_group_ratios() -> None:
    model = _toy_segmenter()
    optimizer = build_optimizer(OptimConfig(lr=0.01, lr_mult={"head": 10.0}), model)
    scheduler = build_scheduler(ScheduleConfig(policy="poly", steps=4, power=1.0), optimizer)
    fc, conv = model.head.branches[0].fc.weight, model.backbone[0].weight
    seen = []
    for _ in range(3):
        seen.append((_lr_of(optimizer, conv), _lr_of(optimizer, fc)))
        optimizer.step()
        scheduler.step()
    assert seen == [pytest.approx((0.01 * f, 0.1 * f)) for f in (1.0, 0.75, 0.5)]


def test_lr_mult_pattern_matching_nothing_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_optimizer(OptimConfig(lr_mult={"haed": 10.0}), _toy_segmenter())
    message = str(info.value)
    assert "optim.lr_mult" in message and "'haed'" in message
    assert "backbone, head" in message and "did you mean 'head'" in message


def test_lr_mult_rejects_non_positive_multipliers() -> None:
    with pytest.raises(ValueError, match="multiplier for 'head' must be > 0"):
        OptimConfig(lr_mult={"head": 0.0})


# ----------------------------------------------------------------------------- epochs and rescaling


def test_epoch_exponential_matches_the_per_epoch_decay() -> None:
    # FC-DenseNet: lr x 0.995 after every epoch; 10 iterations per epoch, 5 epochs.
    config = ScheduleConfig(policy="exponential", gamma=0.995, unit="epoch", steps=5)
    resolved = resolve_schedule(config, iters_per_epoch=10)
    assert (resolved.unit, resolved.steps, resolved.scale) == ("iter", 50, 1.0)
    for epoch in range(5):
        assert lr_factor(resolved, 10 * epoch) == pytest.approx(0.995**epoch)
    assert 0.995 < lr_factor(resolved, 5) < 1.0  # smooth in between


def test_epoch_step_and_multistep_lengths_convert() -> None:
    step = resolve_schedule(ScheduleConfig(policy="step", unit="epoch", steps=6, step_size=2), iters_per_epoch=3)
    assert (step.steps, step.step_size) == (18, 6)
    assert [lr_factor(step, s) for s in (5, 6, 12)] == pytest.approx([1.0, 0.1, 0.01])
    multi = resolve_schedule(
        ScheduleConfig(policy="multistep", unit="epoch", steps=10, milestones=[4, 8], warmup_steps=1), iters_per_epoch=7
    )
    assert (multi.steps, multi.milestones, multi.warmup_steps) == (70, [28, 56], 7)


def test_scale_shrinks_a_published_schedule() -> None:
    # DeepLab v1's x0.1 every 2000 of 6000 iterations, on a dataset 10x smaller.
    deeplab = ScheduleConfig(policy="step", steps=6000, step_size=2000, gamma=0.1, scale=0.1, warmup_steps=100)
    small = resolve_schedule(deeplab, iters_per_epoch=123)  # unit iter: the loader length does not matter
    assert (small.steps, small.step_size, small.warmup_steps, small.scale) == (600, 200, 10, 1.0)
    expo = resolve_schedule(ScheduleConfig(policy="exponential", gamma=0.5, steps=10, scale=2.0), iters_per_epoch=1)
    assert lr_factor(expo, 20) == pytest.approx(0.5**10)  # same decay at the same fraction of the run
    unchanged = ScheduleConfig(policy="poly", steps=10)
    assert resolve_schedule(unchanged, iters_per_epoch=5) is unchanged


def test_unresolved_schedule_is_refused() -> None:
    optimizer = build_optimizer(OptimConfig(), torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="resolve_schedule"):
        build_scheduler(ScheduleConfig(unit="epoch", steps=3), optimizer)
    with pytest.raises(ConfigError, match="iters_per_epoch must be >= 1"):
        resolve_schedule(ScheduleConfig(unit="epoch", steps=3), iters_per_epoch=0)


def test_milestones_must_lie_inside_the_schedule() -> None:
    with pytest.raises(ConfigError, match=r"schedule.milestones \[5, 50\] must increase"):
        load_recipe("unet_synthetic_cpu", overrides=["schedule.policy=multistep", "schedule.milestones=[5, 50]",
                                                     "schedule.steps=20"])


class _TinyLoss(torch.nn.Module):
    """One weight; a finite loss for any batch (the loop, not the model, is under test)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"loss_ce": (self.w * images.mean()) ** 2}


def test_train_runs_an_epoch_schedule(tiny_recipe_file: Path, tmp_path: Path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(train_module, "build_model", lambda recipe, num_classes: _TinyLoss())

    def spy(config: ScheduleConfig, iters_per_epoch: int) -> ScheduleConfig:
        seen.append(iters_per_epoch)
        return resolve_schedule(config, iters_per_epoch)

    monkeypatch.setattr(train_module, "resolve_schedule", spy)
    overrides = ["schedule.unit=epoch", "schedule.steps=2", "schedule.warmup_steps=0", "data.kwargs.num_images=4",
                 "data.batch_size=2", "data.val_split=null", "train.checkpoint_every=1000"]
    recipe = load_recipe(tiny_recipe_file, overrides=overrides)
    result = train_module.train(recipe, out_dir=tmp_path, progress=False)
    assert seen == [2] and result.steps == 4  # 2 epochs of 2 batches, not 2 iterations
