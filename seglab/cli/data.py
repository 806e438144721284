"""`seglab data list | check | fetch | stats | render`: the datasets, validate labels, download datasets, class statistics, pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
from pathlib import Path

import numpy as np
import typer
from PIL import Image as PILImage
from rich.markup import escape
from rich.table import Table

from seglab.cli.common import OutputFormat, console, render_rows
from seglab.engine.progress import progress_bar
from seglab.errors import ConfigError
from seglab.recipes import parse_yaml

if TYPE_CHECKING:
    from seglab.data import CheckReport
    from seglab.data.stats import ClassStats

URL_BASE_ENV = "SEGLAB_FETCH_URL_BASE"  # = seglab.data.fetch.URL_BASE_ENV (tests/cli/test_newcomer.py), kept light

data_app = typer.Typer(no_args_is_help=True, help="Dataset tools.")

OPTION_HELP = "dataset option as key=value (YAML value), repeatable: -O folder=coco_tiny -O num_classes=60"


def dataset_options(options: list[str] | None) -> dict[str, object]:
    """Parse ``-O key=value`` dataset options (values as YAML: numbers, lists, booleans)."""
    parsed: dict[str, object] = {}
    for option in options or []:
        key, sep, raw = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"dataset option {option!r} must look like key=value, e.g. -O folder=coco_tiny")
        parsed[key.strip()] = parse_yaml(raw, where=f"dataset option {option!r}")
    return parsed


# datasets with no folder of their own under the data root
_NO_FOLDER = {"synthetic": "(generated)", "folder": "(your folders)"}
_TASK_SHORT = {"semantic": "sem", "instance": "inst", "panoptic": "pan"}  # fits 80 columns


@data_app.command("list")
def list_command(
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json, csv or markdown"),
) -> None:
    """The dataset names seglab reads, the targets each gives (sem, inst, pan: pass task= to build one), whether
    it is under the data root (or which sample folder to pass as -O folder=), and whether `data fetch` gets it."""
    from seglab.data.sources import list_sources  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    from seglab.data import data_root as default_root  # noqa: PLC0415
    from seglab.data.datasets import dataset_tasks, list_datasets  # noqa: PLC0415

    root = Path(data_root) if data_root is not None else default_root()
    sources = set(list_sources())
    names = list_datasets()
    rows = []
    for name in names:
        rows.append({"name": name, "tasks": " ".join(_TASK_SHORT[t] for t in dataset_tasks(name)),
                     "on disk": _NO_FOLDER.get(name) or _on_disk(root, name, names),
                     "fetch": "yes" if name in sources else "-"})
    render_rows(rows, title=f"datasets under {root}", fmt=fmt)


def _on_disk(root: Path, name: str, names: list[str]) -> str:
    """ "yes" when ``root/name`` exists, else the sample folders it reads with -O folder= (coco_tiny), else "no"."""
    if (root / name).is_dir():
        return "yes"
    longer = [other for other in names if other != name and other.startswith(name)]  # coco_panoptic for coco
    samples = sorted(p.name for p in root.glob(f"{name}_*")
                     if p.is_dir() and not any(p.name.startswith(other) for other in longer)) if root.is_dir() else []
    return ", ".join(f"folder={s}" for s in samples) or "no"


@data_app.command("check")
def check(
    dataset: str = typer.Argument(..., help="dataset name (see `seglab data render --help` for the list)"),
    split: str = typer.Option("train", help="split to check"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    images: Path = typer.Option(None, help="for the folder dataset: folder of images"),
    masks: Path = typer.Option(None, help="for the folder dataset: folder of index masks"),
    classes: str = typer.Option(None, help="for the folder dataset: comma-separated class names"),
    max_items: int = typer.Option(None, help="check only this many items"),
    options: list[str] = typer.Option(None, "--option", "-O", help=OPTION_HELP),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Check labels: values outside the classes, colour masks, size mismatches, unreadable files, empty classes.

    Instance datasets (coco; cityscapes and synthetic with -O task=instance) are checked as
    instances: annotation-file problems (undeclared categories, duplicate ids, bboxes outside the
    image, RLE/polygon errors, missing images), empty masks, boxes outside the image, bad labels,
    and instance counts per class. Your own COCO JSON: -O json_file=... -O image_dir=...
    Exits with status 1 when errors are found.
    """
    from seglab.data import build_dataset, check_dataset, check_instances  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    kwargs = dataset_options(options)
    if dataset == "folder":
        folder = {"image_dir": images, "mask_dir": masks,
                  "classes": [c.strip() for c in classes.split(",")] if classes else None}
        kwargs.update({k: v for k, v in folder.items() if v is not None})
    if dataset == "coco" and kwargs.get("task", "instance") == "instance":
        kwargs.setdefault("strict", False)  # list every problem of the JSON, not only the first
    data = build_dataset(dataset, split=split, root=data_root, **kwargs)
    checker = check_instances if getattr(data, "task", "semantic") == "instance" else check_dataset
    with progress_bar(console, enabled=fmt is OutputFormat.table) as bar:
        task = bar.add_task(f"checking {dataset}/{split}", total=min(len(data), max_items or len(data)))
        report = checker(data, max_items=max_items, progress=lambda done, total: bar.update(task, completed=done))
    if fmt is OutputFormat.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.task == "instance":
        _render_instances(report)
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
    _render_messages(report, "labels are consistent")


def _render_instances(report: CheckReport) -> None:
    total = sum(report.class_instances.values())
    table = Table(title=f"{report.dataset}/{report.split}: {report.num_items} items checked, {total} instances")
    table.add_column("class")
    table.add_column("instances", justify="right")
    table.add_column("share", justify="right")
    for name, count in report.class_instances.items():
        table.add_row(name, str(count), f"{100 * count / max(total, 1):.2f} %")
    table.add_row("(images without instances)", str(report.images_without_instances), "")
    console.print(table)
    _render_messages(report, "instances are consistent")


