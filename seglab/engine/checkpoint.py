"""Checkpoints: weights as safetensors + config.json, and full training state for exact resume.

Loading never unpickles code: weights come from safetensors, training state from
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model
from torch import nn

from seglab.errors import ConfigError
from seglab.registry import create_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "last.pt"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file and rename, so a kill mid-write never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_weights(model: nn.Module, directory: str | Path, config: dict[str, Any]) -> Path:
    """Save ``model.safetensors`` and ``config.json`` (model name, num_classes, kwargs, classes...).

    Returns:
        The directory written.
    """
    directory = Path(directory)
    _atomic_write(directory / WEIGHTS_FILE, lambda p: st_save_model(unwrap(model), str(p)))
    _atomic_write(directory / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2)))
    return directory


def read_config(path: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint directory (or of the directory holding a weights file)."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(
            f"checkpoint {str(path)!r} has no {CONFIG_FILE}; pass a directory written by `seglab train` "
            f"(it holds {WEIGHTS_FILE} and {CONFIG_FILE})"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid JSON: {exc}") from exc
    for key in ("model", "num_classes"):
        if key not in config:
            raise ConfigError(f"{config_path}: missing field {key!r}")
    return config


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint directory and load its weights (eval mode).

    Returns:
        (model, config).
    """
    path = Path(path)
    config = read_config(path)
    weights = path if path.is_file() else path / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} has no {WEIGHTS_FILE}")
    model = create_model(config["model"], num_classes=config["num_classes"], **config.get("model_kwargs", {}))
    try:
        missing, unexpected = st_load_model(model, str(weights), strict=False)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ConfigError(f"cannot load weights {weights}: {exc}") from exc
    if missing or unexpected:
        raise ConfigError(
            f"{weights} does not match {config['model']}: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}"
        )
    return model.to(device).eval(), config


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU and CUDA) as weights_only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(_to_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(value: Any) -> Any:
    return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def tensors_to_lists(value: Any) -> Any:
    """Replace tensors by {"tensor": values, "dtype": name}, recursively (to gather RNG states as plain objects)."""
    if isinstance(value, torch.Tensor):
        return {"tensor": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, dict):
        return {k: tensors_to_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tensors_to_lists(v) for v in value)
    return value


def lists_to_tensors(value: Any) -> Any:
    """Inverse of ``tensors_to_lists``."""
    if isinstance(value, dict) and set(value) == {"tensor", "dtype"}:
        return torch.tensor(value["tensor"], dtype=getattr(torch, value["dtype"]))
    if isinstance(value, dict):
        return {k: lists_to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(lists_to_tensors(v) for v in value)
    return value


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a dict of state_dicts, counters and RNG states."""
    _atomic_write(Path(path), lambda p: torch.save(state, p))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Load what ``save_training_state`` wrote, with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no training state at {str(path)!r} to resume from; start without --resume")
    return torch.load(path, map_location="cpu", weights_only=True)
