"""`seglab tables` against the survey's transcription (shared/survey/tables.yaml) and fixture runs.

Tables 1 and 5 are parsed back from the regenerated rows and compared with the transcription's
cells (a footnoted cell must name the recipe's declared deviation); the descriptive columns of
every row's primary recipe must equal the transcription; Tables 4 and 8 are fed run records
written in tmp_path in the format `seglab bench --train` writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import survey_tables_path
import yaml
from typer.testing import CliRunner

from seglab.cli.app import app
from seglab.errors import ConfigError, DataError, InputError
from seglab.recipes import load_recipe
from seglab.recipes.schema import DESCRIPTIVE_COLUMNS
from seglab.registry import list_models
from seglab.tables import (
    NO_RUN,
    PublishedRecipe,
    SurveyTable,
    build_table,
    build_tables,
    load_runs,
    primary_recipes,
    published_recipes,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def survey() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load(survey_tables_path().read_text())


@pytest.fixture(scope="module")
def tables() -> dict[int, SurveyTable]:
    """Tables 1-3 and 5-7 (no run records involved), built once."""
    return {t.number: t for t in build_tables([1, 2, 3, 5, 6, 7], runs=[])}


def _as_transcribed(items: list[str] | None) -> list[Any] | None:
    """``items`` as the transcription's unquoted YAML flow sequences parse them.

    tables.yaml writes ``[..., pyramid pooling module with bins 1,2,3,6]`` unquoted, so YAML splits
    that cell at every comma (``"... bins 1", 2, 3, 6``); the recipes quote the cell as printed.
    Splitting our items at commas not followed by a space reproduces the transcription's reading.
    """
    if items is None:
        return None
    pieces = [p for item in items for p in re.split(r",(?! )", item)]
    return [int(p) if p.isdigit() else p for p in pieces]


def _survey_batch(cell: Any) -> int | None:
    """Images per step in a batch cell: 20, "16 images, 2 per GPU" -> 16, "1 image per GPU, 8 GPUs" -> 8."""
    if isinstance(cell, int) or cell is None:
        return cell
    if m := re.match(r"(\d+) images? per GPU, (\d+) GPUs", cell):
        return int(m[1]) * int(m[2])
    return int(re.match(r"(\d+) images", cell)[1])


def _as_list(value: Any) -> list[Any] | None:
    return value if value is None or isinstance(value, list) else [value]


def _number(cell: str) -> float:
    return float(cell.split()[0])


# ------------------------------------------------------------------------- primary recipes


def test_exactly_one_primary_recipe_per_survey_row(survey: dict[str, list[dict[str, Any]]]) -> None:
    rows = [r["model"] for r in survey["semantic"] + survey["instance"]]
    entries = published_recipes()
    for row in rows:
        primaries = [e.name for e in entries if e.row == row and e.primary]
        assert len(primaries) == 1, f"row {row!r}: primary recipes {primaries}"
    assert sorted(primary_recipes(entries)) == sorted(rows)


def test_variants_inherit_their_base_and_are_not_primary() -> None:
    entries = {e.name: e for e in published_recipes()}
    assert entries["fcn8s_voc2012"].variants == ("fcn16s_voc2012", "fcn32s_voc2012")
    assert entries["fc_densenet103_camvid"].variants == ("fc_densenet56_camvid", "fc_densenet67_camvid")
    assert "fcn16s_voc2012" not in entries and "unet_isbi2012_cpu" not in entries
    assert not entries["deeplabv2_voc2012"].primary and entries["deeplabv2_voc2012"].recipe.published.year is None


def test_two_primaries_or_none_for_a_row_fail() -> None:
    entry = next(e for e in published_recipes() if e.row == "PSPNet" and e.primary)
    twin = PublishedRecipe("pspnet_twin", entry.recipe, primary=True)
    with pytest.raises(ConfigError, match=r"'PSPNet' has two primary recipes \(pspnet_voc2012, pspnet_twin\)"):
        primary_recipes([entry, twin])
    orphan = PublishedRecipe("pspnet_voc2012", entry.recipe, primary=False)
    with pytest.raises(ConfigError, match=r"pspnet_voc2012\.yaml: survey row 'PSPNet' has no primary recipe"):
        primary_recipes([orphan])


def test_descriptive_columns_outside_a_primary_recipe_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump({
        "published": {"row": "PSPNet", "table": 1, "loss": "cross-entropy"},
        "model": {"name": "pspnet_resnet50"}, "data": {"dataset": "voc2012"},
    }))
    message = r"variant\.yaml: invalid recipe: published: .*loss belong to the row's primary"
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)
    path.write_text(yaml.safe_dump({
        "published": {"row": "PSPNet", "table": 1, "primary": True, "year": 2017, "ref": 90, "features": [],
                      "results": [{"dataset": "VOC", "miou": "85.4"}]},
        "model": {"name": "pspnet_resnet50"}, "data": {"dataset": "voc2012"},
    }))
    with pytest.raises(ConfigError, match=r"published\.results: .*results\[0\]\.miou must be a number"):
        load_recipe(path)


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_descriptive_columns_equal_the_transcription(task: str, survey: dict[str, list[dict[str, Any]]]) -> None:
    primaries = primary_recipes()
    for row in survey[task]:
        published = primaries[row["model"]].recipe.published
        assert published.table == (1 if task == "semantic" else 5)
        for column in DESCRIPTIVE_COLUMNS:
            ours = getattr(published, column)
            if column in ("base_network", "features"):
                ours = _as_transcribed(ours)
            assert ours == row.get(column), f"{row['model']}: published.{column} {ours!r} != {row.get(column)!r}"


def test_as_transcribed_reproduces_the_yaml_comma_split() -> None:
    assert _as_transcribed(["a, b", "bins 1,2,3,6", "4D (V,U,H,W) x"]) == [
        "a, b", "bins 1", 2, 3, 6, "4D (V", "U", "H", "W) x"]


# -------------------------------------------------------------------- Tables 1 and 5 (solver)


def _check_solver_table(table: SurveyTable, rows: list[dict[str, Any]]) -> None:
    by_label = {f"{r['model']} [{r['ref']}]": r for r in rows}
    assert set(line["model"] for line in table.rows) == set(by_label)
    for line in table.rows:
        row, recipe = by_label[line["model"]], line["recipe"].split()[0]
        expected = {
            "optimizer": (row.get("optimizer"), lambda cell, v: cell.split()[0].lower() == v.lower()),
            "batch": (_survey_batch(row.get("batch")), lambda cell, v: int(cell.split()[0]) == v),
            "lr": (row.get("lr"), lambda cell, v: _number(cell) == pytest.approx(v)),
            "momentum": (row.get("momentum"), lambda cell, v: _number(cell) == pytest.approx(v)),
            "weight decay": (_as_list(row.get("weight_decay")),  # FCN's cell is "0.0016 or 0.0625"
                             lambda cell, v: any(_number(cell) == pytest.approx(x) for x in v)),
        }
        for column, (value, same) in expected.items():
            cell = line[column]
            footnotes = [int(n) for n in re.findall(r"\[(\d+)\]", cell)]
            if footnotes:  # a declared deviation: its note names this recipe and column
                assert any(table.notes[n - 1].startswith(f"{recipe}, {column.replace(' ', '_')} differs")
                           for n in footnotes), f"{recipe}: footnote {footnotes} of {column} names another deviation"
            elif value is not None:
                assert same(cell, value), f"{recipe} {column}: table shows {cell!r}, survey {value!r}"
        policy = row.get("lr_policy")
        if policy is not None and not re.search(r"\[\d+\]", line["lr policy"]):
            if policy["name"] == "poly":
                assert line["lr policy"].startswith("poly (power ")
            else:
                assert line["lr policy"].startswith(f"x{policy['gamma']:g} per epoch")


def test_table_1_is_the_semantic_solvers(tables: dict[int, SurveyTable], survey: dict[str, Any]) -> None:
    table = tables[1]
    _check_solver_table(table, survey["semantic"])
    fcn = next(line for line in table.rows if line["recipe"].startswith("fcn8s_voc2012"))
    assert fcn == {
        "model": "FCN-VGG16 [78]", "recipe": "fcn8s_voc2012 (also fcn16s_voc2012, fcn32s_voc2012)",
        "optimizer": "SGD", "batch": "20 \u2014 20 whole images per SGD step (sec. 4.3 'Optimization')",
        "lr": "0.0001 (x2 for biases)", "momentum": "0.9", "weight decay": "0.0005 [1]",
        "lr policy": "constant over 100000 iterations",
    }
    assert table.notes[0].startswith("fcn8s_voc2012, weight_decay differs from the survey: the survey prints 0.0016")
    deeplab = next(line for line in table.rows if line["recipe"] == "deeplabv1_voc2012")
    assert deeplab["lr"] == "0.001 (x10 for fc8; x2 for biases)"
    assert deeplab["lr policy"] == "x0.1 every 2000 of 6000 iterations"  # survey: x0.1 every 2000 iterations
    assert [line["model"] for line in table.rows][:2] == ["FCN-VGG16 [78]", "DeepLab [82]"]  # oldest first


def test_table_5_is_the_instance_solvers(tables: dict[int, SurveyTable], survey: dict[str, Any]) -> None:
    _check_solver_table(tables[5], survey["instance"])
    mask_rcnn = next(line for line in tables[5].rows if line["recipe"] == "mask_rcnn_coco")
    assert mask_rcnn["lr policy"] == "x0.1 at 120000 of 160000 iterations, linear warm-up over 500 iterations [1]"
    assert mask_rcnn["batch"].startswith("16 \u2014 survey: 16 images per step")


# ------------------------------------------------------------- Tables 2/3 and 6/7 (descriptive)


def test_tables_2_and_3_show_the_survey_beside_the_code(tables: dict[int, SurveyTable]) -> None:
    t2 = {line["model"]: line for line in tables[2].rows}
    assert t2["SegNet [88]"]["pre-processing"] == "local contrast normalization of the RGB input"
    assert t2["SegNet [88]"]["seglab"] == (
        "segnet_vgg16, its own encoder; data: camvid train, local_contrast_norm; "
        "loss: ce, class weights (segnet_camvid)")
    assert t2["FCN-VGG16 [78]"]["base network"] == "AlexNet, VGG16, GoogLeNet"
    assert t2["FCN-VGG16 [78]"]["pre-processing"] == "-"  # the survey's empty cell
    psp = t2["PSPNet [90]"]["seglab"]
    assert "backbone resnet101 (builder default)" in psp and "loss: ce, aux_weight 0.4" in psp
    t3 = {line["model"]: line for line in tables[3].rows}
    assert t3["FCN-VGG16 [78]"]["seglab"] == "fcn16s_vgg16, fcn32s_vgg16, fcn8s_vgg16 (arXiv 1411.4038)"
    assert t3["PSPNet [90]"]["important features"].endswith("pyramid pooling module with bins 1,2,3,6")


def test_tables_6_and_7_mark_unregistered_instance_models(tables: dict[int, SurveyTable]) -> None:
    t6 = {line["model"]: line for line in tables[6].rows}
    assert t6["Mask R-CNN [20]"]["loss"].startswith("multi-task: log loss (class)")
    assert t6["SDS [127]"]["base network"] == "-"
    for line in tables[6].rows + tables[7].rows:
        model = re.split(r"[:, ]", line["seglab"])[0]
        if model not in list_models():
            assert line["seglab"] == f"{model}: not registered yet"
    assert t6["Mask R-CNN [20]"]["seglab"] == (
        "mask_rcnn_resnet50_fpn, backbone resnet50 (builder default); data: coco train, scale_jitter, hflip; "
        "loss: rpn_objectness + rpn_box + cls + box_reg + mask (mask_rcnn_coco)")


# -------------------------------------------------------------------- Tables 4 and 8 (results)


def _write_record(folder: Path, recipe: str, **fields: Any) -> Path:
    folder.mkdir(parents=True)
    record = {"recipe_name": recipe, "recipe": load_recipe(recipe).model_dump(mode="json"), "steps": 200,
              "seconds": 125.0, "torch": "2.4.0", "threads": 2, **fields}
    (folder / "bench.json").write_text(json.dumps(record))
    return folder / "bench.json"


def test_table_4_puts_our_run_beside_the_paper(tmp_path: Path) -> None:
    _write_record(tmp_path / "fcn8s_vgg16", "fcn8s_camvid_cpu", miou=0.4321, pixel_acc=0.8)
    (tmp_path / "bench.json").write_text(json.dumps({"title": "seglab bench", "rows": []}))  # the table: skipped
    table = build_table(4, runs=[tmp_path, tmp_path / "fcn8s_vgg16"])  # found twice, listed once
    fcn = [line for line in table.rows if line["model"] == "FCN-VGG16 [78]"]
    assert fcn == [{
        "model": "FCN-VGG16 [78]", "year": "2014", "paper (survey)": "PASCAL VOC 2012: mIoU 62.2%",
        "seglab run": "fcn8s_vgg16 (fcn8s_camvid_cpu)", "dataset": "camvid val",
        "ours": "mIoU 43.2%, pixel acc. 80.0%", "budget": "200 steps x 4 at 120x160",
        "hardware": "CPU, 2 threads", "time": "2.1 min",
    }]
    others = [line for line in table.rows if line["model"] != "FCN-VGG16 [78]"]
    assert others and all(line["seglab run"] == NO_RUN and line["ours"] == "-" for line in others)
    assert str(tmp_path) in table.notes[0]
    markdown = table.to_markdown()
    assert "| FCN-VGG16 [78] | 2014 | PASCAL VOC 2012: mIoU 62.2% | fcn8s_vgg16 (fcn8s_camvid_cpu) |" in markdown


def test_table_8_matches_runs_by_their_published_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seglab.tables

    registered = seglab.tables.list_models()
    assert "sds_alexnet" in registered
    # as if SDS were not built: a row without a model says so
    monkeypatch.setattr(seglab.tables, "list_models", lambda task=None: [m for m in registered if m != "sds_alexnet"])
    _write_record(tmp_path / "mask_rcnn", "mask_rcnn_coco", steps=50, seconds=30.0, ap=0.125, threads=1)
    table = build_table(8, runs=[tmp_path])
    line = next(line for line in table.rows if line["model"] == "Mask R-CNN [20]")
    assert line["paper (survey)"] == "COCO test: AP50 60%, AP75 39.4%"
    assert (line["ours"], line["budget"], line["hardware"], line["time"]) == (
        "AP 12.5%", "50 steps x 16 at shorter side 800", "CPU, 1 thread", "30 s")
    sds = next(line for line in table.rows if line["model"].startswith("SDS"))
    assert sds["seglab run"] == "sds_alexnet: not registered yet", "a row without a model says so, not 'no run'"


def test_bad_run_records_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "a" / "bench.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(DataError, match=re.escape(str(bad)) + ": cannot read the run record"):
        load_runs([tmp_path])
    bad.write_text(json.dumps({"recipe": {"model": {"name": "unet"}, "data": {"dataset": "camvid"}}}))
    with pytest.raises(DataError, match=re.escape(str(bad)) + ": run record has no field 'steps'"):
        load_runs([tmp_path])
    with pytest.raises(InputError, match="--runs '.*missing' is not a directory"):
        load_runs([tmp_path / "missing"])
    with pytest.raises(InputError, match="--table 9: the survey has Tables 1-8"):
        build_tables([1, 9], runs=[])


# ----------------------------------------------------------------------------------------- CLI


def test_cli_table_1_lists_every_semantic_row(survey: dict[str, Any]) -> None:
    result = runner.invoke(app, ["tables", "--table", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("### Table 1: Optimization details of semantic segmentation models")
    for row in survey["semantic"]:
        assert f"| {row['model']} [{row['ref']}] |" in result.output
    assert "Table 2" not in result.output


def test_cli_json_and_runs(tmp_path: Path) -> None:
    _write_record(tmp_path / "unet", "unet_camvid_cpu", miou=0.25, pixel_acc=0.7)
    result = runner.invoke(app, ["tables", "-t", "4", "-t", "7", "--runs", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [t["table"] for t in data] == [4, 7]
    unet = next(line for line in data[0]["rows"] if line["model"] == "U-Net [86]")
    assert unet["ours"] == "mIoU 25.0%, pixel acc. 70.0%"
    bad = runner.invoke(app, ["tables", "--table", "0"])
    assert bad.exit_code != 0 and isinstance(bad.exception, InputError)


def test_cli_recipes_still_lists_the_published_recipes() -> None:
    result = runner.invoke(app, ["recipes", "--format", "json"])
    assert result.exit_code == 0, result.output
    names = {r["name"] for r in json.loads(result.output)}
    assert {"fcn8s_voc2012", "pspnet_voc2012", "mask_rcnn_coco"} <= names
