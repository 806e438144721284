"""seglab.load, seglab.save and seglab.Predictor: one line each, and the same labels as `seglab predict`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import seglab
from seglab.cli.app import run
from seglab.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    tmp = tmp_path_factory.mktemp("api")
    (tmp / "r.yaml").write_text(yaml.safe_dump({**TINY, "schedule": {"steps": 2}}))
    assert run(["train", "--recipe", str(tmp / "r.yaml"), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def test_load_a_run_folder_and_predict_like_the_cli(run_dir: Path, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    model = seglab.load(run_dir)  # the run folder means final/
    assert not model.training and model.seglab_config["model"] == "unet"
    predictor = seglab.Predictor(model)
    labels = predictor.predict(tmp_path / "a.png")
    assert labels.shape == (30, 41)
    for same in (image, Image.open(tmp_path / "a.png"), torch.from_numpy(image).permute(2, 0, 1), str(tmp_path / "a.png")):
        assert torch.equal(predictor.predict(same), labels)
    assert run(["predict", str(run_dir / "final"), str(tmp_path / "a.png"), "--out", str(tmp_path / "p")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p" / "a.png")), labels.numpy())
    assert torch.equal(seglab.Predictor(run_dir).predict(image), labels)  # a path works as well


def test_save_any_created_model_and_load_it_back(tmp_path: Path) -> None:
    model = seglab.create_model("unet", num_classes=3, base_channels=8, batch_norm=True)
    assert model.seglab_config == {"model": "unet", "num_classes": 3, "model_kwargs": {"base_channels": 8,
                                                                                        "batch_norm": True}}
    seglab.save(model, tmp_path / "mine", classes=["sky", "road", "car"])
    loaded = seglab.load(tmp_path / "mine")
    assert loaded.seglab_config["classes"] == ["sky", "road", "car"] and loaded.seglab_config["task"] == "semantic"
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    seglab.save(loaded, tmp_path / "again")  # a loaded model keeps its whole config
    assert seglab.load(tmp_path / "again").seglab_config["classes"] == ["sky", "road", "car"]
    assert run(["export", str(tmp_path / "mine"), "--out", str(tmp_path / "mine.onnx")]) == 0


def test_save_and_predict_refuse_what_they_cannot_rebuild(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not built by seglab.create_model"):
        seglab.save(nn.Conv2d(3, 2, 1), tmp_path / "x")
    with pytest.raises(ConfigError, match="3 class names for a model of 2 classes"):
        seglab.save(seglab.create_model("unet", num_classes=2, base_channels=4), tmp_path / "y", classes="abc")
    predictor = seglab.Predictor(seglab.create_model("unet", num_classes=2, base_channels=4))
    with pytest.raises(InputError, match=r"\[H, W, 3\]"):
        predictor.predict(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(InputError, match="cannot predict on a list"):
        predictor.predict([1, 2, 3])
