"""Load pretrained weights from a local file into a backbone (seglab never downloads weights).

Backbones keep torchvision's submodule names, so a torchvision ImageNet checkpoint loads as is;
keys the backbone does not have (``fc.*``, ``classifier.*``) are dropped.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from seglab.errors import ConfigError

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
_SUFFIXES = (".safetensors", *_PICKLE_SUFFIXES)
_MAX_LISTED = 5  # keys named in an error message; enough to recognise a wrong checkpoint

# torchvision's published DenseNet checkpoints still use keys such as "denselayer1.norm.1.weight"
# from before "." was banned in module names; torchvision renames them the same way on load.
_LEGACY_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def load_pretrained(
    module: nn.Module, path: str | Path, *, strict_prefixes: Iterable[str] | None = None
) -> None:
    """Copy the tensors of a local checkpoint into ``module``, matching torchvision key names.

    Args:
        module: the backbone (or any module) to fill in place.
        path: a ``.safetensors`` file, or a ``.pt``/``.pth``/``.bin`` state dict read with
            ``weights_only=True`` (no code is unpickled). A dict holding the weights under
            "state_dict" or "model" is unwrapped; a "module." prefix (DataParallel) is stripped.
        strict_prefixes: if given, only the module's keys starting with one of these prefixes must
            be in the file (the rest keep their initialisation, e.g. a new head); by default every
            key is required.

    Raises:
        ConfigError: the file is missing or unreadable, a required key is missing from it, or a
            tensor's shape differs from the module's; the message names the file.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    expected = module.state_dict()
    _check_complete(path, state_dict, expected, strict_prefixes)
    _check_shapes(path, state_dict, expected)
    # strict=False: extra keys (fc.*, classifier.*) are dropped, and missing ones were checked above.
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a local state dict with torchvision key names (wrappers unwrapped, legacy keys renamed).

    Raises:
        ConfigError: missing, unreadable or non-state-dict file (the message names it).
    """
    return _normalise_keys(_read_raw_state_dict(Path(path)))


def _read_raw_state_dict(path: Path) -> Mapping[str, Tensor]:
    """Read a state dict from ``path``, unwrapping {"state_dict": ...} and {"model": ...}."""
    if not path.is_file():
        raise ConfigError(
            f"pretrained weights file {str(path)!r} does not exist; pass the path of a local "
            f"{'/'.join(_SUFFIXES)} file (seglab never downloads weights)."
        )
    if path.suffix not in _SUFFIXES:
        raise ConfigError(
            f"pretrained weights file {str(path)!r} has suffix {path.suffix!r}; expected one of {_SUFFIXES}."
        )
    if path.suffix == ".safetensors":
        try:
            loaded = load_file(path)
        except (OSError, RuntimeError, ValueError, SafetensorError) as error:
            raise ConfigError(f"cannot read pretrained weights file {str(path)!r}: {error}") from None
    else:
        loaded = torch_load(path, what="pretrained weights file")
    for wrapper_key in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper_key), Mapping):
            loaded = loaded[wrapper_key]
    if not isinstance(loaded, Mapping):
        raise ConfigError(
            f"pretrained weights file {str(path)!r} holds a {type(loaded).__name__}, not a state dict."
        )
    return {key: value for key, value in loaded.items() if isinstance(value, Tensor)}


def torch_load(path: str | Path, *, what: str) -> object:
    """``torch.load`` restricted to tensors and plain containers (a file cannot run code), failing in one line.

    Args:
        what: how the message names the file ("pretrained weights file", "training state").

    Raises:
        ConfigError: the file is refused because unpickling it would build objects or call functions
            (it names the first one and the safe way to convert it), or it is empty, truncated, corrupt or
            not written by ``torch.save``.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on files it then reads fine
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found:
            raise ConfigError(
                f"{what} {str(path)!r} is refused: loading it would run code or build objects ({found.group(1)}), "
                "and seglab reads tensors only; if you trust its source, load it with the code that wrote it and "
                "save its state dict with safetensors.torch.save_file(state_dict, 'weights.safetensors')"
            ) from None
        reason = "not a torch.save file of tensors (corrupt, or a plain pickle)"
    except EOFError:
        reason = "empty or cut short"
    except (OSError, RuntimeError, ValueError) as error:
        reason = f"truncated or corrupt ({' '.join(str(error).split())[:120]})"
    raise ConfigError(f"{what} {str(path)!r} cannot be read: {reason}") from None


def _normalise_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip a DataParallel "module." prefix and rename legacy torchvision DenseNet keys."""
    normalised: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        legacy = _LEGACY_DENSENET_KEY.match(key)
        normalised[legacy.group(1) + legacy.group(2) if legacy else key] = value
    return normalised


def _check_complete(
    path: Path,
    state_dict: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    strict_prefixes: Iterable[str] | None,
) -> None:
    """Raise ConfigError listing the required module keys that the file lacks."""
    prefixes = tuple(strict_prefixes) if strict_prefixes is not None else ("",)
    # BatchNorm fills in a missing counter itself; older checkpoints predate it.
    missing = [
        key
        for key in expected
        if key not in state_dict and key.startswith(prefixes) and not key.endswith("num_batches_tracked")
    ]
    if missing:
        raise ConfigError(
            f"pretrained weights file {str(path)!r} lacks {len(missing)} of the backbone's keys, e.g. "
            f"{missing[:_MAX_LISTED]}; the file has keys like {list(state_dict)[:3]}. Use a checkpoint "
            "of the same architecture with torchvision key names."
        )


def _check_shapes(path: Path, state_dict: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> None:
    """Raise ConfigError listing the keys whose tensor shapes differ between file and module."""
    mismatched = [
        f"{key}: file {list(state_dict[key].shape)} vs backbone {list(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state_dict and state_dict[key].shape != tensor.shape
    ]
    if mismatched:
        raise ConfigError(
            f"pretrained weights file {str(path)!r} has {len(mismatched)} tensors of the wrong shape: "
            f"{'; '.join(mismatched[:_MAX_LISTED])}. Is it a checkpoint of a different architecture?"
        )
