"""The survey's Tables 1-8 rebuilt from seglab's recipes, registry and result files.

Survey: "A survey on deep learning-based CNN segmentation" (shared/survey/survey.txt), Tables 1-4
(semantic) and 5-8 (instance). Nothing is read from the transcription (shared/survey/tables.yaml);
tests compare the output with it:

- Tables 1 and 5 (optimisation) show the values the published recipes really train with
  (``optim``, ``schedule``, ``data.batch_size``), one line per recipe that declares its own
  ``published:`` block; where a recipe knowingly differs from the survey the cell carries a
  footnote with the reason from ``published.deviations``.
- Tables 2/6 (base network, pre-processing, loss) and 3/7 (features) print the survey's cells as
  transcribed in each row's primary recipe, beside a ``seglab`` column derived from the code: the
  registered model, its backbone (the recipe's ``model.kwargs`` or the builder's default), the
  data pipeline and the loss terms.
- Tables 4/8 (results) put the paper's numbers beside every ``bench.json`` run record found
  (``seglab bench --train`` writes them), with the run's dataset, budget, hardware and time.
  A row without a run says so; no number is ever filled in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seglab.formatting import markdown_table
from seglab.errors import ConfigError, DataError, InputError
from seglab.recipes import Recipe, list_recipes, load_recipe, recipe_path
from seglab.registry import list_models, model_defaults, model_spec

__all__ = [
    "DEFAULT_RUNS",
    "TABLE_TITLES",
    "PublishedRecipe",
    "RunRecord",
    "SurveyTable",
    "build_table",
    "build_tables",
    "load_runs",
    "primary_recipes",
    "published_recipes",
]

DEFAULT_RUNS = Path("runs/bench")  # where `seglab bench --train` writes its records
RESULT_FILE = "bench.json"
NO_RUN = "no run yet"
NOT_REGISTERED = "not registered yet"

# The survey's captions, shortened where they repeat "of different state-of-the-art".
TABLE_TITLES = {
    1: "Optimization details of semantic segmentation models",
    2: "Base model, data pre-processing and loss function of semantic segmentation models",
    3: "Important features of semantic segmentation models",
    4: "Accuracy of semantic segmentation models (mIoU, percent)",
    5: "Optimization details of instance segmentation models",
    6: "Base model, data pre-processing and loss function of instance segmentation models",
    7: "Important features of instance segmentation models",
    8: "Accuracy of instance segmentation models (average precision by IoU threshold, percent)",
}
_TASK_TABLE_OF = {1: 1, 2: 1, 3: 1, 4: 1, 5: 5, 6: 5, 7: 5, 8: 5}  # table -> published.table of its task
_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
_METRICS = {"miou": "mIoU", "map": "mAP", "map50": "mAP@0.5", "map70": "mAP@0.7",
            "ap": "AP", "ap50": "AP50", "ap75": "AP75"}
# Which Table 1/5 column a deviation (seglab.recipes.schema.PUBLISHED_COLUMNS) marks.
_DEVIATION_COLUMN = {"optimizer": "optimizer", "batch": "batch", "lr": "lr", "momentum": "momentum",
                     "weight_decay": "weight decay", "lr_policy": "lr policy", "lr_note": "lr policy"}


@dataclass(frozen=True)
class PublishedRecipe:
    """A recipe that declares a survey row in its own file, with the variants inheriting it.

    Args:
        name: the recipe name (``fcn8s_voc2012``).
        recipe: the validated recipe.
        primary: whether its own file says ``published.primary: true``.
        variants: recipes naming it as ``base:`` that keep its ``published:`` block unchanged.
    """

    name: str
    recipe: Recipe
    primary: bool
    variants: tuple[str, ...] = ()

    @property
    def row(self) -> str:
        return self.recipe.published.row


@dataclass
class SurveyTable:
    """One regenerated table: rows of string cells, and footnotes the cells refer to as ``[n]``."""

    number: int
    title: str
    rows: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The table as GitHub Markdown: a heading, the table, then the numbered notes."""
        escaped = [{k: v.replace("|", "\\|") for k, v in row.items()} for row in self.rows]
        text = f"### Table {self.number}: {self.title}\n\n" + markdown_table(escaped)
        if self.notes:
            text += "\n" + "\n".join(f"[{i}] {note}  " for i, note in enumerate(self.notes, 1)) + "\n"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.number, "title": self.title, "rows": self.rows, "notes": self.notes}


