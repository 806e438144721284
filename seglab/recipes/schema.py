"""The Recipe schema: model, data, optimiser, schedule, loss, training and evaluation settings.

Every field is validated by pydantic with unknown fields rejected, so a typo in a YAML file or a
``--set`` override fails with the file name and the dotted field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """Which registered model to build, and builder keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class PatchConfig(_Strict):
    """Train on DeepMask's patches of the dataset's images (``seglab.data.patches.PatchSampler``).

    DeepMask (arXiv 1506.06204, sec. 3.1-3.2) trains on 224-px windows holding a canonical object
    (positives) or none (negatives); the model's ``patch_size`` and ``context`` must match.
    """

    size: int = Field(224, ge=16)  # the window side (sec. 3.1: 224)
    context: int = Field(0, ge=0)  # pixels of context on each side (the authors' code: 16)
    positive_fraction: float = Field(0.5, ge=0, le=1)  # DataSampler.lua: positives and negatives equally
    hflip: bool = True  # sec. 3.2: horizontal flip
    min_area: int = Field(100, ge=0)  # DataSampler.lua: no positives of objects under 100 px


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
    # Named augmentations in order (seglab.data.augment); when set, they replace the built-in
    # scale_range / crop_size / hflip chain (resize still runs first).
    augment: list[dict[str, Any]] | None = None
    batch_size: int = Field(8, ge=1)  # per process
    workers: int = Field(0, ge=0)  # loader processes; 0 suits 2 cores (both compute), more on larger machines
    # Decode (and resize to data.resize) each training image once and keep it in memory (seglab.data.cache):
    # auto when it fits a quarter of the available memory and workers is 0; true always; false never.
    cache: bool | Literal["auto"] = "auto"
    # Training items are DeepMask patches of the training images (evaluation keeps whole images).
    patches: PatchConfig | None = None

    @model_validator(mode="after")
    def _check_augment(self) -> DataConfig:
        if self.augment is None:
            return self
        from seglab.data.augment import check_augmentation  # lazy: recipes must not import torch early
        from seglab.errors import ConfigError

        try:
            check_augmentation(self.augment, field="data.augment")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        replaced = [f for f in ("crop_size", "scale_range", "hflip") if f in self.model_fields_set]
        replaced = [f for f in replaced if getattr(self, f) not in (None, False)]
        if replaced:
            raise ValueError(
                f"data.augment replaces data.{', data.'.join(replaced)}; express them as augment entries "
                "(random_crop, random_resize, hflip) or set them to null/false"
            )
        return self


class OptimConfig(_Strict):
    """Optimiser and its hyper-parameters (survey Tables 1 and 5).

    ``lr_mult`` gives some parameters a multiple of ``lr``, as Caffe's per-layer ``lr_mult``
    did: keys are parameter-name prefixes (``"classifier"``) or globs (``"*.head.*"``) matched
    against ``model.named_parameters()``, values the multipliers; the last matching key wins.
    DeepLab (arXiv 1412.7062, sec. 4.1) trains its final classifier at 10x the base rate.
    ``bias_lr_mult`` multiplies the rate of every bias on top (2.0 in the FCN and DeepLab
    Caffe solvers). The schedule scales every group by the same factor, so the ratios hold.
    """

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    lr_mult: dict[str, float] = Field(default_factory=dict)  # parameter-name prefix or glob -> multiplier
    bias_lr_mult: float = Field(1.0, gt=0)  # extra multiplier for biases (Caffe's lr_mult 2 on biases)

    @field_validator("lr_mult")
    @classmethod
    def _positive_mults(cls, value: dict[str, float]) -> dict[str, float]:
        for pattern, mult in value.items():
            if not pattern:
                raise ValueError("an empty pattern matches nothing; name a module prefix such as 'classifier'")
            if not mult > 0:
                raise ValueError(f"multiplier for {pattern!r} must be > 0, got {mult}")
        return value


