"""Recipes: load a YAML recipe by name or path, apply overrides, map it to builder arguments."""

from __future__ import annotations

import math
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


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (safe_load keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first}); keep one", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, *, where: str) -> Any:
    """Parse YAML safely (no tags that build objects, no duplicate keys); errors name ``where``:line:column.

    Raises:
        ConfigError: one line, e.g. "recipe.yaml:3:7: invalid YAML: expected ',' or '}', but got ':'".
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or str(exc)
        if "could not determine a constructor" in problem:
            problem = (problem.replace("could not determine a constructor for the tag", "the tag")
                       + " is refused (a recipe holds plain values only: no tags that build objects)")
        raise ConfigError(f"{where}{position}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the recipe: {getattr(exc, 'strerror', None) or exc}") from None
    data = parse_yaml(text, where=str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections (model, data, ...)")
    _check_finite(data, where=str(path))
    return data


def _check_finite(node: Any, *, where: str, field: str = "") -> None:
    """Refuse .inf and .nan anywhere in a recipe: no field means them, and they fail far from the cause."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{where}: {field or '(value)'} is {node}; give a finite number")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        _check_finite(value, where=where, field=f"{field}.{key}" if field else str(key))


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
    value = parse_yaml(raw, where=f"override {override!r}")
    _check_finite(value, where=f"override {override!r}", field=key.strip())
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
