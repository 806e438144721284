"""`seglab eval`: metrics of a checkpoint on a dataset split or on a folder of images and masks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from seglab.cli.common import OutputFormat, console, err_console, json_safe, render_rows
from seglab.cli.data import OPTION_HELP, dataset_options
from seglab.cli.tiling import (Compile, Fast, Overlap, Precision, Scale, Tile, Tta, TtaScales, check_fast_flags,
                               semantic_inference)
from seglab.engine.progress import progress_bar
from seglab.errors import ConfigError


def eval_checkpoint(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train` (e.g. runs/x/final)"),
    dataset: str = typer.Option(None, help="dataset name (default: the one it was trained on)"),
    split: str = typer.Option("val", help="split to evaluate"),
    images: Path = typer.Option(None, help="folder of images (with --masks) instead of a dataset (semantic)"),
    masks: Path = typer.Option(None, help="folder of index masks paired with --images by file name (semantic)"),
    options: list[str] = typer.Option(None, "--option", "-O", help=OPTION_HELP),
    results: Path = typer.Option(Path("coco_results.json"), help="instance models: where to write the detections"),
    save_confusion: Path = typer.Option(None, help="semantic models: write the confusion matrix to this file: .csv, "
                                        ".json, .npy, or a heat map (.png, .svg, .pdf)"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    max_items: int = typer.Option(None, help="evaluate only the first N items"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    tile: Tile = None,
    overlap: Overlap = None,
    scale: Scale = None,
    tta: Tta = False,
    tta_scales: TtaScales = None,
    precision: Precision = "auto",
    compile_model: Compile = False,
    fast: Fast = True,
) -> None:
    """Evaluate a checkpoint: mIoU and per-class IoU (semantic), COCO box and mask AP (instance), or panoptic
    quality PQ / SQ / RQ for all classes, things and stuff, and per class (panoptic)."""
    import torch  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from torch.utils.data import DataLoader

    from seglab.engine.checkpoint import load_model
    from seglab.engine.device import resolve_device
    from seglab.engine.tasks import task_of_checkpoint
    from seglab.inference.fast import fast_runner
    from seglab.inference.predictor import preprocessing
    from seglab.inference.sliding_window import check_tile_fits

    model, config = load_model(checkpoint, device=device)
    task = task_of_checkpoint(config)
    inference = semantic_inference(task.name, tile=tile, overlap=overlap, scale=scale, tta=tta, tta_scales=tta_scales)
    check_tile_fits(inference, model, name=config["model"])
    tiling = {} if inference is None else {"inference": inference}  # default: exactly the path training evaluates
    check_fast_flags(task.name, precision=precision, compile=compile_model, fast=fast)
    if task.name in ("semantic", "instance"):  # panoptic models run in fp32 as loaded
        model, paths = fast_runner(model, config, device=resolve_device(device), precision=precision,
                                   compile=compile_model, enabled=fast, task=task.name)
        if fmt is OutputFormat.table:
            err_console.print(f"runs with: {paths.describe()}", highlight=False, markup=False)
    if save_confusion is not None:
        _check_confusion_path(save_confusion, task.name)
    data = _dataset(config, task.name, dataset=dataset, split=split, images=images, masks=masks, data_root=data_root,
                    options=dataset_options(options))
    data.transforms = preprocessing(config)  # the input normalisation it was trained with (e.g. LCN), or None
    subset = data if max_items is None else torch.utils.data.Subset(data, range(min(max_items, len(data))))
    loader = DataLoader(subset, batch_size=1, collate_fn=task.collate)
    input_size = tuple(config["input_size"]) if config.get("input_size") else None
    with progress_bar(console, enabled=not quiet and fmt is OutputFormat.table) as bar:
        progress_task = bar.add_task(f"eval {len(subset)} images", total=len(subset))
        metrics = task.evaluate(model, loader, dataset=data, device=resolve_device(device), input_size=input_size,
                                progress=lambda n: bar.advance(progress_task, n), keep_results=True, **tiling)
    if "results" in metrics:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(metrics.pop("results")))
        err_console.print(f"detections (COCO results format): {results}", highlight=False)
    if save_confusion is not None:
        from seglab.report.confusion import save_confusion as write_confusion  # noqa: PLC0415

        classes = list(config.get("classes") or data.classes)
        written = write_confusion(save_confusion, metrics["confusion"], classes)
        err_console.print(f"confusion matrix (rows: ground truth, columns: prediction): {written}", highlight=False)
    _RENDER[task.name](metrics, config, data, fmt, len(subset))


def _check_confusion_path(path: Path, task: str) -> None:
    """Refuse a bad --save-confusion before evaluating (minutes), not after."""
    from seglab.report.confusion import FORMATS  # noqa: PLC0415

    if task != "semantic":
        raise ConfigError(f"--save-confusion applies to semantic models; this checkpoint is a {task} model")
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--save-confusion {str(path)!r}: unknown suffix {path.suffix or '(none)'!r}; use one of "
                          + ", ".join(FORMATS))
    if path.is_dir():
        raise ConfigError(f"--save-confusion {str(path)!r} is a folder; pass a file name such as confusion.png")


def _dataset(config: dict[str, Any], task: str, *, dataset: str | None, split: str, images: Path | None,
             masks: Path | None, data_root: Path | None, options: dict[str, Any]) -> Any:
    from seglab.data import FolderDataset, build_dataset  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.engine.tasks import dataset_kwargs

    if images is not None or masks is not None:
        if task == "instance":
            raise ConfigError("--images/--masks pair index masks for semantic models; for instance models pass a "
                              "COCO JSON: --dataset coco -O json_file=annotations.json -O image_dir=images")
        if task == "panoptic":
            raise ConfigError("--images/--masks pair index masks for semantic models; for panoptic models pass a COCO "
                              "panoptic folder: --dataset coco_panoptic -O folder=DIR -O json_file=panoptic.json "
                              "-O panoptic_dir=panoptic -O image_dir=images")
        if images is None or masks is None:
            raise ConfigError("--images and --masks go together (a folder of images and one of index masks)")
        label_map = {int(k): v for k, v in config["label_map"].items()} if config.get("label_map") else None
        return FolderDataset(images, masks, classes=config["classes"], label_map=label_map,
                             palette=[tuple(c) for c in config["palette"]], split=str(images))
    name = dataset or config.get("dataset")
    if not name:
        raise ConfigError("the checkpoint does not say which dataset it was trained on; pass --dataset")
    kwargs = (config.get("recipe") or {}).get("data", {}).get("kwargs", {}) if name == config.get("dataset") else {}
    data = build_dataset(name, split=split, root=data_root, **dataset_kwargs(task, name, {**kwargs, **options}))
    if data.num_classes != config["num_classes"]:
        raise ConfigError(
            f"{name} has {data.num_classes} classes but the checkpoint predicts {config['num_classes']}"
        )
    return data


def _render_semantic(metrics: dict[str, Any], config: dict[str, Any], data: Any, fmt: OutputFormat,
                     count: int) -> None:
    classes = list(config.get("classes") or data.classes)
    if fmt is OutputFormat.json:
        print(json.dumps(json_safe({**metrics, "classes": classes, "images": count}), indent=2))
        return
    summary = {k: metrics[k] for k in ("miou", "pixel_acc", "mean_acc", "fwiou", "dice")}
    per_class = [{"class": c, "iou": iou} for c, iou in zip(classes, metrics["per_class_iou"])]
    if fmt is OutputFormat.csv:
        render_rows([{"class": "(all)", "iou": summary["miou"]}, *per_class], title="", fmt=fmt)
        return
    render_rows([summary], title=f"{config['model']} on {count} images", fmt=fmt)
    render_rows(per_class, title="per-class IoU", fmt=fmt)


def _render_instance(metrics: dict[str, Any], config: dict[str, Any], data: Any, fmt: OutputFormat,
                     count: int) -> None:
    if fmt is OutputFormat.json:
        print(json.dumps(json_safe({**metrics, "images": count}), indent=2))
        return
    keys = ("ap", "ap50", "ap75", "aps", "apm", "apl", "ar100")
    if "segm_ar1000" in metrics:  # class-agnostic proposals (ModelSpec.outputs): recall at 10 / 100 / 1000
        keys = ("ar10", "ar100", "ar1000", "ap", "ap50", "ap75")
    summary = [{"type": t, **{k: metrics[f"{t}_{k}"] for k in keys}} for t in ("segm", "bbox")]
    per_class = [{"class": name, "mask_ap": ap, "box_ap": metrics["per_class"]["bbox"].get(name)}
                 for name, ap in metrics["per_class"]["segm"].items()]
    if fmt is OutputFormat.csv:
        render_rows(summary, title="", fmt=fmt)
        return
    if "segm_ar1000" in metrics:
        render_rows(summary, title=f"{config['model']} on {count} images: class-agnostic proposal recall "
                                   "AR@10 / 100 / 1000 (IoU .50:.95), and AP", fmt=fmt)
    else:
        render_rows(summary, title=f"{config['model']} on {count} images: COCO AP (IoU .50:.95), AP50, AP75, "
                                   "small / medium / large, AR@100", fmt=fmt)
        render_rows(per_class, title="per-class AP", fmt=fmt)
    console.print(metrics["table"], highlight=False)


def _render_panoptic(metrics: dict[str, Any], config: dict[str, Any], data: Any, fmt: OutputFormat,
                     count: int) -> None:
    if fmt is OutputFormat.json:
        print(json.dumps(json_safe({**metrics, "images": count}), indent=2))
        return
    summary = [{"": name, "pq": metrics[f"pq{suffix}"], "sq": metrics[f"sq{suffix}"], "rq": metrics[f"rq{suffix}"],
                "classes": metrics[f"n{suffix}"]} for name, suffix in (("All", ""), ("Things", "_things"),
                                                                       ("Stuff", "_stuff"))]
    per_class = [{"class": name, **{k: v[k] for k in ("pq", "sq", "rq", "tp", "fp", "fn")},
                  "kind": "thing" if v["isthing"] else "stuff"} for name, v in metrics["per_class"].items()]
    if fmt is OutputFormat.csv:
        render_rows(summary, title="", fmt=fmt)
        return
    render_rows(summary, title=f"panoptic quality, {count} images", fmt=fmt)  # short: rich wraps titles at the table width
    render_rows(per_class, title="per-class PQ (classes seen in ground truth or predictions)", fmt=fmt)


_RENDER = {"semantic": _render_semantic, "instance": _render_instance, "panoptic": _render_panoptic}
