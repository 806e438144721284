"""The training loop: build from a recipe; autocast, backward, step, log, checkpoint. No hooks.

Runs single-process by default and as DistributedDataParallel under
``torchrun --nproc_per_node N -m seglab.cli.app train ...`` with no code change.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from seglab.data import build_dataset, collate_semantic, eval_transforms, train_transforms
from seglab.engine.checkpoint import (
    STATE_FILE,
    capture_rng,
    load_training_state,
    restore_rng,
    save_training_state,
    save_weights,
    unwrap,
)
from seglab.engine.distributed import DistInfo, barrier, init_distributed, shutdown_distributed
from seglab.engine.evaluate import evaluate
from seglab.engine.logging import MetricsLogger
from seglab.engine.optim import build_optimizer, build_scheduler, resolve_schedule
from seglab.engine.progress import progress_bar
from seglab.engine.sampling import ResumableSampler, SeededTransforms
from seglab.errors import ConfigError, TrainingError
from seglab.recipes import Recipe, model_kwargs
from seglab.registry import create_model, model_spec


@dataclass
class TrainResult:
    """What a finished run produced."""

    out_dir: Path
    steps: int
    metrics: dict[str, Any]  # final validation metrics (empty without a val split)
    seconds: float


def build_train_loader(recipe: Recipe, info: DistInfo) -> tuple[DataLoader, SeededTransforms, ResumableSampler]:
    """Loader over the training split with seeded augmentation and a resumable sampler."""
    d = recipe.data
    dataset = build_dataset(d.dataset, split=d.train_split, root=d.root, **d.kwargs)
    transforms = train_transforms(
        base_size=d.resize, crop_size=d.crop_size, scale_range=d.scale_range, hflip=d.hflip, augment=d.augment
    )
    seeded = SeededTransforms(dataset, transforms, seed=recipe.train.seed)
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
        collate_fn=collate_semantic, drop_last=True, pin_memory=info.device.type == "cuda",
        # Its own generator: creating an iterator must not draw from the global RNG, or a run
        # resumed mid-epoch would see different dropout masks than an uninterrupted one.
        generator=torch.Generator().manual_seed(recipe.train.seed),
    )
    return loader, seeded, sampler


def build_eval_loader(recipe: Recipe, info: DistInfo, split: str) -> DataLoader:
    """Loader over an evaluation split at the original label resolution, sharded over processes."""
    d = recipe.data
    # Input normalisation among the augmentations (SegNet's LCN) applies at evaluation too.
    dataset = build_dataset(d.dataset, split=split, root=d.root, transforms=eval_transforms(augment=d.augment),
                            **d.kwargs)
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    return DataLoader(shard, batch_size=recipe.eval.batch_size, num_workers=d.workers, collate_fn=collate_semantic,
                      generator=torch.Generator())  # evaluating must not draw from the global RNG either


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's model (builder kwargs from model.kwargs and the loss section)."""
    return create_model(recipe.model.name, num_classes=num_classes, **model_kwargs(recipe))


