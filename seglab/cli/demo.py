"""`seglab demo`: the main job in one command, on built-in synthetic data (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from seglab.cli.common import OutputFormat, console, render_rows
from seglab.recipes import Recipe, load_recipe

DEMO_RECIPES = {"semantic": "unet_synthetic_cpu", "instance": "mask_rcnn_synthetic_cpu",
                "panoptic": "panoptic_fpn_synthetic_cpu"}


def demo(
    task: str = typer.Option("semantic", help="semantic (U-Net, ~1 min), instance (Mask R-CNN) or panoptic "
                                              "(Panoptic FPN), a few minutes each"),
    out: Path = typer.Option(None, "--out", "-o", help="output directory (default runs/demo, runs/demo_instance or runs/demo_panoptic)"),
    steps: int = typer.Option(None, help="training steps (default: the recipe's)"),
    device: str = typer.Option(None, help="cpu, cuda (default: cuda when available)"),
) -> None:
    """Train a small model on synthetic shapes, evaluate it, write overlays of a few validation images and the
    run's HTML report (OUT/report.html)."""
    from seglab.engine.train import train as run_training  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.inference.instance_predictor import InstancePredictor
    from seglab.inference.panoptic_predictor import PanopticPredictor
    from seglab.inference.predictor import Predictor

    if task not in DEMO_RECIPES:
        raise typer.BadParameter(f"--task must be one of {', '.join(DEMO_RECIPES)}, got {task!r}")
    out = out or Path("runs/demo" if task == "semantic" else f"runs/demo_{task}")
    name = DEMO_RECIPES[task]
    recipe = load_recipe(name, overrides=[f"schedule.steps={steps}"] if steps else [])
    console.print(f"[bold]seglab demo[/]: recipe {name} ({recipe.description})", soft_wrap=True)
    result = run_training(recipe, out_dir=out, device=device, console=console)
    metrics = result.metrics
    samples = out / "val_images"  # a few validation images as PNG files, so predict reads real files
    _write_val_images(recipe, samples, task, count=4)
    if task == "semantic":
        render_rows([{"class": c, "iou": v} for c, v in zip(_classes(recipe, task), metrics["per_class_iou"])],
                    title="per-class IoU (val)", fmt=OutputFormat.table)
        written = [w.overlay for w in Predictor(out / "final", device="cpu").predict_files(samples, out / "overlays")]
    elif task == "panoptic":
        render_rows([{"": name, "pq": metrics[f"pq{k}"], "sq": metrics[f"sq{k}"], "rq": metrics[f"rq{k}"]}
                     for name, k in (("All", ""), ("Things", "_things"), ("Stuff", "_stuff"))],
                    title="panoptic quality (val)", fmt=OutputFormat.table)
        written = [w.overlay for w in PanopticPredictor(out / "final", device="cpu").predict_files(samples,
                                                                                                  out / "overlays")]
    else:
        render_rows([{"class": c, "mask_ap": ap, "box_ap": metrics["per_class"]["bbox"].get(c)}
                     for c, ap in metrics["per_class"]["segm"].items()], title="per-class AP (val)",
                    fmt=OutputFormat.table)
        predictor = InstancePredictor(out / "final", device="cpu")
        written = [w.overlay for w in predictor.predict_files(samples, out / "overlays")]
    from seglab.report import write_report  # noqa: PLC0415

    report = write_report(out, samples=4)
    console.print(f"trained {result.steps} steps in {result.seconds:.0f} s")
    console.print(f"{result.summary} on {recipe.data.dataset}/{recipe.data.val_split}")
    console.print(f"overlays: {out / 'overlays'} (e.g. {written[0]})")
    console.print(f"report:   {report} (curves, per-class scores, samples, timings; open it in a browser)",
                  soft_wrap=True)
    console.print(f"weights:  {out / 'final'}   next: seglab eval {out / 'final'}")


def _dataset(recipe: Recipe, task: str, split: str) -> Any:
    from seglab.data import build_dataset  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.engine.tasks import dataset_kwargs

    return build_dataset(recipe.data.dataset, split=split, **dataset_kwargs(task, recipe.data.dataset,
                                                                          recipe.data.kwargs))


def _classes(recipe: Recipe, task: str) -> list[str]:
    return list(_dataset(recipe, task, "val").classes)


def _write_val_images(recipe: Recipe, folder: Path, task: str, *, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    data = _dataset(recipe, task, recipe.data.val_split)
    for i in range(min(count, len(data))):
        image, _ = data[i]
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"val_{i:03d}.png")
