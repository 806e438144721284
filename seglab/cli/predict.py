"""`seglab predict`: label maps and colour overlays (semantic), outlined instances and a COCO results
file (instance), or panoptic overlays and the COCO panoptic format (panoptic), for an image or a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.errors import ConfigError


def predict(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train` (e.g. runs/x/final)"),
    source: Path = typer.Argument(..., help="an image file or a folder of images"),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="output folder"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    score_threshold: float = typer.Option(None, help="instance models: lowest score drawn (results keep all); "
                                          "default 0.5, and 0 for proposal models"),
    top: int = typer.Option(None, help="instance models: draw at most this many, best first (proposal models: 10)"),
) -> None:
    """Semantic: <name>.png (pixel value = class id) and <name>_overlay.png per image. Instance:
    <name>_overlay.png (each instance outlined in its colour, box, class and score) and results.json.
    Panoptic: <name>_overlay.png (stuff coloured, thing instances shaded and outlined) and the COCO
    panoptic format (panoptic/<name>.png + panoptic.json)."""
    from seglab.engine.checkpoint import read_config  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.engine.tasks import task_of_checkpoint
    from seglab.inference.instance_predictor import InstancePredictor
    from seglab.inference.panoptic_predictor import PanopticPredictor
    from seglab.inference.predictor import Predictor

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; pass a folder to write the predictions into")
    task = task_of_checkpoint(read_config(checkpoint)).name
    if task == "panoptic":
        panoptic = PanopticPredictor(checkpoint, device=device).predict_files(source, out)
        console.print(f"wrote {len(panoptic)} overlays, {sum(w.instances for w in panoptic)} thing instances and the "
                      f"COCO panoptic format (panoptic.json, panoptic/) to {out}")
        return
    if task == "instance":
        written = InstancePredictor(checkpoint, device=device, score_threshold=score_threshold,
                                    top=top).predict_files(source, out)
        count = sum(w.detections for w in written)
        console.print(f"wrote {len(written)} overlays and {count} detections ({written[0].results.name}) to {out}"
                      if written else f"no images found in {source}")
        return
    written = Predictor(checkpoint, device=device).predict_files(source, out)
    console.print(f"wrote {len(written)} label maps and overlays to {out}")
