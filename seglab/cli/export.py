"""`seglab export`: a checkpoint to ONNX."""

from __future__ import annotations

from pathlib import Path

import typer

from seglab.cli.common import console
from seglab.errors import ConfigError


def export(
    checkpoint: Path = typer.Argument(..., help="directory written by `seglab train`"),
    out: Path = typer.Option(Path("model.onnx"), "--out", "-o", help="ONNX file to write"),
) -> None:
    """Export to ONNX: input "images" [N, 3, H, W] float in [0, 1], output "logits"; N, H, W dynamic.

    A checkpoint trained at reduced resolution (config.json's input_size) gets that resize inside the graph,
    as `seglab predict` applies it, so both give the same labels; the file's metadata records it.
    """
    from seglab.data.augment import PREPROCESSING  # noqa: PLC0415 - lazy: `seglab --help` must not import torch
    from seglab.engine.checkpoint import load_model
    from seglab.inference.onnx_export import export_onnx
    from seglab.inference.predictor import preprocessing

    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a folder; pass the ONNX file to write, e.g. {str(out / 'model.onnx')!r}")
    model, config = load_model(checkpoint)
    input_size = tuple(config["input_size"]) if config.get("input_size") else None
    names = ""
    if preprocessing(config) is not None:
        augment = config["recipe"]["data"]["augment"]
        names = ", ".join(spec["name"] for spec in augment if spec.get("name") in PREPROCESSING)
    metadata = {"seglab.model": config["model"], "seglab.classes": ",".join(config.get("classes") or []),
                "seglab.input_size": "x".join(map(str, input_size)) if input_size else "native",
                "seglab.preprocessing_outside_graph": names}
    try:
        console.print(f"wrote {export_onnx(model, out, input_size=input_size, metadata=metadata)}")
    except OSError as exc:
        raise ConfigError(f"cannot write --out {str(out)!r}: {exc.strerror or exc}; choose a writable path") from None
    if input_size:
        console.print(f"the graph resizes inputs to {input_size[0]}x{input_size[1]} and its logits back, as "
                      "`seglab predict` does", highlight=False)
    if names:
        console.print(f"[yellow]note:[/] the model was trained on inputs prepared by {names} (seglab.data.augment); "
                      "the ONNX graph does not contain it, so apply it to images before the model "
                      "(seglab.inference.predictor.preprocessing(config)); the file's metadata says so", highlight=False)