def _render_messages(report: CheckReport, ok: str) -> None:
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for error in report.errors:
        console.print(f"[red]error:[/] {escape(error)}", highlight=False, soft_wrap=True)
    console.print(f"[green]ok[/]: {ok}" if report.ok else f"[red]{len(report.errors)} error(s)[/]")


@data_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="dataset to download (`seglab data list` marks them)"),
    root: Path = typer.Option(None, "--root", help="data root; files go to ROOT/<dataset> (default: the data root)"),
    url_base: str = typer.Option(None, "--url-base", envvar=URL_BASE_ENV, help="mirror replacing the official URLs"),
    attempts: int = typer.Option(3, help="tries per file; each retry resumes the partial download"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Download a dataset from its official source, check its SHA-256, extract and convert it.

    Interrupted downloads resume on the next run. Exits with status 1 when the files need a manual
    download (the instructions are printed).
    """
    from seglab.data.fetch import fetch_dataset  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    with progress_bar(console, enabled=not quiet, transfer=True) as bar:
        tasks: dict[str, int] = {}

        def report(description: str, done: int, total: int | None) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done, total=total)

        result = fetch_dataset(name, root, url_base=url_base, attempts=attempts, progress=report,
                               log=lambda message: console.print(message, highlight=False, soft_wrap=True))
    if not result.complete:
        console.print(result.instructions, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {name} is in {result.folder}", highlight=False)


@data_app.command("stats")
def stats(
    dataset: str = typer.Argument(..., help="dataset name (camvid, isbi2012_em, synthetic, ...)"),
    split: str = typer.Option("train", help="split to count"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    max_items: int = typer.Option(None, help="read only this many items, evenly spaced"),
    options: list[str] = typer.Option(None, "--option", "-O", help=OPTION_HELP),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Per-class pixel counts, frequencies and SegNet's median-frequency class weights."""
    from seglab.data import build_dataset  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.data.stats import compute_class_stats

    data = build_dataset(dataset, split=split, root=data_root, **dataset_options(options))
    with progress_bar(console, enabled=fmt is OutputFormat.table) as bar:
        task = bar.add_task(f"counting {dataset}/{split}", total=min(len(data), max_items or len(data)))
        result = compute_class_stats(data, max_items=max_items,
                                     progress=lambda done, total: bar.update(task, completed=done))
    if fmt is OutputFormat.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _render_stats(result)


def _render_stats(result: ClassStats) -> None:
    table = Table(title=f"{result.dataset}/{result.split}: {result.num_items} items, {result.total_pixels} pixels")
    for column in ("class", "pixels", "share", "images", "image freq", "freq", "weight"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result.rows():
        table.add_row(row["class"], str(row["pixels"]), f"{100 * row['share']:.2f} %", str(row["images"]),
                      f"{row['image_freq']:.3f}", f"{row['freq']:.5f}", f"{row['weight']:.4f}")
    ignored_share = 100 * result.ignored_pixels / max(result.total_pixels, 1)
    table.add_row("(ignored)", str(result.ignored_pixels), f"{ignored_share:.2f} %", "", "", "", "")
    console.print(table)
    console.print("weight = median(freq) / freq, freq = class pixels / pixels of the images containing the "
                  "class (Eigen & Fergus 2015, as used by SegNet)", highlight=False)


@data_app.command("render")
def render(
    dataset: str = typer.Argument(..., help="dataset name (seglab.data.list_datasets())"),
    split: str = typer.Option("train", help="split to draw from"),
    out: Path = typer.Option(Path("renders"), "--out", "-o", help="folder for the PNG files"),
    index: list[int] = typer.Option(None, "--index", "-i", help="item to render (repeatable; default the first --count)"),
    count: int = typer.Option(4, help="how many items when no --index is given"),
    data_root: Path = typer.Option(None, help="data root (default: $SEGLAB_DATA or ../shared/data)"),
    options: list[str] = typer.Option(None, "--option", "-O", help=OPTION_HELP),
) -> None:
    """Write image | colour labels | overlay strips of a few items, to see that labels sit where they should.

    Ignored pixels are white in the label map and left unblended in the overlay; instance targets
    are painted with their class colours, crowd regions as ignored. A legend below names the classes shown.
    """
    from seglab.data import build_dataset  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.data.colours import class_colours, with_legend
    from seglab.data.render import render_sample, target_labels

    data = build_dataset(dataset, split=split, root=data_root, **dataset_options(options))
    indices = list(index) if index else list(range(min(count, len(data))))
    bad = [i for i in indices if not 0 <= i < len(data)]
    if bad:
        raise ConfigError(f"--index {bad[0]} is out of range: {dataset}/{split} has {len(data)} items")
    out.mkdir(parents=True, exist_ok=True)
    for i in indices:
        image, target = data[i]
        path = out / f"{dataset}_{split}_{i:05d}.png"
        labels, shows = target_labels(target)
        present = sorted(int(v) for v in np.unique(labels) if v != data.ignore_index)
        strip = render_sample(image, target, data.palette, classes=data.classes)
        colours = class_colours(data.palette, max([len(data.classes), *[v + 1 for v in present]]))
        legend = with_legend(strip, data.classes, colours, present=present, ignored=bool((labels == data.ignore_index).any()))
        PILImage.fromarray(legend).save(path)
        names = ", ".join(data.classes[v] if v < len(data.classes) else str(v) for v in present)
        console.print(f"{path}: {image.shape[-1]}x{image.shape[-2]}, {shows}: {names}", highlight=False, soft_wrap=True)
