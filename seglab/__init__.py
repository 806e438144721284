"""seglab: the CNN segmentation models of the survey behind one API.

The names below load on first use (PEP 562), so ``import seglab`` and ``seglab --help`` stay fast:
torch is imported by the first model, checkpoint or predictor.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_LAZY = {
    "ModelSpec": "seglab.registry", "create_model": "seglab.registry", "list_models": "seglab.registry",
    "model_spec": "seglab.registry", "Predictor": "seglab.api", "load": "seglab.api", "save": "seglab.api",
}
__all__ = sorted([*_LAZY, "load_recipe", "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def load_recipe(name_or_path: str, overrides: list[str] | None = None):  # noqa: ANN201
    """Load a recipe by name or YAML path, applying ``key=value`` overrides (see seglab.recipes)."""
    from seglab.recipes import load_recipe as _load

    return _load(name_or_path, overrides=overrides)
