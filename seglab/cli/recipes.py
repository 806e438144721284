"""`seglab recipes`: the shipped training recipes."""

from __future__ import annotations

import typer

from seglab.cli.common import OutputFormat, render_rows
from seglab.recipes import list_recipes, load_recipe


def recipes(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv")) -> None:
    """List the recipes: name, model, dataset, optimiser, steps and description."""
    rows = []
    for name in list_recipes():
        r = load_recipe(name)
        rows.append({
            "name": name, "model": r.model.name, "dataset": r.data.dataset, "optim": r.optim.name,
            "lr": r.optim.lr, "steps": r.schedule.steps, "description": r.description,
        })
    render_rows(rows, title="seglab recipes", fmt=fmt)
