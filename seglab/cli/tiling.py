"""The sliding-window, TTA and fast-path flags that `seglab predict` and `seglab eval` share (semantic models).

Each flag is declared once here as an ``Annotated`` parameter type (``tile: Tile = None``) and used by both
commands. No torch at import: `seglab --help` stays light; the options are built inside the commands.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from seglab.errors import ConfigError

TILE_HELP = ("semantic models: sliding-window inference, tiles of this many pixels (of the image x --scale) "
             "blended over --overlap; large images (TIFF, .npy) are read and written by bands")
OVERLAP_HELP = "fraction of a tile shared with its neighbour, in [0, 1) (default 0.25; with --tile)"
SCALE_HELP = ("model pixels per image pixel inside tiles (default 1.0; e.g. 0.5 for a checkpoint trained on "
              "images halved; with --tile)")
TTA_HELP = "semantic models: test-time augmentation: mean of probabilities over horizontal flip x --tta-scales"
TTA_SCALES_HELP = "TTA ratios of the input size, comma-separated (default 0.5,0.75,1,1.25,1.5,1.75; implies --tta)"

PRECISION_HELP = ("semantic models and Mask R-CNN: auto (bf16 autocast on CUDA and on CPUs with AVX512-BF16 or "
                  "AMX, else fp32), fp32, bf16 or fp16 (GPUs)")
COMPILE_HELP = "semantic models: run the model through torch.compile (a slow first image, faster after)"
FAST_HELP = ("semantic models and Mask R-CNN: fold batch norms, channels_last and --precision (default); "
             "--no-fast runs the model exactly as loaded, in fp32")


Tile = Annotated[int, typer.Option(help=TILE_HELP)]
Overlap = Annotated[float, typer.Option(help=OVERLAP_HELP)]
Scale = Annotated[float, typer.Option(help=SCALE_HELP)]
Tta = Annotated[bool, typer.Option("--tta", help=TTA_HELP)]
TtaScales = Annotated[str, typer.Option(help=TTA_SCALES_HELP)]
Precision = Annotated[str, typer.Option(help=PRECISION_HELP)]
Compile = Annotated[bool, typer.Option("--compile", help=COMPILE_HELP)]
Fast = Annotated[bool, typer.Option("--fast/--no-fast", help=FAST_HELP)]


def check_fast_flags(task: str, *, precision: str, compile: bool, fast: bool) -> None:  # noqa: A002
    """Refuse fast-path flags other than the defaults where they do not apply (ConfigError naming them):
    all of them on a panoptic checkpoint, ``--compile`` on an instance one."""
    given = [flag for flag, changed in (("--precision", precision != "auto"), ("--compile", compile),
                                        ("--no-fast", not fast)) if changed]
    if task == "instance" and compile:
        raise ConfigError("--compile applies to semantic models; instance models run eagerly (with --precision "
                          "and the other fast paths where the model names its stages, as Mask R-CNN does)")
    if given and task not in ("semantic", "instance"):
        raise ConfigError(f"{', '.join(given)}: the inference fast paths apply to semantic and instance models; "
                          f"this checkpoint is a {task} model (it runs in fp32)")


def semantic_inference(task: str, *, tile: int | None, overlap: float | None, scale: float | None, tta: bool,
                       tta_scales: str | None) -> Any:
    """The ``InferenceOptions`` of the flags, or None when none is given (the whole image, as trained).

    Raises:
        ConfigError: a flag on a non-semantic checkpoint, or out of range (one line naming it).
    """
    given = [flag for flag, value in (("--tile", tile), ("--overlap", overlap), ("--scale", scale),
                                      ("--tta", tta or None), ("--tta-scales", tta_scales)) if value is not None]
    if not given:
        return None
    if task != "semantic":
        raise ConfigError(f"{', '.join(given)}: sliding-window inference and TTA apply to semantic models; this "
                          f"checkpoint is a {task} model")
    from seglab.inference.sliding_window import inference_options  # noqa: PLC0415 - lazy: imports torch

    return inference_options(tile=tile, overlap=overlap, scale=scale, tta=tta, tta_scales=tta_scales)
