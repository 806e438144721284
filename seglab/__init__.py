"""seglab: the CNN segmentation models of the survey behind one API."""

from seglab.registry import ModelSpec, create_model, list_models, model_spec

__version__ = "0.1.0"
__all__ = ["ModelSpec", "create_model", "list_models", "model_spec", "load_recipe", "__version__"]


def load_recipe(name_or_path: str, overrides: list[str] | None = None):  # noqa: ANN201
    """Load a recipe by name or YAML path, applying ``key=value`` overrides (see seglab.recipes)."""
    from seglab.recipes import load_recipe as _load

    return _load(name_or_path, overrides=overrides)
