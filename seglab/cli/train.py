"""`seglab train`: train a model with a recipe and `--set` overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.errors import ConfigError
from seglab.recipes import load_recipe


CPU_BUDGET = "_camvid_cpu_budget"  # the shared CPU budget of the *_camvid_cpu recipes


def own_data_overrides(images: Path | None, masks: Path | None, classes: str | None,
                       ignore: list[int] | None) -> list[str]:
    """The recipe overrides of --images/--masks/--classes/--ignore: a folder dataset, no validation split.

    Raises:
        ConfigError: --images without --masks or --classes (or the reverse), or an empty class list.
    """
    if images is None and masks is None:
        sets = []
    elif images is None or masks is None or not classes:
        raise ConfigError("--images, --masks and --classes go together: a folder of images, one of index masks "
                          "with the same file names (pixel value = class index), and the class names in that order")
    else:
        for flag, folder in (("--images", images), ("--masks", masks)):
            if not folder.is_dir():
                raise ConfigError(f"{flag} {str(folder)!r} is not a folder")
        sets = ["data.dataset=folder", f"data.kwargs.image_dir={json.dumps(str(images.resolve()))}",
                f"data.kwargs.mask_dir={json.dumps(str(masks.resolve()))}", "data.val_split=null"]
    if classes is not None:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not names:
            raise ConfigError("--classes is empty; give the class names in label order, e.g. --classes road,car,sky")
        sets.append(f"data.kwargs.classes={json.dumps(names)}")
    if ignore:
        sets.append(f"data.kwargs.ignore_values={json.dumps(list(ignore))}")
    return sets


def train(
    recipe: str = typer.Option(None, "--recipe", "-r", help="recipe name (see `seglab recipes`) or YAML path"),
    model: str = typer.Option(None, help="model name (overrides the recipe's model.name)"),
    dataset: str = typer.Option(None, help="dataset name (overrides the recipe's data.dataset)"),
    out: Path = typer.Option(Path("runs/train"), "--out", "-o", help="output directory"),
    overrides: list[str] = typer.Option(None, "--set", help="override a recipe field: --set optim.lr=0.005"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 (default: cuda when available)"),
    max_steps: int = typer.Option(None, help="stop after this many steps"),
    max_minutes: float = typer.Option(None, help="stop after the step that ends past this many minutes (setup "
                                                  "included); the run ends as a finished one, resumable"),
    eval_max_items: int = typer.Option(None, help="validate on the first N items only (a smoke run in seconds)"),
    images: Path = typer.Option(None, help="your own data: a folder of images (with --masks and --classes)"),
    masks: Path = typer.Option(None, help="your own data: index masks paired with --images by file name"),
    classes: str = typer.Option(None, help="class names in label order, comma-separated: road,car,sky"),
    ignore: list[int] = typer.Option(None, help="a mask value to ignore (void), repeatable: --ignore 255"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train a model; writes OUT/final and OUT/best (safetensors + config.json), OUT/last.pt and logs.

    Without --recipe, --model and --dataset (or --images, --masks and --classes for your own folders) train
    under the CPU budget on a CPU (200 steps of 4 images at 120x160, Adam; `seglab recipes` lists the
    published recipes), or under the schema's defaults on a GPU.
    """
    from seglab.engine.device import resolve_device  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.engine.train import train as run_training

    sets = own_data_overrides(images, masks, classes, ignore) + list(overrides or [])
    if images is not None:
        dataset = dataset or "folder"
    if eval_max_items is not None:
        sets.append(f"eval.max_items={eval_max_items}")
    if model:
        sets.insert(0, f"model.name={model}")
    if dataset:
        sets.insert(0, f"data.dataset={dataset}")
    if data_root:
        sets.append(f"data.root={data_root}")
    if recipe is None and not (model and dataset):
        raise ConfigError("pass --recipe NAME, or --model with --dataset (or with --images, --masks and --classes "
                          "for your own folders); see `seglab recipes` and `seglab data list`")
    if recipe is None and resolve_device(device).type == "cpu":
        recipe = CPU_BUDGET
        console.print(f"no --recipe: training under the CPU budget ({CPU_BUDGET}: 200 steps of 4 images at 120x160, "
                      "Adam 1e-3); change it with --set, or pick a recipe from `seglab recipes`", highlight=False)
    config = load_recipe(recipe, overrides=sets)
    if out.exists() and (out / "last.pt").exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    result = run_training(config, out_dir=out, resume=resume, device=device, max_steps=max_steps,
                          max_seconds=None if max_minutes is None else max_minutes * 60, console=console,
                          progress=not quiet)
    if os.environ.get("RANK", "0") != "0":
        return
    line = f"done: {result.steps} steps in {result.seconds:.0f} s"
    if result.summary:
        line += f", {result.summary}"
    console.print(line)
    best = f" (best: {out / 'best'})" if (out / "best").is_dir() else " (no validation split: no best/)"
    console.print(f"weights: {out / 'final'}{best}")