def train(
    recipe: Recipe,
    *,
    out_dir: str | Path,
    resume: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
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
    """
    model_spec(recipe.model.name)  # an unknown model fails here, before any data is read
    info = init_distributed(device)
    console = console or Console()
    out_dir = Path(out_dir)
    start_time = time.perf_counter()
    torch.manual_seed(recipe.train.seed)  # the same initial weights on every rank

    loader, seeded, sampler = build_train_loader(recipe, info)
    base = seeded.dataset
    val_split = recipe.eval.split or recipe.data.val_split
    val_loader = build_eval_loader(recipe, info, val_split) if val_split else None
    model = build_model(recipe, base.num_classes).to(info.device)
    optimizer = build_optimizer(recipe.optim, model)
    schedule = resolve_schedule(recipe.schedule, len(loader))  # epochs and schedule.scale -> iterations
    scheduler = build_scheduler(schedule, optimizer)
    amp = recipe.train.amp and info.device.type == "cuda"
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp)
    ddp_model: nn.Module = DistributedDataParallel(model) if info.distributed else model

    step, best = 0, -1.0
    if resume:
        state = load_training_state(out_dir / STATE_FILE)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, best = state["step"], state["best"]
        restore_rng(state["rng"][info.rank] if info.rank < len(state["rng"]) else state["rng"][0])
    total = schedule.steps if max_steps is None else min(max_steps, schedule.steps)
    sampler.set_epoch(0)
    per_epoch = len(loader)  # batches per rank and epoch (drop_last)
    config = _weights_config(recipe, base)
    logger = MetricsLogger(out_dir, enabled=info.is_main, append=resume)
    if info.is_main:
        console.print(
            f"[bold]train[/] {recipe.model.name} on {recipe.data.dataset}/{recipe.data.train_split} "
            f"({len(seeded)} images, {per_epoch} steps/epoch) for {total} steps on {info.device}"
            + (f" x {info.world_size} processes" if info.distributed else "")
            + (f", resuming at step {step}" if resume else ""),
            soft_wrap=True,  # one line in logs, however narrow the terminal
        )

    ddp_model.train()
    metrics: dict[str, Any] = {}
    with progress_bar(console, enabled=progress and info.is_main) as bar:
        task = bar.add_task("training", total=total, completed=step)
        while step < total:
            epoch, in_epoch = divmod(step, per_epoch)
            sampler.set_epoch(epoch, skip_batches=in_epoch)
            seeded.epoch = epoch
            for images, targets in loader:
                losses = _optimizer_step(ddp_model, model, images, targets, optimizer, scheduler, scaler,
                                         recipe=recipe, device=info.device, amp=amp, step=step)
                step += 1
                loss = sum(losses.values())
                bar.update(task, completed=step, description=f"training loss {loss:.4f}")
                if step % recipe.train.log_every == 0 or step == total:
                    logger.log("train", step, {"loss": loss, **losses, "lr": scheduler.get_last_lr()[0]})
                eval_due = recipe.train.eval_every is not None and step % recipe.train.eval_every == 0
                if val_loader is not None and (eval_due or step == total):
                    metrics = evaluate(model, val_loader, num_classes=base.num_classes, device=info.device,
                                       input_size=recipe.data.resize)
                    logger.log("val", step, _scalars(metrics))
                    if info.is_main and metrics["miou"] > best:
                        best = metrics["miou"]
                        save_weights(model, out_dir / "best", {**config, "step": step, "metrics": metrics})
                if step % recipe.train.checkpoint_every == 0 or step == total:
                    _checkpoint(out_dir, info, model, optimizer, scheduler, scaler, step, best)
                if step >= total:
                    break

    if info.is_main:
        save_weights(model, out_dir / "final", {**config, "step": step, "metrics": metrics})
    logger.close()
    barrier()
    shutdown_distributed()
    return TrainResult(out_dir=out_dir, steps=step, metrics=metrics, seconds=time.perf_counter() - start_time)


def _optimizer_step(
    ddp_model: nn.Module, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, optimizer: Any,
    scheduler: Any, scaler: Any, *, recipe: Recipe, device: torch.device, amp: bool, step: int,
) -> dict[str, float]:
    """Forward under autocast, stop on a non-finite loss, backward, clip, step; returns the loss terms."""
    images = images.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    with torch.autocast(device.type, enabled=amp):
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
                step: int, best: float) -> None:
    """Save everything resume needs; RNG states are gathered from every rank."""
    rng = [capture_rng()]
    if info.distributed:
        # Gathered as plain lists: all_gather_object's unpickling of tensors fails in torch 2.14.
        gathered: list[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(gathered, _tensors_to_lists(rng[0]))
        rng = [_lists_to_tensors(state) for state in gathered]
    if info.is_main:
        save_training_state(out_dir / STATE_FILE, {
            "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "step": step, "best": best, "rng": rng,
        })
    barrier()


def _tensors_to_lists(value: Any) -> Any:
    """Replace tensors by {"tensor": values, "dtype": name}, recursively."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, dict):
        return {k: _tensors_to_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors_to_lists(v) for v in value)
    return value


def _lists_to_tensors(value: Any) -> Any:
    """Inverse of _tensors_to_lists."""
    if isinstance(value, dict) and set(value) == {"tensor", "dtype"}:
        return torch.tensor(value["tensor"], dtype=getattr(torch, value["dtype"]))
    if isinstance(value, dict):
        return {k: _lists_to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_lists_to_tensors(v) for v in value)
    return value


def _weights_config(recipe: Recipe, dataset: Any) -> dict[str, Any]:
    """What config.json records beside the weights: enough to rebuild, predict and colour."""
    return {
        "model": recipe.model.name,
        "num_classes": dataset.num_classes,
        "model_kwargs": model_kwargs(recipe),
        "classes": list(dataset.classes),
        "palette": [list(c) for c in dataset.palette],
        # raw label value -> class id, so `seglab eval --images --masks` reads files of this encoding
        "label_map": {str(k): v for k, v in dataset.label_map.items()} if dataset.label_map else None,
        "dataset": recipe.data.dataset,
        "input_size": list(recipe.data.resize) if recipe.data.resize else None,
        "recipe": recipe.model_dump(mode="json"),
    }


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