class ScheduleConfig(_Strict):
    """Learning-rate policy over ``steps`` iterations or epochs (``unit``).

    One iteration is one optimiser step. With ``unit: epoch`` the lengths (``steps``,
    ``step_size``, ``milestones``, ``warmup_steps``) count epochs and ``gamma`` of the
    exponential policy is per epoch (FC-DenseNet: 0.995 per epoch, arXiv 1611.09326 sec. 5);
    ``seglab.engine.optim.resolve_schedule`` converts them to iterations from the loader's
    length at train time. ``scale`` rescales a published schedule to a smaller dataset or
    budget: it multiplies every length (``scale: 0.1`` runs DeepLab's 6000 iterations with a
    drop every 2000 as 600 with a drop every 200), leaving the shape of the curve unchanged.
    """

    policy: Literal["constant", "poly", "step", "multistep", "exponential"] = "poly"
    unit: Literal["iter", "epoch"] = "iter"  # what steps, step_size, milestones, warmup_steps count
    steps: int = Field(1000, ge=1)
    scale: float = Field(1.0, gt=0)  # multiplies steps, step_size, milestones and warmup_steps
    power: float = 0.9  # poly: lr * (1 - step / steps) ** power
    step_size: int = Field(1000, ge=1)  # step: multiply by gamma every step_size iterations
    gamma: float = Field(0.1, gt=0)  # step / multistep factor; exponential: factor per unit
    milestones: list[int] = Field(default_factory=list)  # multistep
    warmup_steps: int = Field(0, ge=0)  # linear warm-up from lr * warmup_factor
    warmup_factor: float = Field(0.001, gt=0, le=1)


class LossConfig(_Strict):
    """Loss settings that become builder arguments (seglab.losses.build_loss names the losses)."""

    name: str = "ce"  # ce, ce_sum (DeepLab's sum of cross-entropy), focal, dice, ce+dice
    class_weights: list[float] | None = None
    aux_weight: float | None = None
    focal_gamma: float | None = Field(None, ge=0)  # focal: (1 - p_t)^gamma, 2 in Lin et al.
    dice_smooth: float | None = Field(None, ge=0)  # dice, ce+dice: added to numerator and denominator
    dice_weight: float | None = Field(None, ge=0)  # ce+dice: CE + dice_weight * Dice

    def options(self) -> dict[str, float]:
        """The loss options that are set, keyed as build_loss takes them."""
        return {k: v for k in ("focal_gamma", "dice_smooth", "dice_weight") if (v := getattr(self, k)) is not None}

    @model_validator(mode="after")
    def _check_name_and_options(self) -> LossConfig:
        if self.name == "ce" and not self.options():
            return self
        from seglab.losses import loss_names, loss_options  # lazy: recipes must not import torch early

        if self.name not in loss_names():
            raise ValueError(f"loss.name {self.name!r} is unknown; expected one of {', '.join(loss_names())}")
        for option in self.options():
            if option not in loss_options(self.name):
                raise ValueError(
                    f"loss.{option} does not apply to loss.name {self.name!r} (it takes "
                    f"{', '.join(loss_options(self.name)) or 'no options'}); remove it or change the name"
                )
        return self


class TrainConfig(_Strict):
    """Loop settings."""

    seed: int = 0
    # Autocast precision (seglab.inference.fast.resolve_precision): auto is bf16 on CUDA and on CPUs with
    # AVX512-BF16 or AMX, fp32 elsewhere; fp16 (GPUs) adds loss scaling. Weights stay float32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True  # semantic models: NHWC activations, faster convolutions on CPU and GPU
    grad_clip: float | None = Field(None, gt=0)  # max gradient norm
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    eval_every: int | None = Field(None, ge=1)  # None: evaluate once at the end

    @model_validator(mode="before")
    @classmethod
    def _amp_was_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "amp" in data:
            raise ValueError("train.amp was replaced by train.precision: auto (bf16 where the hardware has it), "
                             "fp32, bf16 or fp16; remove amp")
        return data


class EvalConfig(_Strict):
    """Evaluation settings."""

    split: str | None = None  # default: data.val_split
    batch_size: int = Field(1, ge=1)
    max_items: int | None = Field(None, ge=1)  # evaluate the first N items of the split only (None: all)


