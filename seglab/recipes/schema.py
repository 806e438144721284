"""The Recipe schema: model, data, optimiser, schedule, loss, training and evaluation settings.

Every field is validated by pydantic with unknown fields rejected, so a typo in a YAML file or a
``--set`` override fails with the file name and the dotted field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """Which registered model to build, and builder keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DataConfig(_Strict):
    """Dataset, splits and the augmentation applied by the loaders."""

    dataset: str
    root: str | None = None  # default: seglab.data.root.data_root() (SEGLAB_DATA or ../shared/data)
    kwargs: dict[str, Any] = Field(default_factory=dict)  # extra dataset arguments
    train_split: str = "train"
    val_split: str | None = "val"
    resize: tuple[int, int] | None = None  # (H, W) every image is resized to first (reduced resolution)
    crop_size: tuple[int, int] | None = None  # (H, W) random crop for training
    scale_range: tuple[float, float] | None = None  # random resize factors, e.g. (0.5, 2.0) (PSPNet)
    hflip: bool = True
    batch_size: int = Field(8, ge=1)  # per process
    workers: int = Field(0, ge=0)


class OptimConfig(_Strict):
    """Optimiser and its hyper-parameters (survey Tables 1 and 5)."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)


class ScheduleConfig(_Strict):
    """Learning-rate policy over ``steps`` iterations (one iteration = one optimiser step)."""

    policy: Literal["constant", "poly", "step", "multistep", "exponential"] = "poly"
    steps: int = Field(1000, ge=1)
    power: float = 0.9  # poly: lr * (1 - step / steps) ** power
    step_size: int = Field(1000, ge=1)  # step: multiply by gamma every step_size iterations
    gamma: float = Field(0.1, gt=0)  # step / multistep factor; exponential: per-iteration factor
    milestones: list[int] = Field(default_factory=list)  # multistep
    warmup_steps: int = Field(0, ge=0)  # linear warm-up from lr * warmup_factor
    warmup_factor: float = Field(0.001, gt=0, le=1)


class LossConfig(_Strict):
    """Loss settings that become builder arguments."""

    class_weights: list[float] | None = None
    aux_weight: float | None = None


class TrainConfig(_Strict):
    """Loop settings."""

    seed: int = 0
    amp: bool = False  # mixed precision where the device supports it (CUDA)
    grad_clip: float | None = Field(None, gt=0)  # max gradient norm
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    eval_every: int | None = Field(None, ge=1)  # None: evaluate once at the end


class EvalConfig(_Strict):
    """Evaluation settings."""

    split: str | None = None  # default: data.val_split
    batch_size: int = Field(1, ge=1)


class Recipe(_Strict):
    """A complete training recipe. See recipes/*.yaml for published ones."""

    description: str = ""
    source: str = ""  # the survey table / paper section the values come from
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _check_schedule(self) -> Recipe:
        s = self.schedule
        if s.policy == "multistep" and not s.milestones:
            raise ValueError("schedule.milestones must list iterations when schedule.policy is 'multistep'")
        if s.warmup_steps >= s.steps:
            raise ValueError(f"schedule.warmup_steps ({s.warmup_steps}) must be below schedule.steps ({s.steps})")
        return self