@dataclass(frozen=True)
class RunRecord:
    """The fields of one ``bench.json`` run record that Tables 4 and 8 show.

    Args:
        path: the record file.
        recipe_name: the recipe trained.
        model: its ``model.name``.
        row: the survey row it belongs to (``published.row``, else the model's ``survey_row``).
        dataset: dataset and evaluation split, ``"camvid val"``.
        steps, batch_size: optimiser steps run and images per step.
        crop: training input size, ``"120x160"``.
        seconds: training wall time.
        hardware: ``"CPU, 2 threads"``.
        metrics: scores as fractions in [0, 1] (``miou``, ``pixel_acc``).
    """

    path: Path
    recipe_name: str
    model: str
    row: str | None
    dataset: str
    steps: int
    batch_size: int
    crop: str
    seconds: float
    hardware: str
    metrics: dict[str, float]


def published_recipes() -> list[PublishedRecipe]:
    """Every shipped recipe whose own file has a ``published:`` block, with its inheriting variants."""
    own: dict[str, PublishedRecipe] = {}
    variants: dict[str, list[str]] = {}
    for name in list_recipes():
        raw = yaml.safe_load(recipe_path(name).read_text()) or {}
        if raw.get("published"):
            primary = bool(raw["published"].get("primary", False))
            own[name] = PublishedRecipe(name=name, recipe=load_recipe(name), primary=primary)
        elif "published" not in raw and raw.get("base"):
            variants.setdefault(str(raw["base"]), []).append(name)
    for base, names in variants.items():
        if base in own:
            own[base] = PublishedRecipe(base, own[base].recipe, own[base].primary, tuple(sorted(names)))
    return list(own.values())


def primary_recipes(entries: Sequence[PublishedRecipe] | None = None) -> dict[str, PublishedRecipe]:
    """The one primary recipe of each survey row named by a published recipe, keyed by row, oldest first.

    Args:
        entries: the published recipes to look at (default: ``published_recipes()``).

    Raises:
        ConfigError: a row with two primary recipes, or with published recipes but no primary.
    """
    entries = published_recipes() if entries is None else entries
    primaries: dict[str, PublishedRecipe] = {}
    for entry in entries:
        if not entry.primary:
            continue
        if entry.row in primaries:
            raise ConfigError(
                f"survey row {entry.row!r} has two primary recipes ({primaries[entry.row].name}, {entry.name}): "
                "set published.primary: true in one of them only"
            )
        primaries[entry.row] = entry
    for entry in entries:
        if entry.row not in primaries:
            raise ConfigError(
                f"{recipe_path(entry.name)}: survey row {entry.row!r} has no primary recipe; set "
                "published.primary: true (with the row's descriptive columns) in one of its recipes"
            )
    return dict(sorted(primaries.items(), key=lambda kv: _chronological(kv[1])))


def _chronological(entry: PublishedRecipe) -> tuple[int, int]:
    p = entry.recipe.published
    return (p.year or 0, p.ref or 0)


def _rows_of(entries: Sequence[PublishedRecipe], number: int) -> list[tuple[str, PublishedRecipe]]:
    """(row, primary recipe) of the task of Table ``number``, oldest first."""
    table = _TASK_TABLE_OF[number]
    return [(row, e) for row, e in primary_recipes(entries).items() if e.recipe.published.table == table]


def _row_label(entry: PublishedRecipe) -> str:
    return f"{entry.row} [{entry.recipe.published.ref}]"


def _num(value: float) -> str:
    return f"{value:g}"


# ---------------------------------------------------------------- Tables 1 and 5: optimisation


def _lr_cell(recipe: Recipe) -> str:
    o = recipe.optim
    extras = [f"x{_num(m)} for {pattern}" for pattern, m in o.lr_mult.items()]
    if o.bias_lr_mult != 1:
        extras.append(f"x{_num(o.bias_lr_mult)} for biases")
    return _num(o.lr) + (f" ({'; '.join(extras)})" if extras else "")


