"""`seglab models`: the registered models with their papers, parameters and GFLOPs."""

from __future__ import annotations

import typer

from seglab.cli.common import OutputFormat, console, render_rows

PARAMS_CLASSES = 21  # PASCAL VOC's 20 classes + background, the survey's common setting


def models(
    task: str = typer.Option(None, help="semantic, instance or panoptic"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv"),
) -> None:
    """List the registered models: name, task, paper, year, parameters and GFLOPs (21 classes, 360x480)."""
    from seglab.models.cost import COST_SIZE, model_cost  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.registry import list_models, model_spec

    rows = []
    with console.status("measuring parameters and FLOPs on the meta device"):
        for name in list_models(task):
            spec = model_spec(name)
            params, gflops = model_cost(name, num_classes=PARAMS_CLASSES)
            rows.append({
                "name": name, "task": spec.task, "paper": spec.paper, "arxiv": spec.arxiv, "year": spec.year,
                "params_M": round(params / 1e6, 2), "gflops": round(gflops, 1) if gflops is not None else "n/a",
            })
    render_rows(rows, title=f"seglab models ({PARAMS_CLASSES} classes, GFLOPs at {COST_SIZE[0]}x{COST_SIZE[1]})",
                fmt=fmt)
