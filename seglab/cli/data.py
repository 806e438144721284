"""`seglab data check`: validate labels before training."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from seglab.cli.common import OutputFormat, console
from seglab.data import CheckReport, build_dataset, check_dataset
from seglab.engine.progress import progress_bar

data_app = typer.Typer(no_args_is_help=True, help="Dataset tools.")


@data_app.command("check")
def check(
    dataset: str = typer.Argument(..., help="dataset name (camvid, isbi2012_em, synthetic, folder)"),
    split: str = typer.Option("train", help="split to check"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    images: Path = typer.Option(None, help="for the folder dataset: folder of images"),
    masks: Path = typer.Option(None, help="for the folder dataset: folder of index masks"),
    classes: str = typer.Option(None, help="for the folder dataset: comma-separated class names"),
    max_items: int = typer.Option(None, help="check only this many items"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Report label values outside the classes, colour masks, size mismatches, unreadable files, empty classes.

    Exits with status 1 when errors are found.
    """
    kwargs = {}
    if dataset == "folder":
        kwargs = {"image_dir": images, "mask_dir": masks,
                  "classes": [c.strip() for c in classes.split(",")] if classes else None}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    data = build_dataset(dataset, split=split, root=data_root, **kwargs)
    with progress_bar(console, enabled=fmt is OutputFormat.table) as bar:
        task = bar.add_task(f"checking {dataset}/{split}", total=min(len(data), max_items or len(data)))
        report = check_dataset(data, max_items=max_items, progress=lambda done, total: bar.update(task, completed=done))
    if fmt is OutputFormat.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report: CheckReport) -> None:
    total = sum(report.class_pixels.values()) + report.ignored_pixels
    table = Table(title=f"{report.dataset}/{report.split}: {report.num_items} items checked")
    table.add_column("class")
    table.add_column("pixels", justify="right")
    table.add_column("share", justify="right")
    for name, pixels in [*report.class_pixels.items(), ("(ignored)", report.ignored_pixels)]:
        table.add_row(name, str(pixels), f"{100 * pixels / max(total, 1):.2f} %")
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for error in report.errors:
        console.print(f"[red]error:[/] {error}")
    console.print("[green]ok[/]: labels are consistent" if report.ok else f"[red]{len(report.errors)} error(s)[/]")
