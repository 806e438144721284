"""`seglab predict`: label maps and colour overlays (semantic), outlined instances and a COCO results
file (instance), or panoptic overlays and the COCO panoptic format (panoptic), for an image or a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console, err_console
from seglab.cli.tiling import (Compile, Fast, Overlap, Precision, Scale, Tile, Tta, TtaScales, check_fast_flags,
                               semantic_inference)
from seglab.errors import ConfigError


def predict(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train` (e.g. runs/x/final)"),
    source: Path = typer.Argument(..., help="an image file or a folder of images"),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="output folder"),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    score_threshold: float = typer.Option(None, help="instance models: lowest score drawn (results keep all); "
                                          "default 0.5, and 0 for proposal models"),
    top: int = typer.Option(None, help="instance models: draw at most this many, best first (proposal models: 10)"),
    tile: Tile = None,
    overlap: Overlap = None,
    scale: Scale = None,
    tta: Tta = False,
    tta_scales: TtaScales = None,
    precision: Precision = "auto",
    compile_model: Compile = False,
    fast: Fast = True,
) -> None:
    """Semantic: <name>.png (pixel value = class id) and <name>_overlay.png per image; an image over 67 Mpixel
    (or a .npy array) with --tile: <name>.tif written by bands, no overlay. Instance:
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
    semantic_inference(task, tile=tile, overlap=overlap, scale=scale, tta=tta, tta_scales=tta_scales)  # checks the flags
    check_fast_flags(task, precision=precision, compile=compile_model, fast=fast)
    if task == "panoptic":
        panoptic = PanopticPredictor(checkpoint, device=device).predict_files(source, out)
        console.print(f"wrote {len(panoptic)} overlays, {sum(w.instances for w in panoptic)} thing instances and the "
                      f"COCO panoptic format (panoptic.json, panoptic/) to {out}")
        return
    if task == "instance":
        instances = InstancePredictor(checkpoint, device=device, score_threshold=score_threshold, top=top,
                                      precision=precision, fast=fast)
        err_console.print(f"runs with: {instances.fast_paths.describe()}", highlight=False, markup=False)
        written = instances.predict_files(source, out)
        count = sum(w.detections for w in written)
        console.print(f"wrote {len(written)} overlays and {count} detections ({written[0].results.name}) to {out}"
                      if written else f"no images found in {source}")
        return
    predictor = Predictor(checkpoint, device=device, tile=tile, overlap=overlap, scale=scale, tta=tta,
                          tta_scales=tta_scales, precision=precision, compile=compile_model, fast=fast)
    err_console.print(f"runs with: {predictor.fast_paths.describe()}", highlight=False, markup=False)
    if source.suffix.lower() == ".npy" and source.is_file():  # an array file: read by region, by bands
        written = [predictor.predict_large_file(source, out)]
    else:
        written = predictor.predict_files(source, out)
    large = [w for w in written if w.overlay is None]
    if large:
        names = ", ".join(w.labels.name for w in large)
        console.print(f"{len(large)} large image(s) predicted by bands: label maps {names} (palette TIFF, pixel "
                      "value = class id); no overlay drawn at that size", highlight=False)
    overlays = "overlays" if not large else f"{len(written) - len(large)} overlays"
    console.print(f"wrote {len(written)} label maps and {overlays} to {out}")
