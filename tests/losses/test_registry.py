"""Losses by name: build_loss / pixel_criterion, the recipe's loss section, and every semantic builder."""

from __future__ import annotations

import pytest
import torch

import seglab
from seglab.errors import ConfigError
from seglab.losses import (
    CrossEntropyDiceLoss,
    DiceLoss,
    FocalLoss,
    PixelCrossEntropy,
    build_loss,
    loss_names,
    loss_options,
    pixel_criterion,
)
from seglab.recipes import load_recipe, model_kwargs

BASE = ["model.name=unet", "data.dataset=synthetic"]


def test_names_build_their_losses_with_options_and_weights() -> None:
    assert loss_names() == ["ce", "ce+dice", "ce_sum", "dice", "focal"]
    ce = pixel_criterion()
    assert type(ce) is PixelCrossEntropy and ce.reduction == "mean" and ce.class_weights is None
    assert build_loss("ce_sum").reduction == "sum"
    focal = build_loss("focal", class_weights=[1.0, 2.0], focal_gamma=0.5)
    assert isinstance(focal, FocalLoss) and focal.gamma == 0.5 and focal.class_weights.tolist() == [1.0, 2.0]
    dice = pixel_criterion("dice", None, {"dice_smooth": 0.0})
    assert isinstance(dice, DiceLoss) and dice.smooth == 0.0
    combined = build_loss("ce+dice", dice_weight=0.25)
    assert isinstance(combined, CrossEntropyDiceLoss) and combined.dice_weight == 0.25
    assert loss_options("ce+dice") == ("dice_weight", "dice_smooth")


def test_unknown_name_or_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'focla'; did you mean 'focal'"):
        build_loss("focla")
    with pytest.raises(ConfigError, match="loss 'dice' has no option 'focal_gamma'; it takes dice_smooth"):
        build_loss("dice", focal_gamma=2.0)
    with pytest.raises(ConfigError, match="loss 'ce' has no option 'dice_weight'; it takes no options"):
        pixel_criterion("ce", None, {"dice_weight": 1.0})


def test_recipe_loss_section_becomes_builder_arguments() -> None:
    assert "loss" not in model_kwargs(load_recipe(None, overrides=BASE))
    recipe = load_recipe(None, overrides=[*BASE, "loss.name=focal", "loss.focal_gamma=1", "loss.class_weights=[1, 2]"])
    kwargs = model_kwargs(recipe)
    assert kwargs["loss"] == "focal" and kwargs["loss_options"] == {"focal_gamma": 1.0}
    model = seglab.create_model("unet", num_classes=2, **kwargs, **seglab.model_spec("unet").test_kwargs)
    assert isinstance(model.criterion, FocalLoss) and model.criterion.gamma == 1.0
    assert model.criterion.class_weights.tolist() == [1.0, 2.0]


def test_recipe_rejects_unknown_losses_and_stray_options() -> None:
    with pytest.raises(ConfigError, match="loss: .*loss.name 'dcie' is unknown; expected one of ce, ce\\+dice"):
        load_recipe(None, overrides=[*BASE, "loss.name=dcie"])
    with pytest.raises(ConfigError, match="loss.focal_gamma does not apply to loss.name 'dice'"):
        load_recipe(None, overrides=[*BASE, "loss.name=dice", "loss.focal_gamma=2"])
    with pytest.raises(ConfigError, match="loss.dice_smooth: Input should be greater than or equal to 0"):
        load_recipe(None, overrides=[*BASE, "loss.name=dice", "loss.dice_smooth=-1"])


@pytest.mark.parametrize("name", seglab.list_models("semantic"))
def test_every_semantic_builder_takes_its_criterion_from_the_loss_name(name: str) -> None:
    with torch.device("meta"):
        kwargs = seglab.model_spec(name).test_kwargs
        model = seglab.create_model(name, num_classes=3, loss="ce+dice", loss_options={"dice_weight": 0.5}, **kwargs)
    assert isinstance(model.criterion, CrossEntropyDiceLoss) and model.criterion.dice_weight == 0.5


def test_a_model_computes_and_backpropagates_the_chosen_loss() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=2, loss="dice", **seglab.model_spec("unet").test_kwargs)
    logits = torch.randn(1, 2, 8, 8)
    targets = torch.randint(0, 2, (1, 8, 8))
    terms = model.losses({"out": logits}, targets)
    assert set(terms) == {"loss_ce"}  # the main term keeps its name whatever the loss
    torch.testing.assert_close(terms["loss_ce"], DiceLoss()(logits, targets))
    loss = model(torch.rand(1, 3, 32, 32), torch.randint(0, 2, (1, 32, 32)))["loss_ce"]
    loss.backward()
    assert 0 < loss.item() < 1 and all(p.grad is not None for p in model.parameters())
