"""The engine through the panoptic task seam: train, best by PQ, resume, eval's PQ table, predict's COCO
panoptic folder, and panoptic models evaluated on the real COCO panoptic and Cityscapes samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import require_dataset
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from typer.testing import CliRunner

import seglab
from seglab.cli.app import app
from seglab.data import build_dataset
from seglab.data.panoptic_format import read_panoptic_folder
from seglab.engine.tasks import TASKS, task_of
from seglab.engine.train import train
from seglab.errors import ConfigError
from seglab.recipes import load_recipe

TINY_PANOPTIC = {
    "description": "panoptic engine tests",
    "model": {"name": "panoptic_fpn_resnet50", "kwargs": seglab.model_spec("panoptic_fpn_resnet50").test_kwargs},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 8, "size": [64, 96]}, "batch_size": 2,
             "augment": [{"name": "hflip"}]},
    "optim": {"name": "adam", "lr": 0.001},
    "schedule": {"policy": "constant", "steps": 4},
    "train": {"seed": 1, "log_every": 1, "checkpoint_every": 2},
    "eval": {"batch_size": 2, "max_items": 4},
}
SAMPLE_LAYOUT = {"json_file": "panoptic_examples.json", "panoptic_dir": "panoptic_examples", "image_dir": "input_images"}


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("panoptic") / "tiny_panoptic.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(TINY_PANOPTIC))))
    return path


@pytest.fixture(scope="module")
def trained(recipe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("panoptic_run") / "run"
    result = CliRunner().invoke(app, ["train", "--recipe", str(recipe_file), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val PQ" in result.output and "things" in result.output
    return out


def test_train_records_the_task_things_and_pq(trained: Path) -> None:
    config = json.loads((trained / "final" / "config.json").read_text())
    assert config["task"] == "panoptic" and config["thing_classes"] == [1, 2, 3]
    assert config["model_kwargs"]["thing_classes"] == [1, 2, 3], "the model rebuilds with the data's things"
    assert {"pq", "sq", "rq", "pq_things", "pq_stuff"} <= set(config["metrics"])
    assert (trained / "best" / "model.safetensors").is_file()
    assert "pq" in (trained / "val.csv").read_text().splitlines()[0].split(",")


def test_resume_gives_identical_weights(recipe_file: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_file, overrides=["data.val_split=null"])
    train(recipe, out_dir=tmp_path / "full", progress=False)
    train(recipe, out_dir=tmp_path / "cut", progress=False, max_steps=3)
    train(recipe, out_dir=tmp_path / "cut", progress=False, resume=True)
    full, cut = load_file(tmp_path / "full/final/model.safetensors"), load_file(tmp_path / "cut/final/model.safetensors")
    assert [k for k in full if not (full[k] == cut[k]).all()] == []


def test_eval_prints_pq_for_all_things_and_stuff(trained: Path) -> None:
    out = CliRunner().invoke(app, ["eval", str(trained / "final"), "--max-items", "3", "--quiet"])
    assert out.exit_code == 0, out.output
    for word in ("panoptic quality", "All", "Things", "Stuff", "per-class PQ", "background"):
        assert word in out.stdout, word
    as_json = CliRunner().invoke(app, ["eval", str(trained / "final"), "--max-items", "2", "--format", "json"])
    metrics = json.loads(as_json.stdout)
    assert metrics["images"] == 2 and 0 <= metrics["pq"] <= 1 and "per_class" in metrics


def test_predict_writes_overlays_and_a_coco_panoptic_folder(trained: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    data = build_dataset("synthetic", split="val", task="panoptic", num_images=2, size=(64, 96))
    for i in range(2):
        Image.fromarray(data[i][0].permute(1, 2, 0).numpy()).save(images / f"v{i}.png")
    out = CliRunner().invoke(app, ["predict", str(trained / "final"), str(images), "--out", str(tmp_path / "pred")])
    assert out.exit_code == 0, out.output
    assert "COCO panoptic format" in out.stdout
    overlay = Image.open(tmp_path / "pred" / "v0_overlay.png")
    assert overlay.size[0] == 96 and overlay.size[1] > 64 and overlay.mode == "RGB"  # a legend strip below
    read = list(read_panoptic_folder(tmp_path / "pred" / "panoptic.json", tmp_path / "pred" / "panoptic"))
    assert [r[0] for r in read] == [0, 1] and read[0][2].shape == (64, 96)
    segments = json.loads((tmp_path / "pred" / "panoptic.json").read_text())
    assert {c["id"] for c in segments["categories"]} == {1, 2, 3, 4}, "category ids start at 1 without a COCO mapping"


def test_the_task_adapter_needs_thing_classes() -> None:
    assert task_of("panoptic_fpn_resnet50") is TASKS["panoptic"]

    class NoThings:
        name, thing_classes = "my_folder", ()

    with pytest.raises(ConfigError, match="my_folder does not say which classes are things"):
        TASKS["panoptic"].model_kwargs(NoThings(), {})
    assert TASKS["panoptic"].model_kwargs(object(), {"thing_classes": [1]}) == {}


def _evaluate(model: torch.nn.Module, data: object) -> dict:
    loader = DataLoader(data, batch_size=1, collate_fn=TASKS["panoptic"].collate)
    return TASKS["panoptic"].evaluate(model, loader, dataset=data, device=torch.device("cpu"))


def test_a_semantic_plus_instance_model_evaluates_on_coco_panoptic_sample() -> None:
    sample = require_dataset("coco_panoptic_sample")
    data = build_dataset("coco_panoptic", split="val", root=sample.parent, folder=sample.name, **SAMPLE_LAYOUT)
    torch.manual_seed(0)
    spec = seglab.model_spec("semantic_instance_fusion")
    model = seglab.create_model("semantic_instance_fusion", num_classes=data.num_classes,
                                thing_classes=data.thing_classes, **spec.test_kwargs)
    metrics = _evaluate(model, data)
    assert metrics["images"] == 2 and 0 <= metrics["pq"] <= 1
    assert metrics["n"] >= 1 and all(v["tp"] + v["fp"] + v["fn"] > 0 for v in metrics["per_class"].values())
    assert sum(v["fn"] for v in metrics["per_class"].values()) > 0, "an untrained model misses the ground truth"


def test_panoptic_fpn_evaluates_on_the_cityscapes_frame() -> None:
    sample = require_dataset("cityscapes_sample")
    data = build_dataset("cityscapes", split="all", root=sample.parent, folder=sample.name, task="panoptic")
    torch.manual_seed(0)
    model = seglab.create_model("panoptic_fpn_resnet50", num_classes=data.num_classes,
                                thing_classes=data.thing_classes,
                                **{**seglab.model_spec("panoptic_fpn_resnet50").test_kwargs, "min_size": 256,
                                   "max_size": 512})
    metrics = _evaluate(model, data)
    assert metrics["images"] == 1 and 0 <= metrics["pq"] <= 1
    thing_names = {data.classes[c] for c in data.thing_classes}
    assert {name for name, v in metrics["per_class"].items() if v["isthing"]} <= thing_names
    assert np.isfinite(metrics["pq_stuff"])
