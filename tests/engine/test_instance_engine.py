"""The engine through the instance task seam: train, best by mask AP, exact resume, DDP, and the CLI."""

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
from safetensors.torch import load_file
from typer.testing import CliRunner

import seglab
from seglab.cli.app import app
from seglab.engine.train import train
from seglab.recipes import load_recipe

TINY_INSTANCE = {
    "description": "instance engine tests",
    "model": {"name": "mask_rcnn_resnet50_fpn", "kwargs": seglab.model_spec("mask_rcnn_resnet50_fpn").test_kwargs},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 8, "size": [64, 96]}, "batch_size": 2,
             "augment": [{"name": "hflip"}]},
    "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
    "schedule": {"policy": "constant", "steps": 4},
    "train": {"seed": 1, "log_every": 1, "checkpoint_every": 2},
    "eval": {"batch_size": 2, "max_items": 4},
}


def seglab_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "seglab.cli.app", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("instance") / "tiny_instance.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(TINY_INSTANCE))))
    return path


@pytest.fixture(scope="module")
def trained(recipe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("instance_run") / "run"
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe_file), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val mask AP" in result.output
    return out


def test_train_records_the_task_and_mask_ap(trained: Path) -> None:
    config = json.loads((trained / "final" / "config.json").read_text())
    assert config["task"] == "instance" and config["classes"][0] == "background" and config["num_classes"] == 4
    assert "segm_ap" in config["metrics"] and "results" not in config["metrics"]
    val = (trained / "val.csv").read_text().splitlines()[0].split(",")
    assert "segm_ap" in val and "bbox_ap" in val


def test_resume_gives_identical_weights(recipe_file: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_file, overrides=["data.val_split=null"])
    train(recipe, out_dir=tmp_path / "full", progress=False)
    train(recipe, out_dir=tmp_path / "cut", progress=False, max_steps=3)  # last checkpoint at step 2
    train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True)
    full, cut = load_file(tmp_path / "full/final/model.safetensors"), load_file(tmp_path / "cut/final/model.safetensors")
    assert [k for k in full if not (full[k] == cut[k]).all()] == []


def test_eval_prints_the_coco_table_and_writes_results(trained: Path, tmp_path: Path) -> None:
    results = tmp_path / "dets.json"
    out = CliRunner().invoke(app, ["eval", str(trained / "final"), "--max-items", "3", "--results", str(results),
                                   "--quiet"])
    assert out.exit_code == 0, out.output
    assert "Average Precision" in out.stdout and "per-class AP" in out.stdout and "segm" in out.stdout
    detections = json.loads(results.read_text())
    assert isinstance(detections, list) and all({"image_id", "category_id", "bbox", "score"} <= set(d)
                                                for d in detections)
    as_json = CliRunner().invoke(app, ["eval", str(trained / "final"), "--max-items", "2", "--format", "json",
                                       "--results", str(results)])
    metrics = json.loads(as_json.stdout)
    assert metrics["images"] == 2 and "segm_ap" in metrics and "bbox_ap75" in metrics


def test_predict_writes_overlays_and_results(trained: Path, tmp_path: Path) -> None:
    from seglab.data import build_dataset

    data = build_dataset("synthetic", split="val", task="instance", num_images=2, size=(64, 96))
    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.fromarray(data[i][0].permute(1, 2, 0).numpy()).save(tmp_path / "images" / f"{i}.png")
    out = CliRunner().invoke(app, ["predict", str(trained / "final"), str(tmp_path / "images"), "--out",
                                   str(tmp_path / "p"), "--score-threshold", "0"])
    assert out.exit_code == 0, out.output
    overlay = np.asarray(Image.open(tmp_path / "p" / "0_overlay.png"))
    assert overlay.shape == (64, 96, 3)
    assert isinstance(json.loads((tmp_path / "p" / "results.json").read_text()), list)


def test_export_refuses_with_the_reason(trained: Path, tmp_path: Path) -> None:
    out = seglab_cli("export", str(trained / "final"), "--out", str(tmp_path / "m.onnx"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cannot be exported" in out.stderr and "data-dependent" in out.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["train", "--model", "mask_rcnn_resnet50_fpn", "--dataset", "camvid"], "has no instance annotations"),
    (["data", "check", "coco", "-O", "json_file=/nonexistent/a.json", "-O", "image_dir=/nonexistent"], "a.json"),
])
def test_mismatches_are_one_clear_line(args: list[str], expected: str) -> None:
    out = seglab_cli(*args)
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3


def test_a_bad_coco_json_is_one_clear_line(tmp_path: Path, recipe_file: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    bad = {"images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[1, 1, 5, 1, 5, 5]],
                            "iscrowd": 0}],
           "categories": [{"id": 1, "name": "cell"}]}
    (tmp_path / "a.json").write_text(json.dumps(bad))
    out = seglab_cli("train", "--recipe", str(recipe_file), "--out", str(tmp_path / "run"),
                     "--set", "data.dataset=coco", "--set",
                     f"data.kwargs={{json_file: {tmp_path / 'a.json'}, image_dir: {tmp_path / 'images'}}}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "a.json" in out.stderr and "category_id 7" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3


@pytest.mark.slow
def test_torchrun_trains_an_instance_model_with_two_processes(recipe_file: Path, tmp_path: Path) -> None:
    """Two gloo processes: sharded training and evaluation, detections gathered for one mask AP."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "seglab.cli.app", "train", "--recipe", str(recipe_file), "--quiet", "--set", "schedule.steps=2",
           "--set", "data.batch_size=1", "--out", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 processes" in " ".join(result.stdout.split()) and "val mask AP" in result.stdout
    config = json.loads((tmp_path / "ddp" / "final" / "config.json").read_text())
    assert config["metrics"]["num_images"] == 4  # both ranks' halves of the 4 val images
