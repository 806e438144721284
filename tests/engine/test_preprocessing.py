"""Input normalisation from a recipe's augment list (SegNet's LCN) applies at train, eval and predict alike."""

from __future__ import annotations

import torch
from torchvision import tv_tensors

from seglab.data.augment import build_augmentation
from seglab.engine.distributed import DistInfo
from seglab.engine.train import build_eval_loader
from seglab.inference.predictor import preprocessing
from seglab.recipes import load_recipe

LCN = [{"name": "local_contrast_norm"}]


def _recipe(augment):
    overrides = ["model.name=unet", "data.dataset=synthetic", "data.kwargs={num_images: 2}"]
    if augment is not None:
        overrides += ["data.hflip=false", f"data.augment={augment}"]
    return load_recipe(None, overrides=overrides)


def test_eval_loader_applies_lcn_but_no_random_augmentation() -> None:
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    plain = build_eval_loader(_recipe(None), info, "val").dataset.dataset
    normalised = build_eval_loader(_recipe([*LCN, {"name": "vflip", "p": 1.0}]), info, "val").dataset.dataset
    image, mask = plain[0]
    lcn_image, lcn_mask = normalised[0]
    expected = build_augmentation(LCN)(tv_tensors.Image(image))
    torch.testing.assert_close(lcn_image, expected)  # LCN applied, the flip (random, p=1) not
    torch.testing.assert_close(lcn_mask, mask)


def test_predictor_preprocessing_follows_the_recorded_recipe() -> None:
    assert preprocessing({"recipe": _recipe(None).model_dump(mode="json")}) is None
    assert preprocessing({}) is None  # checkpoints written before recipes were recorded
    transform = preprocessing({"recipe": _recipe(LCN).model_dump(mode="json")})
    image = tv_tensors.Image(torch.randint(0, 256, (3, 16, 20), dtype=torch.uint8))
    torch.testing.assert_close(transform(image), build_augmentation(LCN)(image))
