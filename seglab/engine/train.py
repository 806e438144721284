"""The training loop: build from a recipe; autocast, backward, step, log, checkpoint. No hooks.

Runs single-process by default and as DistributedDataParallel under
``torchrun --nproc_per_node N -m seglab.cli.app train ...`` with no code change.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from seglab.data import build_dataset
from seglab.data.cache import DecodedCache, cache_decision
from seglab.data.patches import PatchSampler
from seglab.engine.checkpoint import (
    STATE_FILE,
    WEIGHT_FILE_KWARGS,
    capture_rng,
    lists_to_tensors,
    load_training_state,
    restore_rng,
    save_training_state,
    save_weights,
    state_mismatch,
    tensors_to_lists,
    unwrap,
)
from seglab.engine.distributed import DistInfo, barrier, init_distributed, past_deadline, shutdown_distributed
from seglab.engine.logging import TENSORBOARD_MISSING, MetricsLogger
from seglab.engine.machine import describe_machine
from seglab.engine.optim import build_optimizer, build_scheduler, resolve_schedule
from seglab.engine.progress import progress_bar
from seglab.engine.sampling import ResumableSampler, SeededTransforms
from seglab.engine.tasks import dataset_kwargs, task_of
from seglab.errors import ConfigError, DataError, Interrupted, TrainingError
from seglab.formatting import json_safe
from seglab.inference.fast import AUTOCAST_DTYPES, fast_runner, resolve_precision
from seglab.recipes import Recipe, model_kwargs
from seglab.registry import create_model

RUN_FILE = "run.json"  # each training session: when, how long, how many images/s, on what machine


@dataclass
class TrainResult:
    """What a finished run produced."""

    out_dir: Path
    steps: int
    metrics: dict[str, Any]  # final validation metrics (empty without a val split)
    seconds: float
    summary: str = ""  # the final metrics in one line ("val mIoU 0.8123, ..."), from the task adapter


@dataclass
class _Run:
    """Everything the loop needs, built once from the recipe (see ``_build``)."""

    recipe: Recipe
    task: Any  # the adapter of seglab.engine.tasks
    info: DistInfo
    loader: DataLoader
    seeded: SeededTransforms
    sampler: ResumableSampler
    val_loader: DataLoader | None
    model: nn.Module
    ddp_model: nn.Module
    optimizer: Any
    scheduler: Any
    scaler: Any
    precision: str  # fp32, bf16 or fp16: the autocast of forward passes (train.precision resolved)
    channels_last: bool  # semantic models and their inputs in NHWC
    fast_paths: str  # what was chosen and why, for the start-of-run line and run.json (``_fast_paths_line``)
    steps: int  # the schedule's length in iterations

    @property
    def dataset(self) -> Any:
        return self.seeded.dataset


def build_train_loader(
    recipe: Recipe, info: DistInfo, task: Any = None
) -> tuple[DataLoader, SeededTransforms, ResumableSampler]:
    """Loader over the training split with seeded augmentation and a resumable sampler."""
    task = task or task_of(recipe.model.name)
    d = recipe.data
    dataset = build_dataset(d.dataset, split=d.train_split, root=d.root, **dataset_kwargs(task.name, d.dataset, d.kwargs))
    unreadable = getattr(dataset, "unreadable", None)  # entries a folder dataset cannot read (it warned)
    if unreadable:
        path, problem = next(iter(unreadable.items()))
        raise DataError(f"{len(unreadable)} unreadable file(s) in {d.dataset}/{d.train_split}, e.g. {str(path)!r}: "
                        f"{problem}; `seglab data check` lists them all")
    if d.patches is not None:  # DeepMask's training patches (sec. 3.1), cut from the images by a wrapper
        dataset = PatchSampler(dataset, **d.patches.model_dump())
    cached, why = False, "data.cache applies to semantic data without patches"
    if task.name == "semantic" and d.patches is None:  # decode (and resize) each image once: seglab.data.cache
        cached, why = cache_decision(d.cache, dataset, d.resize, workers=d.workers)
    if cached:
        dataset = DecodedCache(dataset, d.resize)
        if d.workers > 0:
            dataset.fill()  # before the workers fork, so they share one filled cache
    transforms = task.train_transforms(d.model_copy(update={"resize": None}) if cached else d)  # cache resized
    seeded = SeededTransforms(dataset, transforms, seed=recipe.train.seed)
    seeded.note = f"decoded once and cached ({why})" if cached else f"decoded every epoch ({why})"
    if len(seeded) < d.batch_size * info.world_size:
        raise ConfigError(
            f"data.batch_size={d.batch_size} x {info.world_size} process(es) exceeds the "
            f"{len(seeded)} images of {d.dataset}/{d.train_split}; lower data.batch_size"
        )
    sampler = ResumableSampler(
        len(seeded), shuffle=True, seed=recipe.train.seed, rank=info.rank, world_size=info.world_size,
        batch_size=d.batch_size,
    )
    loader = DataLoader(
        seeded, batch_size=d.batch_size, sampler=sampler, num_workers=d.workers,
        collate_fn=task.collate, drop_last=True, pin_memory=info.device.type == "cuda",
        # Its own generator: creating an iterator must not draw from the global RNG, or a run
        # resumed mid-epoch would see different dropout masks than an uninterrupted one.
        generator=torch.Generator().manual_seed(recipe.train.seed),
    )
    return loader, seeded, sampler


def build_eval_loader(recipe: Recipe, info: DistInfo, split: str, task: Any = None) -> DataLoader:
    """Loader over an evaluation split at the original label resolution, sharded over processes."""
    task = task or task_of(recipe.model.name)
    d = recipe.data
    # Input normalisation among the augmentations (SegNet's LCN) applies at evaluation too.
    dataset = build_dataset(d.dataset, split=split, root=d.root, transforms=task.eval_transforms(d),
                            **dataset_kwargs(task.name, d.dataset, d.kwargs))
    count = len(dataset) if recipe.eval.max_items is None else min(len(dataset), recipe.eval.max_items)
    shard = Subset(dataset, range(info.rank, count, info.world_size))
    return DataLoader(shard, batch_size=recipe.eval.batch_size, num_workers=d.workers, collate_fn=task.collate,
                      generator=torch.Generator())  # evaluating must not draw from the global RNG either


def build_model(recipe: Recipe, num_classes: int, **extra: Any) -> nn.Module:
    """The recipe's model (builder kwargs from model.kwargs and the loss section, plus ``extra`` from the data)."""
    return create_model(recipe.model.name, num_classes=num_classes, **model_kwargs(recipe), **extra)


