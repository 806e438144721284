"""`seglab eval`: metrics of a checkpoint on a dataset split or on a folder of images and masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import typer
from torch.utils.data import DataLoader

from seglab.cli.common import OutputFormat, console, json_safe, render_rows
from seglab.data import FolderDataset, build_dataset, collate_semantic
from seglab.inference.predictor import preprocessing
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import evaluate
from seglab.engine.progress import progress_bar
from seglab.errors import ConfigError


def eval_checkpoint(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train` (e.g. runs/x/final)"),
    dataset: str = typer.Option(None, help="dataset name (default: the one it was trained on)"),
    split: str = typer.Option("val", help="split to evaluate"),
    images: Path = typer.Option(None, help="folder of images (with --masks) instead of a dataset"),
    masks: Path = typer.Option(None, help="folder of index masks paired with --images by file name"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Evaluate a checkpoint: mIoU, pixel accuracy, mean accuracy, fwIoU, Dice and per-class IoU."""
    model, config = load_model(checkpoint, device=device)
    data = _dataset(config, dataset=dataset, split=split, images=images, masks=masks, data_root=data_root)
    data.transforms = preprocessing(config)  # the input normalisation it was trained with (e.g. LCN), or None
    loader = DataLoader(data, batch_size=1, collate_fn=collate_semantic)
    input_size = tuple(config["input_size"]) if config.get("input_size") else None
    with progress_bar(console, enabled=not quiet and fmt is OutputFormat.table) as bar:
        task = bar.add_task(f"eval {len(data)} images", total=len(data))
        metrics = evaluate(model, loader, num_classes=config["num_classes"], device=torch.device(device),
                           input_size=input_size, progress=lambda n: bar.advance(task, n))
    _render(metrics, config, data, fmt)


def _dataset(config: dict[str, Any], *, dataset: str | None, split: str, images: Path | None, masks: Path | None,
             data_root: Path | None) -> Any:
    if images is not None or masks is not None:
        if images is None or masks is None:
            raise ConfigError("--images and --masks go together (a folder of images and one of index masks)")
        label_map = {int(k): v for k, v in config["label_map"].items()} if config.get("label_map") else None
        return FolderDataset(images, masks, classes=config["classes"], label_map=label_map,
                             palette=[tuple(c) for c in config["palette"]], split=str(images))
    name = dataset or config.get("dataset")
    if not name:
        raise ConfigError("the checkpoint does not say which dataset it was trained on; pass --dataset")
    kwargs = (config.get("recipe") or {}).get("data", {}).get("kwargs", {}) if name == config.get("dataset") else {}
    data = build_dataset(name, split=split, root=data_root, **kwargs)
    if data.num_classes != config["num_classes"]:
        raise ConfigError(
            f"{name} has {data.num_classes} classes but the checkpoint predicts {config['num_classes']}"
        )
    return data


def _render(metrics: dict[str, Any], config: dict[str, Any], data: Any, fmt: OutputFormat) -> None:
    classes = list(config.get("classes") or data.classes)
    if fmt is OutputFormat.json:
        import json

        print(json.dumps(json_safe({**metrics, "classes": classes, "images": len(data)}), indent=2))
        return
    summary = {k: metrics[k] for k in ("miou", "pixel_acc", "mean_acc", "fwiou", "dice")}
    per_class = [{"class": c, "iou": iou} for c, iou in zip(classes, metrics["per_class_iou"])]
    if fmt is OutputFormat.csv:
        render_rows([{"class": "(all)", "iou": summary["miou"]}, *per_class], title="", fmt=fmt)
        return
    render_rows([summary], title=f"{config['model']} on {len(data)} images", fmt=fmt)
    render_rows(per_class, title="per-class IoU", fmt=fmt)
