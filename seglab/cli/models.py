"""`seglab models`: the registered models with their papers and parameter counts."""

from __future__ import annotations

import torch
import typer

from seglab.cli.common import OutputFormat, render_rows
from seglab.registry import create_model, list_models, model_spec

PARAMS_CLASSES = 21  # PASCAL VOC's 20 classes + background, the survey's common setting


def count_params(name: str, num_classes: int = PARAMS_CLASSES) -> int:
    """Parameters of ``name`` with default arguments (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def models(
    task: str = typer.Option(None, help="semantic, instance or panoptic"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv"),
) -> None:
    """List the registered models: name, task, paper, year, parameters (21 classes)."""
    rows = []
    for name in list_models(task):
        spec = model_spec(name)
        rows.append({
            "name": name, "task": spec.task, "paper": spec.paper, "arxiv": spec.arxiv, "year": spec.year,
            "params_M": round(count_params(name) / 1e6, 2),
        })
    render_rows(rows, title=f"seglab models (params for {PARAMS_CLASSES} classes)", fmt=fmt)