def _policy_cell(recipe: Recipe) -> str:
    s = recipe.schedule
    unit = "iterations" if s.unit == "iter" else "epochs"
    shape = {
        "constant": f"constant over {s.steps}",
        "poly": f"poly (power {_num(s.power)}) over {s.steps}",
        "step": f"x{_num(s.gamma)} every {s.step_size} of {s.steps}",
        "multistep": f"x{_num(s.gamma)} at {', '.join(map(str, s.milestones))} of {s.steps}",
        "exponential": f"x{_num(s.gamma)} per {unit[:-1]} over {s.steps}",
    }[s.policy]
    parts = [f"{shape} {unit}"]
    if s.warmup_steps:
        parts.append(f"linear warm-up over {s.warmup_steps} {unit}")
    if s.scale != 1:
        parts.append(f"lengths x{_num(s.scale)}")
    return ", ".join(parts)


def _optimisation_table(number: int, entries: Sequence[PublishedRecipe]) -> SurveyTable:
    notes: list[str] = []
    rows = []
    by_row: dict[str, list[PublishedRecipe]] = {}
    for entry in entries:
        by_row.setdefault(entry.row, []).append(entry)
    for row, primary in _rows_of(entries, number):
        for entry in sorted(by_row[row], key=lambda e: (not e.primary, e.name)):
            r, p = entry.recipe, entry.recipe.published
            momentum = _num(r.optim.momentum) if r.optim.name in ("sgd", "rmsprop") else "-"
            cells = {
                "model": _row_label(primary),
                "recipe": entry.name + (f" (also {', '.join(entry.variants)})" if entry.variants else ""),
                "optimizer": _OPTIMIZERS[r.optim.name],
                "batch": str(r.data.batch_size) + (f" — {p.batch_note}" if p.batch_note else ""),
                "lr": _lr_cell(r),
                "momentum": momentum + (" (Nesterov)" if r.optim.nesterov else ""),
                "weight decay": _num(r.optim.weight_decay),
                "lr policy": _policy_cell(r),
            }
            order = list(cells)  # footnotes numbered left to right
            for column, reason in sorted(p.deviations.items(), key=lambda kv: order.index(_DEVIATION_COLUMN[kv[0]])):
                notes.append(f"{entry.name}, {column} differs from the survey: {reason}")
                cells[_DEVIATION_COLUMN[column]] += f" [{len(notes)}]"
            rows.append(cells)
    return SurveyTable(number, TABLE_TITLES[number], rows, notes)


# ------------------------------------------------------- Tables 2/6 and 3/7: descriptive columns


def _backbone(model: str, recipe: Recipe) -> str:
    defaults = model_defaults(model)
    if "backbone" in recipe.model.kwargs:
        return f"backbone {recipe.model.kwargs['backbone']}"
    if "backbone" in defaults:
        return f"backbone {defaults['backbone']} (builder default)"
    return "its own encoder"


def _size(value: Any) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, (list, tuple)) else f"{value}x{value}"


def _pipeline(recipe: Recipe) -> str:
    d = recipe.data
    steps = [f"{d.dataset} {d.train_split}"]
    if d.resize:
        steps.append(f"resize {_size(d.resize)}")
    if d.augment is not None:
        steps += [str(a["name"]) for a in d.augment]
    else:
        if d.scale_range:
            steps.append(f"scale {_num(d.scale_range[0])}-{_num(d.scale_range[1])}")
        if d.crop_size:
            steps.append(f"crop {_size(d.crop_size)}")
        if d.hflip:
            steps.append("hflip")
    return ", ".join(steps)


def _loss_terms(model: str, recipe: Recipe) -> str:
    if model_spec(model).loss_terms:  # the model's own terms (instance models), not the recipe's loss.name
        return " + ".join(term.removeprefix("loss_") for term in model_spec(model).loss_terms)
    weights = {k: v for k, v in model_defaults(model).items() if k.endswith("_weight") and v is not None}
    weights.update({k: v for k, v in recipe.model.kwargs.items() if k.endswith("_weight")})
    if recipe.loss.aux_weight is not None:
        weights["aux_weight"] = recipe.loss.aux_weight
    terms = [recipe.loss.name] + [f"{k} {_num(v)}" for k, v in weights.items()]
    if recipe.loss.class_weights is not None:
        terms.append("class weights")
    return ", ".join(terms)


def _code_summary(entry: PublishedRecipe) -> str:
    """What seglab trains for a row's primary recipe: model, backbone, data pipeline, loss."""
    recipe = entry.recipe
    model = recipe.model.name
    if model not in list_models():
        return f"{model}: {NOT_REGISTERED}"
    return (f"{model}, {_backbone(model, recipe)}; data: {_pipeline(recipe)}; "
            f"loss: {_loss_terms(model, recipe)} ({entry.name})")


