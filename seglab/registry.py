"""Model registry: builders and their ModelSpec metadata, looked up by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ConfigDict, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter, ValidationError
from torch import nn

from seglab.errors import ConfigError, closest

Task = Literal["semantic", "instance", "panoptic"]


@dataclass(frozen=True)
class ModelSpec:
    """What seglab knows about a registered model.

    Args:
        task: "semantic", "instance" or "panoptic".
        paper: title of the paper the model comes from.
        arxiv: arXiv id of that paper.
        year: publication year (as in the survey's tables).
        survey_row: the row of the survey's tables (shared/survey/tables.yaml `model:`).
        input_multiple: the model pads inputs internally to a multiple of this (informational).
        min_size: smallest input side the model accepts.
        exportable: whether ONNX export is supported.
        export_note: why not, when ``exportable`` is False (``seglab export`` prints it).
        loss_terms: the names of the loss terms ``model(images, targets)`` returns, where they do
            not come from the recipe's ``loss`` section (instance models; the contract test checks them).
        test_kwargs: small builder settings for the contract tests.
        reference_params: parameter count the paper reports, with `reference_kwargs` to build it.
        outputs: "instances" (labelled detections, scored by COCO AP) or "proposals" (class-agnostic
            ranked masks, labels all 1, scored by proposal recall AR@10/100/1000: DeepMask, SharpMask).
    """

    task: Task
    paper: str
    arxiv: str
    year: int
    survey_row: str
    input_multiple: int = 1
    min_size: int = 1
    exportable: bool = True
    export_note: str = ""
    loss_terms: tuple[str, ...] = ()
    test_kwargs: dict[str, Any] = field(default_factory=dict)
    reference_params: float | None = None
    reference_kwargs: dict[str, Any] = field(default_factory=dict)
    outputs: Literal["instances", "proposals"] = "instances"
    name: str = ""


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_SPECS: dict[str, ModelSpec] = {}


def register_model(
    spec: ModelSpec, *, name: str | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder under ``name`` (default: its function name) with ``spec``.

    Variants of one builder register as ``register_model(spec, name="fcn8s_vgg16")(partial(...))``.
    """

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        nonlocal name
        name = name or builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _SPECS[name] = replace(spec, name=name)
        return builder

    return wrap


def _ensure_loaded() -> None:
    import seglab.models  # noqa: F401  (registers every model)


def _lookup(name: str) -> str:
    _ensure_loaded()
    if name not in _BUILDERS:
        hint = closest(name, _BUILDERS)
        raise ConfigError(
            f"unknown model {name!r}; {hint + ' ' if hint else ''}run `seglab models` to list them"
        )
    return name


def create_model(name: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``num_classes`` outputs.

    Keyword arguments go to the model's builder. They are checked against its signature first, so
    an unknown or missing argument raises ConfigError naming the model and the argument, while an
    error raised inside a build is reported as what it is.
    """
    builder = _BUILDERS[_lookup(name)]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    signature = inspect.signature(builder)
    try:
        signature.bind(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        valid = [k for k, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY and k != "num_classes"]
        unknown = [k for k in kwargs if k not in signature.parameters]
        hint = closest(unknown[0], valid) if unknown else ""
        raise ConfigError(
            f"{name}: {exc}; {hint + ' ' if hint else ''}its arguments are {', '.join(valid) or '(none)'}"
        ) from None
    for key, value in kwargs.items():
        _check_kwarg_type(name, builder, key, value)
    model = builder(num_classes=num_classes, **kwargs)
    model.spec = _SPECS[name]
    # how to build it again (seglab.save writes it to config.json; seglab.load replaces it by the whole file)
    model.seglab_config = {"model": name, "num_classes": num_classes, "model_kwargs": dict(kwargs)}
    return model


def _check_kwarg_type(name: str, builder: Callable[..., nn.Module], key: str, value: Any) -> None:
    """Raise ConfigError naming ``model.kwargs.<key>`` when ``value`` cannot be the builder's annotated type.

    A recipe gives builder arguments as YAML, so ``base_channels: "wide"`` would otherwise fail deep in the
    build with an unrelated message. Values are checked as pydantic would (an int for a float, a list for a
    tuple pass) and handed to the builder unchanged; an annotation pydantic cannot check is skipped.
    """
    adapter = _kwarg_adapter(builder, key)
    if adapter is None:
        return
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        expected = getattr(_type_hints(builder).get(key), "__name__", None) or str(_type_hints(builder).get(key))
        reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ConfigError(f"model.kwargs.{key}: {name} expects {expected}, got {value!r} ({reason})") from None


@functools.lru_cache(maxsize=None)
def _type_hints(builder: Callable[..., nn.Module]) -> dict[str, Any]:
    """The builder's annotations, resolved one by one (one unresolvable annotation skips only its argument)."""
    target = builder
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(target)
    hints = {}
    for key, parameter in inspect.signature(builder).parameters.items():
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty:
            continue
        try:
            hints[key] = eval(annotation, target.__globals__) if isinstance(annotation, str) else annotation  # noqa: S307
        except Exception:  # noqa: BLE001 - e.g. a name imported only for type checking
            continue
    return hints


@functools.lru_cache(maxsize=None)
def _kwarg_adapter(builder: Callable[..., nn.Module], key: str) -> TypeAdapter | None:
    hint = _type_hints(builder).get(key)
    if hint is None or hint is Any:
        return None
    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        return None


def model_spec(name: str) -> ModelSpec:
    """Return the ModelSpec of a registered model."""
    return _SPECS[_lookup(name)]


def model_defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of a registered model's builder (``{"backbone": "resnet101", ...}``)."""
    signature = inspect.signature(_BUILDERS[_lookup(name)])
    return {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}


def list_models(task: str | None = None) -> list[str]:
    """Names of registered models, optionally only those of one task."""
    _ensure_loaded()
    if task is not None and task not in ("semantic", "instance", "panoptic"):
        raise ConfigError(f"unknown task {task!r}; expected semantic, instance or panoptic")
    return sorted(n for n, s in _SPECS.items() if task is None or s.task == task)
