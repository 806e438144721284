"""`seglab bench`: the rows it measures, the cached training records, the CLI table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import seglab.engine.train
from seglab.bench import cpu_recipe_for, measure_latency, run_bench
from seglab.cli.app import app
from seglab.errors import ConfigError

# A 2-step run on the synthetic data: the bench machinery without CamVid's cost.
SMOKE = ["data.dataset=synthetic", "data.batch_size=2", "schedule.steps=2", "data.kwargs={num_images: 4}"]


def test_every_semantic_model_has_its_cpu_recipe() -> None:
    assert cpu_recipe_for("unet") == "unet_camvid_cpu"
    assert cpu_recipe_for("pspnet_resnet101") == "pspnet_resnet101_camvid_cpu"
    assert cpu_recipe_for("no_such_model") is None


def test_latency_is_a_positive_median() -> None:
    assert 0 < measure_latency("fc_densenet56", size=(32, 32), repeats=1) < 60
    for precision in ("fp32", "off"):  # the fast paths of seglab predict, or the model as built
        assert 0 < measure_latency("fc_densenet56", size=(32, 32), repeats=1, precision=precision) < 60
    with pytest.raises(ConfigError, match="use one of"):
        measure_latency("fc_densenet56", size=(32, 32), repeats=1, precision="half")


def test_train_rows_are_cached_by_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = run_bench(["unet"], latency=False, train=True, out_dir=tmp_path, overrides=SMOKE, progress=False)
    row = rows[0]
    assert row.cpu_recipe == "unet_camvid_cpu"
    assert row.params_M == pytest.approx(31.03, abs=0.01)  # the paper configuration, not the CPU variant
    assert row.cpu_params_M == pytest.approx(7.76, abs=0.01)
    assert 0 <= row.miou <= 1 and 0 <= row.pixel_acc <= 1 and row.train_s > 0
    record = json.loads((tmp_path / "unet" / "bench.json").read_text())
    assert record["steps"] == 2 and record["recipe"]["data"]["dataset"] == "synthetic"

    def no_training(*args, **kwargs):
        raise AssertionError("a cached result must not be retrained")

    monkeypatch.setattr(seglab.engine.train, "train", no_training)
    again = run_bench(["unet"], latency=False, train=True, out_dir=tmp_path, overrides=SMOKE, progress=False)
    assert again[0].miou == row.miou
    with pytest.raises(AssertionError, match="must not be retrained"):  # another recipe: trains again
        run_bench(["unet"], latency=False, train=True, out_dir=tmp_path, overrides=[*SMOKE, "optim.lr=0.01"])


def test_cli_writes_table_json_and_markdown(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "unet", "segnet_vgg16", "--no-latency", "--out", str(tmp_path), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # progress lines go to stderr
    assert [r["model"] for r in rows] == ["unet", "segnet_vgg16"]
    assert rows[1]["params_M"] == pytest.approx(29.48, abs=0.01) and rows[1]["gflops"] > 0
    assert rows[0]["latency_s"] is None and rows[0]["miou"] is None  # not requested
    markdown = (tmp_path / "bench.md").read_text()
    assert "| unet | 31.03 |" in markdown and "segnet_camvid_cpu" in markdown


@pytest.mark.parametrize("task", ["instance", "panoptic"])
def test_instance_and_panoptic_cpu_recipes_share_one_budget(task: str) -> None:
    """`seglab bench --task instance/panoptic --train` compares models, not recipes: same data, steps and solver."""
    from seglab.recipes import load_recipe
    from seglab.registry import list_models

    budgets = {}
    for model in list_models(task=task):
        name = cpu_recipe_for(model)
        assert name and name.endswith("_synthetic_cpu"), f"{model} has no *_synthetic_cpu recipe"
        r = load_recipe(name)
        if r.data.patches is not None:  # DeepMask, SharpMask: a batch of patches (one object each, flipped by
            # the sampler), not of images; the same data, steps, solver and scoring, with their own batch
            budgets[name] = (r.data.dataset, r.data.kwargs, 4, [{"name": "hflip"}], r.schedule.steps,
                             r.schedule.policy, r.optim.name, r.optim.lr, r.eval.max_items)
            assert r.data.patches.hflip and r.data.batch_size <= 16, name
            continue
        budgets[name] = (r.data.dataset, r.data.kwargs, r.data.batch_size, r.data.augment, r.schedule.steps,
                         r.schedule.policy, r.optim.name, r.optim.lr, r.eval.max_items)
    reference = load_recipe("mask_rcnn_synthetic_cpu")
    expected = (reference.data.dataset, reference.data.kwargs, reference.data.batch_size, reference.data.augment,
                reference.schedule.steps, reference.schedule.policy, reference.optim.name, reference.optim.lr,
                reference.eval.max_items)
    assert all(b == expected for b in budgets.values()), budgets


def test_panoptic_bench_trains_and_reports_pq(tmp_path: Path) -> None:
    smoke = ["schedule.steps=2", "schedule.warmup_steps=0", "data.kwargs={num_images: 8}", "eval.max_items=4",
             "model.kwargs.fpn_channels=16", "model.kwargs.box_hidden=32", "model.kwargs.mask_channels=16",
             "model.kwargs.semantic_channels=16"]
    rows = run_bench(["panoptic_fpn_resnet50"], latency=False, train=True, out_dir=tmp_path, overrides=smoke,
                     progress=False)
    record = json.loads((tmp_path / "panoptic_fpn_resnet50" / "bench.json").read_text())
    assert rows[0].pq is not None and 0 <= rows[0].pq <= 1 and record["pq"] == rows[0].pq
    assert {"sq", "rq", "pq_things", "pq_stuff"} <= set(record)
