"""Published recipes against the survey's transcription (shared/survey/tables.yaml, Tables 1 and 5).

Every row has a recipe naming it in ``published.row``; each such recipe's optimiser, learning rate,
momentum, weight decay, batch, policy and the schedule the row's ``lr_note`` describes equal the
row, except the columns the recipe lists in ``published.deviations`` with the paper's reason.
A deviation that no longer differs is stale and fails too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import survey_tables_path
import yaml

import seglab
from seglab.engine.optim import lr_factor, resolve_schedule
from seglab.recipes import Recipe, list_recipes, load_recipe


@pytest.fixture(scope="module")
def rows() -> dict[str, tuple[int, dict[str, Any]]]:
    tables = yaml.safe_load(survey_tables_path().read_text())
    out = {row["model"]: (1, row) for row in tables["semantic"]}
    out.update({row["model"]: (5, row) for row in tables["instance"]})
    return out


PUBLISHED = {name: r for name in list_recipes() if not name.startswith("_") and (r := load_recipe(name)).published}


def _survey_batch(cell: Any) -> int | None:
    """Images per step in a batch cell: 20, "16 images, 2 per GPU" -> 16, "1 image per GPU, 8 GPUs" -> 8."""
    if isinstance(cell, int):
        return cell
    if not isinstance(cell, str):
        return None
    if m := re.match(r"(\d+) images? per GPU, (\d+) GPUs", cell):
        return int(m[1]) * int(m[2])
    if m := re.match(r"(\d+) images", cell):
        return int(m[1])
    return None


def _lr_at(recipe: Recipe, step: int) -> float:
    return recipe.optim.lr * lr_factor(resolve_schedule(recipe.schedule, iters_per_epoch=1), step)


def _lr_note_holds(note: str, recipe: Recipe) -> bool:
    """Check the schedule a survey ``lr_note`` describes; fail the test for a note no rule reads."""
    close = lambda a, b: a == pytest.approx(b, rel=1e-9)  # noqa: E731
    steps = resolve_schedule(recipe.schedule, iters_per_epoch=1).steps
    if m := re.fullmatch(r"([\d.e-]+) for (\d+)k iterations, then ([\d.e-]+) for (\d+)k", note):
        first, second = float(m[1]), float(m[3])
        n1, n2 = int(m[2]) * 1000, int(m[4]) * 1000
        return (close(_lr_at(recipe, 0), first) and close(_lr_at(recipe, n1 - 1), first)
                and close(_lr_at(recipe, n1), second) and close(_lr_at(recipe, n1 + n2 - 1), second)
                and steps == n1 + n2)
    if m := re.fullmatch(r"([\d.e-]+), reduced to ([\d.e-]+) after (\d+)k iterations", note):
        n = int(m[3]) * 1000
        return close(_lr_at(recipe, n - 1), float(m[1])) and close(_lr_at(recipe, n), float(m[2])) and steps > n
    if m := re.fullmatch(r"linear warm-up over (\d+)k iterations", note):
        n = int(m[1]) * 1000
        return recipe.schedule.warmup_steps == n and _lr_at(recipe, n // 2) < recipe.optim.lr
    deeplab = r"([\d.e-]+) for the final classification layer; multiplied by ([\d.]+) every (\d+) iterations"
    if m := re.fullmatch(deeplab, note):
        s = recipe.schedule
        top = max(recipe.optim.lr_mult.values(), default=1.0) * recipe.optim.lr
        return (close(top, float(m[1])) and s.policy == "step" and close(s.gamma, float(m[2]))
                and s.step_size == int(m[3]))
    pytest.fail(f"no rule reads the lr_note {note!r}; add one to {__file__}")


def _mismatches(recipe: Recipe, row: dict[str, Any]) -> dict[str, str]:
    """Columns of ``row`` the recipe does not reproduce, with what each side says."""
    out = {}
    checks = {
        "optimizer": (row.get("optimizer"), recipe.optim.name, lambda a, b: a.lower() == b),
        "lr": (row.get("lr"), recipe.optim.lr, lambda a, b: b == pytest.approx(a)),
        "momentum": (row.get("momentum"), recipe.optim.momentum, lambda a, b: b == pytest.approx(a)),
        "weight_decay": (row.get("weight_decay"), recipe.optim.weight_decay,
                         lambda a, b: any(b == pytest.approx(x) for x in (a if isinstance(a, list) else [a]))),
        "batch": (_survey_batch(row.get("batch")), recipe.data.batch_size, lambda a, b: a == b),
    }
    for column, (survey, ours, same) in checks.items():
        if survey is not None and not same(survey, ours):
            out[column] = f"survey {survey!r}, recipe {ours!r}"
    policy = row.get("lr_policy")
    if policy is not None:
        s = recipe.schedule
        numbers = {k: v for k, v in policy.items() if k != "name"}
        if s.policy != policy["name"] or any(getattr(s, k) != pytest.approx(v) for k, v in numbers.items()):
            out["lr_policy"] = f"survey {policy!r}, recipe {s.policy} (power {s.power}, gamma {s.gamma})"
    if row.get("lr_note") and not _lr_note_holds(row["lr_note"], recipe):
        out["lr_note"] = f"survey {row['lr_note']!r}, recipe schedule {recipe.schedule!r}"
    return out


def test_every_survey_row_has_a_published_recipe(rows: dict[str, tuple[int, dict[str, Any]]]) -> None:
    covered = {r.published.row for r in PUBLISHED.values()}
    missing = sorted(set(rows) - covered)
    assert not missing, f"survey rows without a recipe (published.row): {missing}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_recipe_matches_its_row(name: str, rows: dict[str, tuple[int, dict[str, Any]]]) -> None:
    recipe = PUBLISHED[name]
    published = recipe.published
    assert published.row in rows, f"{name}: published.row {published.row!r} is not a row of tables.yaml"
    table, row = rows[published.row]
    assert published.table == table, f"{name}: row {published.row!r} is in Table {table}, not {published.table}"
    mismatches = _mismatches(recipe, row)
    undeclared = {c: m for c, m in mismatches.items() if c not in published.deviations}
    assert not undeclared, f"{name} differs from the survey without a reason in published.deviations: {undeclared}"
    stale = sorted(set(published.deviations) - set(mismatches))
    assert not stale, f"{name}: published.deviations {stale} no longer differ from the survey; remove them"
    if isinstance(row.get("batch"), str) or row.get("batch") is None:
        cell = row.get("batch")
        assert published.batch_note, f"{name}: say how the survey's batch cell {cell!r} maps to data.batch_size"


@pytest.mark.parametrize("name", sorted(n for n, r in PUBLISHED.items() if r.published.table == 1))
def test_semantic_recipe_builds_its_rows_model(name: str) -> None:
    recipe = PUBLISHED[name]
    assert recipe.model.name in seglab.list_models(), f"{name}: model {recipe.model.name!r} is not registered"
    assert seglab.model_spec(recipe.model.name).survey_row == recipe.published.row


def test_fcn_weight_decay_is_the_papers_not_the_surveys_reading() -> None:
    # The survey's 0.0016 / 0.0625 are 5^-4 / 2^-4; the FCN paper's "5^-4 or 2^-4" means 5e-4 or 2e-4.
    recipe = PUBLISHED["fcn8s_voc2012"]
    assert recipe.optim.weight_decay == 5e-4 and "weight_decay" in recipe.published.deviations
    assert 5**-4 == pytest.approx(0.0016) and 2**-4 == 0.0625


def test_variants_inherit_the_published_solver() -> None:
    for variant, base in [("fcn16s_voc2012", "fcn8s_voc2012"), ("fc_densenet56_camvid", "fc_densenet103_camvid")]:
        a, b = PUBLISHED[variant], PUBLISHED[base]
        assert a.model.name != b.model.name
        assert (a.optim, a.schedule, a.published) == (b.optim, b.schedule, b.published)


def test_lr_note_rules_read_the_survey_values() -> None:
    # Hand-worked: MNC's 1e-3 for 32k then 1e-4 for 8k is a multistep at 32000 of 40000.
    mnc = PUBLISHED["mnc_voc2012"]
    assert [_lr_at(mnc, s) for s in (0, 31999, 32000, 39999)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    assert _lr_note_holds("1e-3 for 32k iterations, then 1e-4 for 8k", mnc)
    assert not _lr_note_holds("1e-3 for 30k iterations, then 1e-4 for 10k", mnc)
    deeplab = PUBLISHED["deeplabv1_voc2012"]
    assert _lr_at(deeplab, 2000) == pytest.approx(1e-4) and deeplab.optim.lr_mult == {"fc8": 10.0}
