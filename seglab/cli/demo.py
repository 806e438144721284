"""`seglab demo`: the main job in one command, on built-in synthetic data (no download)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import OutputFormat, console, render_rows
from seglab.data import build_dataset
from seglab.engine.train import train as run_training
from seglab.inference.predictor import Predictor
from seglab.recipes import load_recipe

DEMO_RECIPE = "unet_synthetic_cpu"


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="output directory"),
    steps: int = typer.Option(None, help="training steps (default: the recipe's)"),
    device: str = typer.Option(None, help="cpu, cuda (default: cuda when available)"),
) -> None:
    """Train a small U-Net on synthetic shapes (about a minute on 2 CPU cores), evaluate, write overlays."""
    overrides = [f"schedule.steps={steps}"] if steps else []
    recipe = load_recipe(DEMO_RECIPE, overrides=overrides)
    console.print(f"[bold]seglab demo[/]: recipe {DEMO_RECIPE} ({recipe.description})", soft_wrap=True)
    result = run_training(recipe, out_dir=out, device=device, console=console)
    metrics = result.metrics
    render_rows(
        [{"class": c, "iou": v} for c, v in zip(_classes(recipe), metrics["per_class_iou"])],
        title="per-class IoU (val)",
        fmt=OutputFormat.table,
    )
    # Overlays for a few validation images, written as PNG files first so predict reads real files.
    samples = out / "val_images"
    _write_val_images(recipe, samples, count=4)
    predictor = Predictor(out / "final", device="cpu")
    written = predictor.predict_files(samples, out / "overlays")
    console.print(f"trained {result.steps} steps in {result.seconds:.0f} s")
    console.print(f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_acc']:.4f} on "
                  f"{recipe.data.dataset}/{recipe.data.val_split}")
    console.print(f"overlays: {out / 'overlays'} (e.g. {written[0].overlay})")
    console.print(f"weights:  {out / 'final'}   next: seglab eval {out / 'final'}")


def _classes(recipe) -> list[str]:  # noqa: ANN001
    return list(build_dataset(recipe.data.dataset, split="val", **recipe.data.kwargs).classes)


def _write_val_images(recipe, folder: Path, *, count: int) -> None:  # noqa: ANN001
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    data = build_dataset(recipe.data.dataset, split=recipe.data.val_split, **recipe.data.kwargs)
    for i in range(min(count, len(data))):
        image, _ = data[i]
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"val_{i:03d}.png")
