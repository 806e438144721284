"""SharpMask's own mechanisms: refinement channels halving and sides doubling to the window, the
paper configuration's parameter counts, and the two training stages (frozen bottom-up, stage-1 weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import seglab
from seglab.engine.checkpoint import save_weights
from seglab.errors import ConfigError
from seglab.heads.sharpmask import TopDownRefinement
from seglab.registry import model_spec

SMALL = {**model_spec("sharpmask_resnet50").test_kwargs}


def build(**kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("sharpmask_resnet50", num_classes=4, **{**SMALL, **kwargs})


def test_refinement_halves_channels_and_doubles_the_side_up_to_the_window() -> None:
    refinement = TopDownRefinement([1024, 512, 256, 64], fsize=10, km=32, ks=32)
    assert refinement.v0.out_features == 32 * 10 * 10  # v0: 512 -> k_m x 10 x 10
    skips = [torch.rand(2, c, s, s) for c, s in ((1024, 10), (512, 20), (256, 40), (64, 80))]
    masks = refinement.v0(torch.rand(2, 512)).view(-1, 32, 10, 10)
    for i, (module, skip) in enumerate(zip(refinement.refinements, skips)):
        assert module.vertical[0].in_channels == 32 // 2**i and module.vertical[-1].out_channels == 16 // 2**i
        assert module.horizontal[-1].out_channels == 16 // 2**i  # k_s / 2^i, summed with the vertical net's
        assert module.horizontal[0].out_channels == (64, 64, 64, 32)[i]
        masks = module(skip, masks)
        assert masks.shape == (2, 16 // 2**i, 20 * 2**i, 20 * 2**i)
    assert refinement.final.in_channels == 2 and refinement.final.padding_mode == "replicate"
    assert refinement(torch.rand(2, 512), skips).shape == (2, 160, 160)  # the 160-px window of the code


def test_paper_configuration_parameter_count() -> None:
    with torch.device("meta"):
        model = seglab.create_model("sharpmask_resnet50", num_classes=2)
    conv = lambda a, b: 9 * a * b + b  # noqa: E731  3x3 with bias
    modules = sum(conv(c, h) + conv(h, k) + conv(k, k // 2) + conv(k, k) + conv(k, k // 2)
                  for c, h, k in ((1024, 64, 32), (512, 64, 16), (256, 64, 8), (64, 32, 4)))
    refinement = (512 * 3200 + 3200) + modules + conv(2, 1)
    assert sum(p.numel() for p in model.refinement.parameters()) == refinement
    bottom_up = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("refinement."))
    assert bottom_up == 17_363_713  # deepmask_vgg11 with backbone="resnet50"
    assert bottom_up + refinement == model_spec("sharpmask_resnet50").reference_params


def test_stage_two_trains_only_the_refinement_with_the_bottom_up_in_eval_mode() -> None:
    model = build(freeze_bottom_up=True).train()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"refinement"}
    assert not model.trunk.training and not model.score_branch.training and model.refinement.training
    joint = build(freeze_bottom_up=False).train()
    trainable = {n.split(".")[0] for n, p in joint.named_parameters() if p.requires_grad}
    assert trainable == {"trunk", "embedding", "score_branch", "refinement"}  # the coarse mask is replaced


def test_stage_one_weights_load_into_the_bottom_up(tmp_path: Path) -> None:
    torch.manual_seed(1)
    kwargs = {k: v for k, v in SMALL.items() if k not in ("km", "ks", "skip_hidden")}
    stage_one = seglab.create_model("deepmask_vgg11", num_classes=4, **kwargs)
    save_weights(stage_one, tmp_path / "dm", {"model": "deepmask_vgg11", "num_classes": 4, "model_kwargs": kwargs})
    model = build(pretrained_deepmask=str(tmp_path / "dm"))
    for name, value in stage_one.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    wider = seglab.create_model("deepmask_vgg11", num_classes=4, **{**kwargs, "embedding_dim": 24})
    save_weights(wider, tmp_path / "wide", {"model": "deepmask_vgg11", "num_classes": 4, "model_kwargs": {}})
    with pytest.raises(ConfigError, match="pretrained_deepmask"):
        build(pretrained_deepmask=str(tmp_path / "wide"))


def test_refined_masks_enter_the_loss_at_the_window_size() -> None:
    model = build(freeze_bottom_up=False)
    with torch.no_grad():
        masks, scores = model.heads(model.trunk(torch.rand(3, 3, 64, 64)))
    assert masks.shape == (3, 64, 64) and model.mask_size == 64 and scores.shape == (3,)


def test_bad_widths_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="km 32 and ks 16"):
        build(km=32, ks=16)
    with pytest.raises(ConfigError, match="skip_hidden"):
        build(skip_hidden=(8, 8))
