"""`seglab tables`: the survey's Tables 1-8 rebuilt from the recipes, the registry and real runs."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from seglab.cli.common import console, render_rows


class TablesFormat(str, Enum):
    markdown = "markdown"
    table = "table"
    json = "json"


def tables(
    numbers: list[int] = typer.Option(None, "--table", "-t", help="table number 1-8, repeatable (default: all)"),
    runs: list[Path] = typer.Option(
        None, "--runs", help="directories searched for bench.json run records (default: runs/bench if it exists)"
    ),
    fmt: TablesFormat = typer.Option(TablesFormat.markdown, "--format", help="markdown, table or json"),
) -> None:
    """Print the survey's tables: 1/5 from the recipes, 2/3/6/7 beside the code, 4/8 beside our runs.

    Tables 4 and 8 put the paper's numbers beside every run record (`seglab bench --train` writes
    OUT/<model>/bench.json) found under --runs; a row without a run says "no run yet".
    """
    from seglab.tables import build_tables  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    built = build_tables(numbers or None, runs=list(runs) if runs else None)
    if fmt is TablesFormat.json:
        print(json.dumps([t.as_dict() for t in built], indent=2))
    elif fmt is TablesFormat.markdown:
        print("\n".join(t.to_markdown() for t in built), end="")
    else:
        for t in built:
            render_rows(t.rows, title=f"Table {t.number}: {t.title}", fmt=fmt)
            for i, note in enumerate(t.notes, 1):
                console.print(f"[{i}] {note}", highlight=False, markup=False)
