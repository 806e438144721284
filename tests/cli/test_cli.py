"""The seglab command end to end on synthetic data: train, eval, predict, data check, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from seglab.cli.app import app

runner = CliRunner()

TINY = {
    "description": "cli test",
    "source": "test",
    "model": {"name": "unet", "kwargs": {"base_channels": 4, "batch_norm": True}},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 8, "size": [32, 48]}, "batch_size": 4},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"steps": 4},
    "train": {"log_every": 1, "checkpoint_every": 2},
}


def seglab(*args: str) -> subprocess.CompletedProcess:
    """Run the real entry point (as a user would), capturing output."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "seglab.cli.app", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val mIoU" in result.output
    return tmp / "run"


def test_train_writes_weights_logs_and_state(trained: Path) -> None:
    for name in ("final/model.safetensors", "final/config.json", "best/model.safetensors", "last.pt",
                 "metrics.jsonl", "train.csv", "val.csv"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "final" / "config.json").read_text())
    assert config["model"] == "unet" and config["num_classes"] == 4 and config["classes"][0] == "background"
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]


def test_eval_json(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained / "final"), "--format", "json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert 0 <= metrics["miou"] <= 1 and len(metrics["per_class_iou"]) == 4 and metrics["images"] == 8


def test_eval_on_folders_uses_the_checkpoint_label_encoding(trained: Path, tmp_path: Path) -> None:
    from seglab.data import build_dataset

    data = build_dataset("synthetic", split="val", num_images=3, size=(32, 48))
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for i in range(3):
        image, mask = data[i]
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(mask.numpy().astype(np.uint8)).save(tmp_path / "mask" / f"{i}.png")
    result = runner.invoke(app, ["eval", str(trained / "final"), "--images", str(tmp_path / "img"),
                                 "--masks", str(tmp_path / "mask"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["images"] == 3


def test_predict_writes_index_pngs_and_overlays(trained: Path, tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 41, 3), 90, np.uint8)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["predict", str(trained / "final"), str(tmp_path / "a.png"), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    label_png = Image.open(tmp_path / "p" / "a.png")
    assert label_png.mode == "P"  # a viewer shows class colours; the values stay class ids
    labels = np.asarray(label_png)
    assert labels.shape == (30, 41) and labels.max() < 4
    colours = np.asarray(label_png.convert("RGB"))
    config = json.loads((trained / "final" / "config.json").read_text())
    assert tuple(colours[0, 0]) == tuple(config["palette"][labels[0, 0]])
    overlay = np.asarray(Image.open(tmp_path / "p" / "a_overlay.png"))
    assert overlay.shape[1:] == (41, 3) and overlay.shape[0] > 30  # the image, then a legend strip below it


def test_models_lists_params() -> None:
    result = runner.invoke(app, ["models", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert abs(rows["fcn8s_vgg16"]["params_M"] - 134.5) < 0.5 and rows["unet"]["year"] == 2015


def test_recipes_lists_them() -> None:
    result = runner.invoke(app, ["recipes", "--format", "json"])
    assert result.exit_code == 0
    assert "unet_synthetic_cpu" in {r["name"] for r in json.loads(result.output)}


def test_data_check_synthetic_ok() -> None:
    result = runner.invoke(app, ["data", "check", "synthetic", "--max-items", "4", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


def test_data_check_reports_bad_labels_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "x.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "masks" / "x.png")
    result = seglab("data", "check", "folder", "--images", str(tmp_path / "images"), "--masks",
                    str(tmp_path / "masks"), "--classes", "a,b")
    assert result.returncode == 1
    assert "x.png" in result.stdout and "7" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--model", "unet_", "--dataset", "synthetic"], "did you mean 'unet'"),
        (["train", "--recipe", "unet_synthetic_cpu", "--set", "optim.lrr=1"], "optim.lrr"),
        (["train", "--model", "unet", "--dataset", "camvd"], "camvid"),
        (["eval", "/nonexistent/run"], "'/nonexistent/run' does not exist"),
        (["predict", "/nonexistent/run", "x.png"], "'/nonexistent/run' does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], expected: str) -> None:
    result = seglab(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, wrapped at most a little


def test_debug_shows_the_traceback() -> None:
    result = seglab("--debug", "train", "--model", "unet_", "--dataset", "synthetic")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_export_writes_onnx_and_warns_about_input_normalisation(trained: Path, tmp_path: Path) -> None:
    import json
    import shutil

    result = runner.invoke(app, ["export", str(trained / "final"), "--out", str(tmp_path / "plain.onnx")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plain.onnx").stat().st_size > 0 and "note:" not in result.output
    lcn = tmp_path / "lcn"
    shutil.copytree(trained / "final", lcn)
    config = json.loads((lcn / "config.json").read_text())
    config["recipe"]["data"]["augment"] = [{"name": "local_contrast_norm"}, {"name": "hflip"}]
    (lcn / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["export", str(lcn), "--out", str(tmp_path / "lcn.onnx")])
    assert result.exit_code == 0, result.output
    assert "local_contrast_norm" in result.output and "hflip" not in result.output