def _models_of_row(row: str, fallback: str) -> str:
    """The registered models of a survey row with their papers' arXiv ids."""
    by_paper: dict[str, list[str]] = {}
    for name in list_models():
        spec = model_spec(name)
        if spec.survey_row == row:
            by_paper.setdefault(spec.arxiv, []).append(name)
    if not by_paper:
        return f"{fallback}: {NOT_REGISTERED}"
    return "; ".join(f"{', '.join(names)} (arXiv {arxiv})" for arxiv, names in by_paper.items())


def _text(value: str | None) -> str:
    return "-" if value is None else value


def _descriptive_table(number: int, entries: Sequence[PublishedRecipe]) -> SurveyTable:
    rows = []
    for _, entry in _rows_of(entries, number):
        p = entry.recipe.published
        if number in (2, 6):
            rows.append({
                "model": _row_label(entry),
                "base network": _text(", ".join(p.base_network) if p.base_network else None),
                "pre-processing": _text(p.preprocessing),
                "loss": _text(p.loss),
                "seglab": _code_summary(entry),
            })
        else:
            rows.append({
                "model": _row_label(entry),
                "important features": "; ".join(p.features or []) or "-",
                "seglab": _models_of_row(entry.row, entry.recipe.model.name),
            })
    return SurveyTable(number, TABLE_TITLES[number], rows)


# ------------------------------------------------------------------ Tables 4 and 8: results


def _paper_result(result: dict[str, Any]) -> str:
    scores = [f"{_METRICS.get(k, k)} {_num(v)}%" for k, v in result.items() if k not in ("dataset", "note")]
    if "note" in result:
        scores.append(str(result["note"]))
    return f"{result['dataset']}: {', '.join(scores)}"


def _field(record: dict[str, Any], path: Path, dotted: str, kind: type | tuple[type, ...]) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DataError(f"{path}: run record has no field {dotted!r}; rerun `seglab bench --train`")
        node = node[part]
    if not isinstance(node, kind) or isinstance(node, bool):
        expected = "a number" if isinstance(kind, tuple) else f"a {kind.__name__}"
        raise DataError(f"{path}: field {dotted!r} is {node!r}, expected {expected}")
    return node


def _crop_of(data: dict[str, Any]) -> str:
    for entry in data.get("augment") or []:
        if entry.get("name") == "random_crop" and "size" in entry:
            return _size(entry["size"])
        if entry.get("name") == "scale_jitter" and "short_side" in entry:
            low, high = entry["short_side"]
            return f"shorter side {low}" + (f"-{high}" if high != low else "")
    for key in ("crop_size", "resize"):
        if data.get(key):
            return _size(data[key])
    return "full images"


def _row_of_run(recipe: dict[str, Any], model: str) -> str | None:
    published = recipe.get("published") or {}
    if published.get("row"):
        return str(published["row"])
    return model_spec(model).survey_row if model in list_models() else None