def train(
    recipe: Recipe,
    *,
    out_dir: str | Path,
    resume: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``recipe`` and write checkpoints, logs and final weights into ``out_dir``.

    Args:
        resume: continue from ``out_dir/last.pt`` (model, optimiser, scheduler, scaler, RNG and
            data position), ending with the same weights as an uninterrupted run.
        device: "cpu", "cuda"...; default CUDA when available.
        max_steps: stop after this many steps (the schedule still spans ``schedule.steps``); for
            smoke tests and for simulating an interruption.
        max_seconds: stop after the step that ends past this many seconds from the start of this call
            (setup included); like ``max_steps`` the schedule still spans ``schedule.steps``, and the run ends
            as a finished one would (evaluation, ``final/``, a ``last.pt`` that ``resume`` continues). Every
            process stops at the same step.
    """
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"--max-steps must be at least 1, got {max_steps} (a run of no steps would write an "
                          "untrained final/)")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"--max-minutes must be above 0, got {max_seconds / 60:g}")
    task = task_of(recipe.model.name)  # an unknown model fails here, before any data is read
    info = init_distributed(device)
    console = console or Console()
    out_dir = Path(out_dir)
    start_time = time.perf_counter()
    torch.manual_seed(recipe.train.seed)  # the same initial weights on every rank
    run = _build(recipe, task, info)
    step, best = _restore(run, out_dir) if resume else (0, -1.0)
    first_step, started = step, datetime.now(timezone.utc)
    total = run.steps if max_steps is None else min(max_steps, run.steps)
    logger = MetricsLogger(out_dir, enabled=info.is_main, append=resume)
    if info.is_main and not logger.tensorboard:
        console.print(TENSORBOARD_MISSING, highlight=False, soft_wrap=True, markup=False)
    if info.is_main:
        console.print(
            f"[bold]train[/] {recipe.model.name} on {recipe.data.dataset}/{recipe.data.train_split} "
            f"({len(run.seeded)} images, {len(run.loader)} steps/epoch) for {total} steps on {info.device}"
            + (f" x {info.world_size} processes" if info.distributed else "")
            + (f", resuming at step {step}" if resume else ""),
            soft_wrap=True,  # one line in logs, however narrow the terminal
        )
        console.print(f"  {run.fast_paths}", soft_wrap=True, highlight=False, markup=False)
    try:
        with progress_bar(console, enabled=progress and info.is_main) as bar:
            deadline = None if max_seconds is None else start_time + max_seconds
            step, metrics = _loop(run, out_dir, logger, bar, step=step, best=best, total=total, deadline=deadline)
    except KeyboardInterrupt:
        logger.close()
        raise Interrupted(_resume_hint(out_dir)) from None
    if info.is_main and step < total:
        console.print(f"  stopped at the time limit ({max_seconds / 60:g} min) after step {step} of {total}; "
                      f"`seglab train --resume` continues the schedule", highlight=False, markup=False,
                      soft_wrap=True)
    if info.is_main:
        save_weights(run.model, out_dir / "final", {**_weights_config(recipe, run.dataset, run.model), "step": step,
                                                    "metrics": _recorded(metrics)})
        _record_session(out_dir, info, recipe, started=started, seconds=time.perf_counter() - start_time,
                        steps=(first_step, step), fast_paths=run.fast_paths)
    logger.close()
    barrier()
    shutdown_distributed()
    return TrainResult(out_dir=out_dir, steps=step, metrics=metrics, seconds=time.perf_counter() - start_time,
                       summary=task.summary(metrics) if metrics else "")


def _build(recipe: Recipe, task: Any, info: DistInfo) -> _Run:
    """Loaders, model, optimiser, schedule and scaler, in the order that fixes the random init."""
    loader, seeded, sampler = build_train_loader(recipe, info, task)
    val_split = recipe.eval.split or recipe.data.val_split
    val_loader = build_eval_loader(recipe, info, val_split, task) if val_split else None
    dataset = seeded.dataset
    model = build_model(recipe, dataset.num_classes, **task.model_kwargs(dataset, recipe.model.kwargs)).to(info.device)
    _check_patches(recipe, model)
    optimizer = build_optimizer(recipe.optim, model)
    schedule = resolve_schedule(recipe.schedule, len(loader))  # epochs and schedule.scale -> iterations
    precision, why = resolve_precision(recipe.train.precision, info.device, field="train.precision")
    channels_last = recipe.train.channels_last and task.name == "semantic"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fast_paths = f"{_fast_paths_line(recipe, task, precision, why, channels_last)}; images {seeded.note}"
    return _Run(
        recipe=recipe, task=task, info=info, loader=loader, seeded=seeded, sampler=sampler, val_loader=val_loader,
        model=model, ddp_model=DistributedDataParallel(model) if info.distributed else model, optimizer=optimizer,
        scheduler=build_scheduler(schedule, optimizer),
        scaler=torch.amp.GradScaler(info.device.type, enabled=precision == "fp16"),  # bf16 needs no loss scaling
        precision=precision, channels_last=channels_last, fast_paths=fast_paths, steps=schedule.steps,
    )


def _check_patches(recipe: Recipe, model: nn.Module) -> None:
    """data.patches must cut the windows the model labels (its patch_size and context), else ConfigError."""
    patches = recipe.data.patches
    if patches is None:
        return
    for field in ("patch_size", "context"):
        ours = patches.size if field == "patch_size" else patches.context
        theirs = getattr(model, field, None)
        if theirs is None:
            raise ConfigError(f"data.patches is set but {recipe.model.name} does not train on patches; remove it")
        if theirs != ours:
            key = "size" if field == "patch_size" else field
            raise ConfigError(f"data.patches.{key} is {ours} but {recipe.model.name} has {field} {theirs}; set them "
                              f"equal (model.kwargs.{field})")


def _restore(run: _Run, out_dir: Path) -> tuple[int, float]:
    """Load ``last.pt`` into the run; returns (step, best metric so far).

    Raises:
        ConfigError: in one line, when last.pt was written by another recipe or model, or does not fit.
    """
    path = out_dir / STATE_FILE
    state = load_training_state(path)
    _check_same_run(path, state.get("run"), _run_identity(run.recipe, run.dataset))
    mismatch = state_mismatch({k: tuple(v.shape) for k, v in run.model.state_dict().items()},
                              {k: tuple(v.shape) for k, v in state["model"].items() if isinstance(v, torch.Tensor)})
    if mismatch:
        raise ConfigError(f"{path} does not fit the model of this run ({run.recipe.model.name}): {mismatch}; resume "
                          "with the recipe that wrote it, or choose another --out")
    run.model.load_state_dict(state["model"])
    for name in ("optimizer", "scheduler", "scaler"):
        try:
            getattr(run, name).load_state_dict(state[name])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise ConfigError(f"{path}: its {name} state does not fit this run's (optim/schedule changed?): "
                              f"{' '.join(str(exc).split())[:150]}") from None
    rank = run.info.rank
    restore_rng(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    return state["step"], state["best"]


def _loop(run: _Run, out_dir: Path, logger: MetricsLogger, bar: Any, *, step: int, best: float,
          total: int, deadline: float | None = None) -> tuple[int, dict[str, Any]]:
    """Steps until ``total``, or the first step that ends past ``deadline`` (``time.perf_counter``): optimise,
    log, evaluate (keeping ``best/``), checkpoint. Returns (step, metrics)."""
    recipe, info = run.recipe, run.info
    config = _weights_config(recipe, run.dataset, run.model)
    per_epoch = len(run.loader)  # batches per rank and epoch (drop_last)
    run.sampler.set_epoch(0)
    run.ddp_model.train()
    metrics: dict[str, Any] = {}
    progress_task = bar.add_task("training", total=total, completed=step)
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        run.sampler.set_epoch(epoch, skip_batches=in_epoch)
        run.seeded.epoch = epoch
        for images, targets in run.loader:
            images, targets = run.task.to_device(images, targets, info.device)
            if run.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            losses = _optimizer_step(run.ddp_model, run.model, images, targets, run.optimizer, run.scheduler,
                                     run.scaler, recipe=recipe, device=info.device, precision=run.precision,
                                     step=step)
            step += 1
            if deadline is not None and step < total and past_deadline(deadline):
                total = step  # the last step: evaluate, checkpoint and log as at the schedule's end
            loss = sum(losses.values())
            bar.update(progress_task, completed=step, description=f"training loss {loss:.4f}")
            if step % recipe.train.log_every == 0 or step == total:
                logger.log("train", step, {"loss": loss, **losses, "lr": run.scheduler.get_last_lr()[0]})
            eval_due = recipe.train.eval_every is not None and step % recipe.train.eval_every == 0
            if run.val_loader is not None and (eval_due or step == total):
                items = len(run.val_loader.dataset)
                evaluating = bar.add_task(f"evaluating {items} images", total=items)
                metrics = run.task.evaluate(_eval_model(run), run.val_loader, dataset=run.dataset,
                                            device=info.device, input_size=recipe.data.resize,
                                            progress=lambda n: bar.advance(evaluating, n))
                run.ddp_model.train()
                bar.remove_task(evaluating)
                logger.log("val", step, _scalars(metrics))
                if info.is_main and metrics[run.task.best_metric] > best:
                    best = metrics[run.task.best_metric]
                    save_weights(run.model, out_dir / "best", {**config, "step": step, "metrics": _recorded(metrics)})
            if step % recipe.train.checkpoint_every == 0 or step == total:
                _checkpoint(out_dir, info, run.model, run.optimizer, run.scheduler, run.scaler, step, best,
                            recipe=recipe, dataset=run.dataset)
            if step >= total:
                break
    return step, metrics


def _fast_paths_line(recipe: Recipe, task: Any, precision: str, why: str | None, channels_last: bool) -> str:
    """``precision bf16 (train.precision auto), channels_last``; with auto's reason ``why`` where it chose fp32."""
    setting = recipe.train.precision
    chosen = f"precision {precision}"
    if setting != precision:
        chosen += f" (train.precision {setting}" + (f": {why})" if why else ")")
    if channels_last:
        return f"{chosen}, channels_last"
    return f"{chosen}, contiguous" + (" (train.channels_last false)" if task.name == "semantic" else "")


def _eval_model(run: _Run) -> nn.Module:
    """What evaluates mid-run: a semantic model through the inference fast paths at the run's precision
    (a copy with batch norms folded, as ``seglab eval`` runs it), other tasks the model itself."""
    if run.task.name != "semantic":
        return run.model
    runner, _ = fast_runner(run.model, {"input_size": run.recipe.data.resize}, device=run.info.device,
                            precision=run.precision)
    return runner


def _optimizer_step(
    ddp_model: nn.Module, model: nn.Module, images: Any, targets: Any, optimizer: Any,
    scheduler: Any, scaler: Any, *, recipe: Recipe, device: torch.device, precision: str, step: int,
) -> dict[str, float]:
    """Forward under autocast, stop on a non-finite loss, backward, clip, step; returns the loss terms."""
    dtype = AUTOCAST_DTYPES.get(precision)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        losses = ddp_model(images, targets)
    loss = sum(losses.values())
    if not torch.isfinite(loss):
        raise TrainingError(
            f"non-finite loss at step {step}: "
            + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            + "; lower optim.lr or set train.grad_clip"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if recipe.train.grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), recipe.train.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return {k: v.item() for k, v in losses.items()}


def _checkpoint(out_dir: Path, info: DistInfo, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                step: int, best: float, *, recipe: Recipe, dataset: Any) -> None:
    """Save everything resume needs; RNG states are gathered from every rank."""
    rng = [capture_rng()]
    if info.distributed:
        # Gathered as plain lists: all_gather_object's unpickling of tensors fails in torch 2.14.
        gathered: list[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, tensors_to_lists(rng[0]))
        rng = [lists_to_tensors(state) for state in gathered]
    if info.is_main:
        save_training_state(out_dir / STATE_FILE, {
            "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "step": step, "best": best, "rng": rng, "run": json.dumps(_run_identity(recipe, dataset)),
        })
    barrier()




def _weights_config(recipe: Recipe, dataset: Any, model: nn.Module) -> dict[str, Any]:
    """What config.json records beside the weights: enough to rebuild, predict and colour.

    The builder arguments omit the weight files the run started from (the checkpoint holds every
    weight, and the files may be gone) and add what those files decided about the architecture
    (``model.rebuild_kwargs``, e.g. Mask R-CNN's frozen batch norm).
    """
    kwargs = {k: v for k, v in model_kwargs(recipe).items() if k not in WEIGHT_FILE_KWARGS}
    return {
        "model": recipe.model.name,
        "num_classes": dataset.num_classes,
        "model_kwargs": {**kwargs, **getattr(unwrap(model), "rebuild_kwargs", {})},
        "classes": list(dataset.classes),
        "palette": [list(c) for c in dataset.palette],
        # raw label value -> class id, so `seglab eval --images --masks` reads files of this encoding
        "label_map": {str(k): v for k, v in dataset.label_map.items()} if dataset.label_map else None,
        "dataset": recipe.data.dataset,
        "task": task_of(recipe.model.name).name,
        # contiguous label -> the dataset's category id (COCO's 1..90), so results map back
        "category_ids": list(dataset.category_ids) if getattr(dataset, "category_ids", None) is not None else None,
        "thing_classes": [int(c) for c in dataset.thing_classes] if getattr(dataset, "thing_classes", None) else None,
        "input_size": list(recipe.data.resize) if recipe.data.resize else None,
        "recipe": recipe.model_dump(mode="json"),
    }


def _record_session(out_dir: Path, info: DistInfo, recipe: Recipe, *, started: datetime, seconds: float,
                    steps: tuple[int, int], fast_paths: str = "") -> None:
    """Append this session (time, steps, images/s) and the machine to ``run.json``, for ``seglab report``."""
    path = out_dir / RUN_FILE
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        record = {}  # an unreadable record of earlier sessions must not fail a finished run
    images = (steps[1] - steps[0]) * recipe.data.batch_size * info.world_size
    session = {"started": started.isoformat(timespec="seconds"),
               "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 2),
               "steps": list(steps), "images_per_s": round(images / seconds, 3) if seconds > 0 else None,
               "device": str(info.device), "processes": info.world_size, "machine": describe_machine(info.device),
               "fast_paths": fast_paths}
    record["sessions"] = [*record.get("sessions", []), session]
    path.write_text(json.dumps(json_safe(record), indent=2))


def _run_identity(recipe: Recipe, dataset: Any) -> dict[str, Any]:
    """What makes a last.pt belong to a run: recipe description, model, its arguments and the data."""
    kwargs = {k: v for k, v in model_kwargs(recipe).items() if k not in WEIGHT_FILE_KWARGS}
    return json_safe({"recipe": recipe.description, "model": recipe.model.name, "model_kwargs": kwargs,
                      "dataset": recipe.data.dataset, "num_classes": dataset.num_classes})


def _check_same_run(path: Path, recorded: str | None, ours: dict[str, Any]) -> None:
    """ConfigError when ``path`` was written by another run (states from before this record are trusted)."""
    if recorded is None:
        return
    theirs = json.loads(recorded)
    if theirs == ours:
        return
    def who(run: dict[str, Any]) -> str:
        return (f"recipe {run['recipe']!r} with model {run['model']} ({run['num_classes']} classes of "
                f"{run['dataset']}, model.kwargs {run['model_kwargs']})")
    raise ConfigError(f"{path} was written by {who(theirs)}; this run is {who(ours)}: resume with the same recipe, "
                      "or choose another --out")


def _resume_hint(out_dir: Path) -> str:
    """Where an interrupted run's resumable state is, and the command that continues it."""
    path = out_dir / STATE_FILE
    if not path.is_file():
        return f"no checkpoint was written yet (train.checkpoint_every); nothing to resume in {out_dir}"
    step = torch.load(path, map_location="cpu", weights_only=True)["step"]
    return f"the resumable state is {path} (step {step}); continue with the same command and --resume"


def _recorded(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics config.json keeps: JSON-safe, without bulky entries such as detections."""
    return json_safe({k: v for k, v in metrics.items() if k != "results"})


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
