"""The loop stops with the loss dict on a non-finite loss; bad settings fail before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seglab.engine import train as train_module
from seglab.errors import ConfigError, TrainingError
from seglab.recipes import load_recipe


class NaNLoss(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"loss_ce": self.w * float("nan"), "loss_aux": self.w * 0.5}


def test_non_finite_loss_stops_with_the_loss_dict(tiny_recipe_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(train_module, "build_model", lambda recipe, num_classes: NaNLoss())
    with pytest.raises(TrainingError, match=r"non-finite loss at step 0: loss_ce=nan, loss_aux=0.5"):
        train_module.train(load_recipe(tiny_recipe_file), out_dir=tmp_path, progress=False)


def test_batch_larger_than_the_dataset_is_a_config_error(tiny_recipe_file: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny_recipe_file, overrides=["data.batch_size=64"])
    with pytest.raises(ConfigError, match="data.batch_size=64"):
        train_module.train(recipe, out_dir=tmp_path, progress=False)


def test_unknown_model_fails_before_the_data_is_read(tiny_recipe_file: Path, tmp_path: Path) -> None:
    # The dataset does not exist either: the model is checked first, so that is what the user hears.
    recipe = load_recipe(tiny_recipe_file, overrides=["model.name=mask_rcnn_resnet5O_fpn", "data.dataset=coco",
                                                      f"data.root={tmp_path / 'nowhere'}"])
    expected = "unknown model 'mask_rcnn_resnet5O_fpn'.*did you mean 'mask_rcnn_resnet50_fpn'"
    with pytest.raises(ConfigError, match=expected):
        train_module.train(recipe, out_dir=tmp_path / "run", progress=False)