def _read_record(path: Path) -> RunRecord | None:
    """One run record, or None for the table file `seglab bench` writes beside the runs."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the run record: {exc}") from None
    if isinstance(record, dict) and "rows" in record and "recipe" not in record:
        return None  # <out>/bench.json: the whole bench table, rebuilt from the per-model records
    if not isinstance(record, dict):
        raise DataError(f"{path}: a run record must be a JSON object with recipe, steps, seconds, miou")
    data = _field(record, path, "recipe.data", dict)
    model = _field(record, path, "recipe.model.name", str)
    split = (record["recipe"].get("eval") or {}).get("split") or data.get("val_split") or "val"
    metrics = {k: float(v) for k in ("miou", "pixel_acc", "ap", "ap50", "ap75")
               if isinstance(v := record.get(k), (int, float)) and not isinstance(v, bool)}
    threads = record.get("threads")
    device = str(record.get("device", "cpu")).upper()
    return RunRecord(
        path=path,
        recipe_name=str(record.get("recipe_name", path.parent.name)),
        model=model,
        row=_row_of_run(record["recipe"], model),
        dataset=f"{_field(record, path, 'recipe.data.dataset', str)} {split}",
        steps=_field(record, path, "steps", int),
        batch_size=_field(record, path, "recipe.data.batch_size", int),
        crop=_crop_of(data),
        seconds=float(_field(record, path, "seconds", (int, float))),
        hardware=f"{device}, {threads} thread{'s' if threads != 1 else ''}" if threads else device,
        metrics=metrics,
    )


def load_runs(dirs: Iterable[str | Path]) -> list[RunRecord]:
    """Every run record (``bench.json`` with a ``recipe``) under ``dirs``, each file once.

    Raises:
        InputError: a directory that does not exist.
        DataError: a record that is not valid JSON or lacks a field (the message names the file).
    """
    seen: set[Path] = set()
    runs = []
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise InputError(f"--runs {str(folder)!r} is not a directory; give the --out of `seglab bench --train`")
        for path in sorted(folder.rglob(RESULT_FILE)):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if (run := _read_record(path)) is not None:
                runs.append(run)
    return sorted(runs, key=lambda r: (r.model, r.recipe_name, str(r.path)))


def _ours(run: RunRecord) -> str:
    scores = [f"{_METRICS.get(k, k)} {100 * v:.1f}%" for k, v in run.metrics.items() if k != "pixel_acc"]
    if "pixel_acc" in run.metrics:
        scores.append(f"pixel acc. {100 * run.metrics['pixel_acc']:.1f}%")
    return ", ".join(scores) or "no score in the record"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _results_table(number: int, entries: Sequence[PublishedRecipe], runs: Sequence[RunRecord],
                   run_dirs: Sequence[Path]) -> SurveyTable:
    rows = []
    blank = {"seglab run": NO_RUN, "dataset": "-", "ours": "-", "budget": "-", "hardware": "-", "time": "-"}
    for row, entry in _rows_of(entries, number):
        p = entry.recipe.published
        paper = {"model": _row_label(entry), "year": str(p.year),
                 "paper (survey)": "; ".join(_paper_result(r) for r in p.results or []) or "-"}
        mine = [run for run in runs if run.row == row]
        for run in mine:
            rows.append(paper | {
                "seglab run": f"{run.model} ({run.recipe_name})",
                "dataset": run.dataset,
                "ours": _ours(run),
                "budget": f"{run.steps} steps x {run.batch_size} at {run.crop}",
                "hardware": run.hardware,
                "time": _duration(run.seconds),
            })
        if not mine:
            registered = entry.recipe.model.name in list_models()
            rows.append(paper | blank | {"seglab run": NO_RUN if registered else f"{entry.recipe.model.name}: "
                                                                                 f"{NOT_REGISTERED}"})
    where = ", ".join(map(str, run_dirs)) or f"no directory ({DEFAULT_RUNS} does not exist; see --runs)"
    notes = [f"ours: every run record ({RESULT_FILE}) under {where}, scored on the dataset and split in its "
             "row after the budget in its row; neither is the paper's setting, so the two numbers are not comparable"]
    return SurveyTable(number, TABLE_TITLES[number], rows, notes)



def build_table(number: int, *, runs: Sequence[str | Path] | None = None) -> SurveyTable:
    """Rebuild one of the survey's Tables 1-8.

    Args:
        number: 1-8.
        runs: directories searched for run records (Tables 4 and 8); ``None`` uses
            ``runs/bench`` when it exists.

    Raises:
        InputError: a table number outside 1-8 or a ``runs`` entry that is not a directory.
    """
    return build_tables([number], runs=runs)[0]


def build_tables(numbers: Iterable[int] | None = None, *,
                 runs: Sequence[str | Path] | None = None) -> list[SurveyTable]:
    """Rebuild the survey's tables ``numbers`` (default all, 1-8) in the order given."""
    numbers = list(numbers) if numbers is not None else sorted(TABLE_TITLES)
    bad = [n for n in numbers if n not in TABLE_TITLES]
    if bad:
        raise InputError(f"--table {bad[0]}: the survey has Tables 1-8")
    run_dirs = [Path(d) for d in runs] if runs is not None else ([DEFAULT_RUNS] if DEFAULT_RUNS.is_dir() else [])
    records = load_runs(run_dirs) if any(n in (4, 8) for n in numbers) else []
    entries = published_recipes()
    out = []
    for n in numbers:
        if n in (1, 5):
            out.append(_optimisation_table(n, entries))
        elif n in (4, 8):
            out.append(_results_table(n, entries, records, run_dirs))
        else:
            out.append(_descriptive_table(n, entries))
    return out
