"""Recipes: load a YAML recipe by name or path, apply overrides, map it to builder arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from seglab.errors import ConfigError, closest
from seglab.recipes.schema import Recipe

RECIPE_DIR = Path(__file__).parent

__all__ = ["Recipe", "list_recipes", "load_recipe", "model_kwargs", "recipe_path", "recipes_for"]


def list_recipes() -> list[str]:
    """Names of the recipes shipped with seglab (shared ``_``-prefixed bases excluded)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def recipes_for(model: str) -> list[str]:
    """Names of the shipped recipes whose ``model.name`` (after their ``base:``) is ``model``."""
    return [name for name in list_recipes() if _merged(recipe_path(name)).get("model", {}).get("name") == model]


def recipe_path(name_or_path: str | Path) -> Path:
    """Resolve a recipe name ("unet_isbi2012_cpu") or a YAML path to a file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"recipe file {str(path)!r} does not exist")
        return path
    candidate = RECIPE_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        hint = closest(str(name_or_path), list_recipes())
        raise ConfigError(
            f"unknown recipe {str(name_or_path)!r}; {hint + ' ' if hint else ''}run `seglab recipes` to list them"
        )
    return candidate


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections (model, data, ...)")
    return data


def _merged(path: Path) -> dict[str, Any]:
    """The raw recipe at ``path`` with its ``base:`` recipe merged under it (one level at most)."""
    data = _read_yaml(path)
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    base = _read_yaml(recipe_path(base_name))
    if "base" in base:
        raise ConfigError(f"{path}: base recipe {base_name!r} has a base of its own; one level at most")
    return _merge(base, data)


def _merge(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``delta`` into ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``section.field=value`` override (value parsed as YAML) to the raw recipe dict."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key=value, e.g. optim.lr=0.005")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: cannot parse the value: {exc}") from exc
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _format_errors(where: str, error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(recipe)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see seglab/recipes/schema.py)"
        lines.append(f"{field}: {msg}")
    return f"{where}: invalid recipe: " + "; ".join(lines)


def load_recipe(name_or_path: str | Path | None, *, overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe.

    ``None`` starts from the schema's defaults, so the overrides must then name at least
    ``model.name`` and ``data.dataset``.

    A recipe may name one ``base:`` recipe whose values it changes (one level only).
    ``overrides`` are ``key=value`` strings (``optim.lr=0.005``) validated by the same schema.

    Raises:
        ConfigError: unknown recipe, bad YAML, unknown or invalid field (the message names the file
            and the dotted field).
    """
    path = recipe_path(name_or_path) if name_or_path is not None else None
    data = _merged(path) if path is not None else {}
    for override in overrides or []:
        _apply_override(data, override)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        where = (str(path) if path else "recipe") + (
            " (with overrides " + ", ".join(overrides) + ")" if overrides else ""
        )
        raise ConfigError(_format_errors(where, exc)) from None


def model_kwargs(recipe: Recipe) -> dict[str, Any]:
    """The builder keyword arguments a recipe implies (model.kwargs plus loss settings)."""
    kwargs = dict(recipe.model.kwargs)
    if recipe.loss.class_weights is not None:
        kwargs["class_weights"] = list(recipe.loss.class_weights)
    if recipe.loss.aux_weight is not None:
        kwargs["aux_weight"] = recipe.loss.aux_weight
    if recipe.loss.name != "ce":
        kwargs["loss"] = recipe.loss.name
    if recipe.loss.options():
        kwargs["loss_options"] = recipe.loss.options()
    return kwargs
