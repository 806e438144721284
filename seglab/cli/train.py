"""`seglab train`: train a model with a recipe and `--set` overrides."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.errors import ConfigError
from seglab.recipes import load_recipe


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
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train a model; writes OUT/final and OUT/best (safetensors + config.json), OUT/last.pt and logs."""
    from seglab.engine.train import train as run_training  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    sets = list(overrides or [])
    if model:
        sets.insert(0, f"model.name={model}")
    if dataset:
        sets.insert(0, f"data.dataset={dataset}")
    if data_root:
        sets.append(f"data.root={data_root}")
    if recipe is None and not (model and dataset):
        raise ConfigError("pass --recipe NAME, or both --model and --dataset (see `seglab recipes`)")
    config = load_recipe(recipe, overrides=sets)
    if out.exists() and (out / "last.pt").exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    result = run_training(config, out_dir=out, resume=resume, device=device, max_steps=max_steps,
                          console=console, progress=not quiet)
    if os.environ.get("RANK", "0") != "0":
        return
    line = f"done: {result.steps} steps in {result.seconds:.0f} s"
    if result.summary:
        line += f", {result.summary}"
    console.print(line)
    console.print(f"weights: {out / 'final'} (best: {out / 'best'})")
