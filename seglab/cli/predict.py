"""`seglab predict`: label maps and colour overlays for an image or a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.inference.predictor import Predictor


def predict(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train` (e.g. runs/x/final)"),
    source: Path = typer.Argument(..., help="an image file or a folder of images"),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="output folder"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
) -> None:
    """Write <name>.png (pixel value = class id) and <name>_overlay.png for every input image."""
    predictor = Predictor(checkpoint, device=device)
    written = predictor.predict_files(source, out)
    console.print(f"wrote {len(written)} label maps and overlays to {out}")
