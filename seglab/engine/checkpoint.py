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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model
from torch import nn

from seglab.backbones.weights import torch_load
from seglab.engine.device import resolve_device
from seglab.errors import ConfigError, StorageError
from seglab.registry import create_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "last.pt"
# builder arguments that only name weight files: config.json leaves them out, as the saved weights hold every
# tensor and the files may be gone (a proposer checkpoint is recorded as its spec by the host's rebuild_kwargs,
# seglab.models.instance.proposals)
WEIGHT_FILE_KWARGS = ("pretrained", "pretrained_backbone", "pretrained_deepmask", "proposer")
# what every last.pt holds (and "run", the recipe that wrote it, since this release)
STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "best", "rng")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file and rename, so a kill mid-write never leaves a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a half-written file must not fill what space is left
        before = f"the previous {path.name} there is intact" if path.exists() else f"no {path.name} was written"
        raise StorageError(f"cannot write {path}: {exc.strerror or exc} ({before}); free space or choose "
                           "another --out") from None


def save_weights(model: nn.Module, directory: str | Path, config: dict[str, Any]) -> Path:
    """Save ``model.safetensors`` and ``config.json`` (model name, num_classes, kwargs, classes...).

    Returns:
        The directory written.
    """
    directory = Path(directory)
    _atomic_write(directory / WEIGHTS_FILE, lambda p: st_save_model(unwrap(model), str(p)))
    _atomic_write(directory / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2)))
    return directory


def checkpoint_path(path: str | Path) -> Path:
    """``path`` as a checkpoint: a run folder (``runs/x``) means its ``final/``; a missing path is an error.

    Raises:
        ConfigError: the path does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; pass a folder written by `seglab train` "
                          "(runs/NAME, runs/NAME/final or runs/NAME/best)")
    if path.is_dir() and not (path / CONFIG_FILE).is_file() and (path / "final" / CONFIG_FILE).is_file():
        return path / "final"
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint directory (or of the directory holding a weights file, or of a run)."""
    path = checkpoint_path(path)
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
    device = resolve_device(device)  # a bad --device fails before anything is read
    path = checkpoint_path(path)
    config = read_config(path)
    weights = path if path.is_file() else path / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} has no {WEIGHTS_FILE}")
    config_path = weights.parent / CONFIG_FILE
    try:
        model = create_model(config["model"], num_classes=config["num_classes"], **config.get("model_kwargs", {}))
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    try:
        with safe_open(str(weights), "pt") as file:
            shapes = {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"cannot read weights {weights}: {' '.join(str(exc).split())} (truncated or not a "
                          "safetensors file?)") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    common = set(expected) & set(shapes)
    mismatch = state_mismatch({k: expected[k] for k in common}, {k: shapes[k] for k in common})
    if not mismatch:  # then the names, by safetensors' own check (it knows which tensors a model shares)
        missing, unexpected = st_load_model(model, str(weights), strict=False)
        mismatch = state_mismatch({k: expected[k] for k in [*common, *missing]},
                                  {k: shapes[k] for k in [*common, *unexpected]})
    if mismatch:
        raise ConfigError(
            f"{weights} does not match {config_path}: it builds {config['model']} with num_classes="
            f"{config['num_classes']} and model_kwargs {config.get('model_kwargs', {})}, but {mismatch}; restore the "
            f"{CONFIG_FILE} written with these weights"
        )
    return model.to(device).eval(), config


def state_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """How tensors named and shaped ``found`` differ from ``expected``, in one phrase ("" when they fit).

    E.g. "classifier.weight is [4, 4, 1, 1] in the file and [7, 4, 1, 1] here (2 of 30 tensors differ)".
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shaped = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if not (missing or unexpected or shaped):
        return ""
    if shaped:
        key = shaped[0]
        first = f"{key} is {list(found[key])} in the file and {list(expected[key])} here"
    elif missing:
        first = f"{missing[0]} is missing from the file"
    else:
        first = f"the file has {unexpected[0]}, which this model lacks"
    counts = [f"{len(shaped)} of {len(expected)} tensors differ in shape" if shaped else "",
              f"{len(missing)} missing" if missing else "", f"{len(unexpected)} unexpected" if unexpected else ""]
    return f"{first} ({', '.join(c for c in counts if c)})"


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
    """Load what ``save_training_state`` wrote, with ``weights_only=True``.

    Raises:
        ConfigError: in one line, when the file is missing, refused (it would run code), unreadable
            (empty, truncated, corrupt) or holds something else than a training state.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no training state at {str(path)!r} to resume from; start without --resume")
    state = torch_load(path, what="training state")
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        holds = (f"a dict of {', '.join(map(str, list(state)[:5]))}" if isinstance(state, dict) and state
                 else f"a {type(state).__name__}")
        raise ConfigError(f"{path} is not a training state written by `seglab train` (it holds {holds}; missing "
                          f"{', '.join(missing)}); delete it, or choose another --out to start a new run")
    return state