# Columns of survey Tables 1 and 5 (shared/survey/tables.yaml keys) a recipe is checked against.
PUBLISHED_COLUMNS = ("optimizer", "batch", "lr", "momentum", "weight_decay", "lr_policy", "lr_note")
# Descriptive columns of survey Tables 2-4 and 6-8, transcribed once per row in its primary recipe.
DESCRIPTIVE_COLUMNS = ("year", "ref", "base_network", "preprocessing", "loss", "features", "results")


class PublishedConfig(_Strict):
    """Which survey row a published recipe reproduces (tests compare the two).

    ``row`` is the ``model:`` of a row of shared/survey/tables.yaml, ``table`` 1 (semantic) or
    5 (instance). ``deviations`` names each column where the recipe knowingly differs from the
    transcription (``optimizer``, ``lr``, ``momentum``, ``weight_decay``, ``batch``,
    ``lr_policy``, ``lr_note``) with the reason, e.g. the original paper contradicting the
    survey's cell.

    The row's descriptive columns (survey Tables 2/6: ``base_network``, ``preprocessing``,
    ``loss``; Tables 3/7: ``features``; Tables 4/8: ``results``, ``year``, ``ref``) are
    transcribed once, in the row's one ``primary: true`` recipe, as the survey prints them
    (``None``: the survey leaves the cell empty); ``seglab tables`` reads them from there.
    A variant that names the primary recipe as its ``base:`` inherits the block unchanged;
    the primary is the recipe whose own file says ``primary: true``
    (``seglab.tables.primary_recipes``).
    """

    row: str
    table: Literal[1, 5]
    batch_note: str = ""  # how the survey's batch cell maps to data.batch_size
    deviations: dict[str, str] = Field(default_factory=dict)  # column -> reason
    primary: bool = False  # this recipe carries the row's descriptive columns
    year: int | None = None  # Table 4/8 "Year"
    ref: int | None = None  # the survey's reference number, [78] for FCN
    base_network: list[str] | None = None  # Table 2/6 "Base Model"
    preprocessing: str | None = None  # Table 2/6 "Data pre-processing"
    loss: str | None = None  # Table 2/6 "Loss function"
    features: list[str] | None = None  # Table 3/7 "Important features"
    results: list[dict[str, Any]] | None = None  # Table 4/8: {dataset: ..., miou|ap|ap50|...: percent}

    @field_validator("deviations")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for column, reason in value.items():
            if column not in PUBLISHED_COLUMNS:
                raise ValueError(f"unknown column {column!r}; expected one of {', '.join(PUBLISHED_COLUMNS)}")
            if not str(reason).strip():
                raise ValueError(f"deviation {column!r} needs its reason (the paper section that decides)")
        return value

    @field_validator("results")
    @classmethod
    def _results_name_a_dataset(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, result in enumerate(value or []):
            if not isinstance(result.get("dataset"), str):
                raise ValueError(f"results[{i}] needs a 'dataset' (the survey's 'Used Dataset' cell)")
            for key, number in result.items():
                if key not in ("dataset", "note") and not isinstance(number, (int, float)):
                    raise ValueError(f"results[{i}].{key} must be a number (percent), got {number!r}")
        return value

    @model_validator(mode="after")
    def _descriptive_only_in_primary(self) -> PublishedConfig:
        given = [c for c in DESCRIPTIVE_COLUMNS if c in self.model_fields_set]
        if given and not self.primary:
            raise ValueError(
                f"{', '.join(given)} belong to the row's primary recipe; set primary: true here "
                f"or move them to the recipe that has it (one per row)"
            )
        if self.primary:
            missing = [c for c in ("year", "ref", "features", "results") if getattr(self, c) is None]
            if missing:
                raise ValueError(f"a primary recipe transcribes its row: {', '.join(missing)} missing")
        return self


class Recipe(_Strict):
    """A complete training recipe. See recipes/*.yaml for published ones."""

    description: str = ""
    source: str = ""  # the survey table / paper section the values come from
    published: PublishedConfig | None = None  # the survey row this recipe reproduces, if any
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
        if any(m <= 0 or m >= s.steps for m in s.milestones) or s.milestones != sorted(s.milestones):
            raise ValueError(
                f"schedule.milestones {s.milestones} must increase and lie between 0 and schedule.steps ({s.steps})"
            )
        return self
