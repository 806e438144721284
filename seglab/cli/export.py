"""`seglab export`: a checkpoint to ONNX."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.engine.checkpoint import load_model
from seglab.inference.onnx_export import export_onnx


def export(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train`"),
    out: Path = typer.Option(Path("model.onnx"), "--out", "-o", help="ONNX file to write"),
) -> None:
    """Export to ONNX: input "images" [N, 3, H, W] float in [0, 1], output "logits"; N, H, W dynamic."""
    model, _ = load_model(checkpoint)
    console.print(f"wrote {export_onnx(model, out)}")
