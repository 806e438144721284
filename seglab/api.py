"""The one-line Python API: ``seglab.load``, ``seglab.save`` and ``seglab.Predictor``.

    model = seglab.load("runs/demo")                 # a run folder, or its final/ or best/
    labels = seglab.Predictor(model).predict("street.png")
    seglab.save(seglab.create_model("unet", num_classes=3), "my_unet")

A model knows how it was built: ``create_model`` records its name, class count and builder arguments
in ``model.seglab_config`` and ``load`` the whole config.json of its checkpoint, so ``save`` writes a
folder that ``load``, ``seglab eval``, ``seglab predict`` and ``seglab export`` read.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from seglab.errors import ConfigError
from seglab.formatting import json_safe

__all__ = ["Predictor", "load", "save"]



def load(path: str | Path, *, device: str = "cpu") -> nn.Module:
    """The model of a checkpoint folder (``runs/x``, ``runs/x/final``, ``runs/x/best``) in eval mode.

    Its config.json is ``model.seglab_config`` (classes, palette, input_size, the recipe...).

    Raises:
        ConfigError: the path is missing, or its config.json and weights do not fit (one line naming them).
    """
    from seglab.engine.checkpoint import load_model  # noqa: PLC0415 - `import seglab` stays light

    model, config = load_model(path, device=device)
    model.seglab_config = config
    return model


def save(model: nn.Module, directory: str | Path, *, classes: Sequence[str] | None = None,
         palette: Sequence[Sequence[int]] | None = None, input_size: Sequence[int] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` for a model from ``create_model`` or ``load``.

    Args:
        classes, palette, input_size: recorded for prediction (names, colours, the (H, W) the model
            expects); by default those the model was loaded with, else class numbers and a default palette.

    Returns:
        The directory written.

    Raises:
        ConfigError: the model was not built by ``seglab.create_model`` (nothing says how to rebuild it).
    """
    from seglab.engine.checkpoint import WEIGHT_FILE_KWARGS, save_weights, unwrap  # noqa: PLC0415
    from seglab.engine.tasks import task_of  # noqa: PLC0415

    model = unwrap(model)
    recorded = getattr(model, "seglab_config", None)
    if not recorded:
        raise ConfigError(f"seglab.save: this {type(model).__name__} was not built by seglab.create_model or "
                          "seglab.load, so nothing records how to rebuild it; build it with seglab.create_model")
    config = dict(recorded)
    kwargs = {k: v for k, v in (config.get("model_kwargs") or {}).items() if k not in WEIGHT_FILE_KWARGS}
    config["model_kwargs"] = json_safe({**kwargs, **getattr(model, "rebuild_kwargs", {})})
    config["task"] = config.get("task") or task_of(config["model"]).name
    for key, value in (("classes", classes), ("palette", palette), ("input_size", input_size)):
        if value is not None:
            config[key] = [list(v) for v in value] if key == "palette" else list(value)
    if config.get("classes") is not None and len(config["classes"]) != config["num_classes"]:
        raise ConfigError(f"seglab.save: {len(config['classes'])} class names for a model of "
                          f"{config['num_classes']} classes")
    return save_weights(model, directory, config)


def Predictor(model_or_path: nn.Module | str | Path, *, device: str = "cpu", **options: Any) -> Any:  # noqa: N802
    """The predictor of a checkpoint folder or a model: semantic, instance or panoptic, by the model's task.

    ``.predict(image)`` takes a file path, a PIL image, an [H, W, 3] uint8 array or a [3, H, W] tensor
    and applies exactly the preprocessing of ``seglab predict`` (the checkpoint's input size and
    normalisation). ``options`` go to the semantic predictor (``tile``, ``overlap``, ``scale``, ``tta``,
    ``tta_scales``, ``batch_size``: sliding windows and TTA; ``precision``, ``compile``, ``fast``: the fast
    paths) or the instance predictor (``score_threshold``, ``top``, and ``precision``, ``fast``: Mask R-CNN's fast
    paths).

    Raises:
        ConfigError: a sliding-window, TTA or fast-path option that the model's task does not take.
    """
    from seglab.engine.tasks import task_of_checkpoint  # noqa: PLC0415
    from seglab.inference.instance_predictor import InstancePredictor  # noqa: PLC0415
    from seglab.inference.panoptic_predictor import PanopticPredictor  # noqa: PLC0415
    from seglab.inference.predictor import SEMANTIC_OPTIONS  # noqa: PLC0415
    from seglab.inference.predictor import Predictor as SemanticPredictor  # noqa: PLC0415

    model = load(model_or_path, device=device) if isinstance(model_or_path, (str, Path)) else model_or_path
    config = getattr(model, "seglab_config", None)
    if not config:
        raise ConfigError(f"seglab.Predictor: this {type(model).__name__} was not built by seglab.create_model or "
                          "seglab.load; pass a checkpoint folder or such a model")
    task = task_of_checkpoint(config).name
    kind = {"instance": InstancePredictor, "panoptic": PanopticPredictor}.get(task, SemanticPredictor)
    semantic_only = sorted(set(options) & (SEMANTIC_OPTIONS - set(inspect.signature(kind._setup).parameters)))
    if semantic_only and task != "semantic":
        raise ConfigError(f"seglab.Predictor: {', '.join(semantic_only)} (sliding windows, TTA, fast paths) apply to "
                          f"semantic models; this is {'an' if task[0] in 'aeiou' else 'a'} {task} model")
    return kind.from_model(model, config, device=device, **options)
