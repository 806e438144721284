"""`seglab report`: one self-contained HTML page of a training run (curves, confusion, samples, recipe, timings)."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console


def report(
    run: Path = typer.Argument(..., help="run folder written by `seglab train` (e.g. runs/demo), or its final/"),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default <run>/report.html)"),
    samples: int = typer.Option(4, help="validation images to predict and show (0: none)"),
    data_root: Path = typer.Option(None, help="data root for the sample images (default: $SEGLAB_DATA or ../shared/data)"),
    device: str = typer.Option("cpu", help="cpu, cuda, ... (for the sample predictions)"),
) -> None:
    """Write an HTML report: loss and learning-rate curves, validation curves, per-class scores, the confusion
    matrix (semantic), sample predictions with a class legend, the recipe, and the hardware and timings.
    The page embeds everything (no network, no other files): open it in any browser."""
    from seglab.report import write_report  # noqa: PLC0415 - lazy: `seglab --help` must not import matplotlib

    if out is not None and out.is_dir():
        raise typer.BadParameter(f"--out {str(out)!r} is a folder; pass an .html file name")
    with console.status("report") as status:
        written = write_report(run, out, samples=samples, data_root=data_root, device=device,
                               progress=lambda stage: status.update(f"report: {stage}"))
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB); open it in a browser", highlight=False)
