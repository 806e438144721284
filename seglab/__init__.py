"""seglab: the CNN segmentation models of the survey behind one API."""

from seglab.api import Predictor, load, save
from seglab.registry import ModelSpec, create_model, list_models, model_spec

__version__ = "0.1.0"
__all__ = ["ModelSpec", "Predictor", "create_model", "list_models", "load", "load_recipe", "model_spec", "save",
           "__version__"]


def load_recipe(name_or_path: str, overrides: list[str] | None = None):  # noqa: ANN201
    """Load a recipe by name or YAML path, applying ``key=value`` overrides (see seglab.recipes)."""
    from seglab.recipes import load_recipe as _load

    return _load(name_or_path, overrides=overrides)
