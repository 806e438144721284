"""`seglab bench`: params, GFLOPs, CPU latency and the score after a CPU budget of every model of a task."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from seglab.cli.common import OutputFormat, err_console, json_safe, markdown_table, render_rows


def bench(
    models: list[str] = typer.Argument(None, help="model names (default: every model of --task)"),
    task: str = typer.Option("semantic", help="semantic, instance or panoptic: which models (and CPU recipes) to bench"),
    latency: bool = typer.Option(True, help="time one 360x480 forward of the paper configuration"),
    train: bool = typer.Option(False, help="train each model's CPU recipe (*_camvid_cpu, *_synthetic_cpu) and score val"),
    out: Path = typer.Option(Path("runs/bench"), "--out", "-o", help="where training runs and results go"),
    overrides: list[str] = typer.Option(None, "--set", help="override every training recipe: --set schedule.steps=50"),
    threads: int = typer.Option(2, help="CPU threads (torch.set_num_threads)"),
    repeats: int = typer.Option(3, help="timed forwards per model (after one warm-up)"),
    force: bool = typer.Option(False, help="retrain even when a result for the same recipe exists"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json, csv or markdown"),
    quiet: bool = typer.Option(False, help="no per-model progress lines or bars"),
    precision: str = typer.Option("auto", help="semantic latency: the fast paths of seglab predict at auto, fp32 "
                                  "or bf16; off: the model as built (eager fp32, contiguous)"),
) -> None:
    """Compare the models of a task on one table; with --train, semantic models train under one shared
    CPU budget on CamVid, instance and panoptic models their *_synthetic_cpu recipe (400 steps of 4).

    Training results are cached in OUT/<model>/bench.json and reused while the recipe is unchanged,
    so an interrupted bench continues where it stopped. The table is also written to OUT/bench.json
    and OUT/bench.md; progress goes to stderr, so `--format json > table.json` keeps stdout clean.
    """
    import torch  # noqa: PLC0415 - lazy: `seglab --help` must not import torch

    from seglab.bench import BUDGET_RECIPE, BenchRow, rows_as_dicts, run_bench
    from seglab.inference.fast import describe_precision
    from seglab.models.cost import COST_SIZE

    torch.set_num_threads(threads)
    runs_with = describe_precision(precision, task)  # refuses a bad --precision before any model is timed
    sizes = f"{COST_SIZE[0]}x{COST_SIZE[1]}"

    def report(row: BenchRow) -> None:
        if quiet:
            return
        parts = [f"{row.params_M:.2f} M", f"{row.gflops:.1f} GFLOPs" if row.gflops is not None else "GFLOPs n/a"]
        if row.latency_s is not None:
            parts.append(f"{row.latency_s:.3f} s")
        if row.miou is not None:
            parts.append(f"CamVid mIoU {row.miou:.4f} ({row.train_s:.0f} s of training)")
        if row.mask_ap is not None:
            parts.append(f"synthetic mask AP {row.mask_ap:.4f} ({row.train_s:.0f} s of training)")
        if row.pq is not None:
            parts.append(f"synthetic PQ {row.pq:.4f} ({row.train_s:.0f} s of training)")
        err_console.print(f"[bold]{row.model}[/]: " + ", ".join(parts), highlight=False)

    rows = run_bench(models or None, latency=latency, train=train, out_dir=out, overrides=list(overrides or []),
                     repeats=repeats, force=force, console=err_console, progress=not quiet, on_row=report,
                     task=task, precision=precision)
    records = rows_as_dicts(rows)
    title = (f"seglab bench: 21 classes, GFLOPs and latency at {sizes}, batch 1, {threads} threads, "
             f"torch {torch.__version__}, {runs_with}")
    if train:
        title += (f"; CamVid val after the {BUDGET_RECIPE} budget" if task == "semantic"
                  else "; synthetic val after each *_synthetic_cpu recipe")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(json_safe({"title": title, "rows": records}), indent=2) + "\n")
    (out / "bench.md").write_text(f"{title}\n\n" + markdown_table(records))
    render_rows(records, title=title, fmt=fmt)

