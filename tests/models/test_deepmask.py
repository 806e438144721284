"""DeepMask's own mechanisms: the patch sampler's geometry, eq. 1 on the model's windows, the paper's
layer shapes and parameter counts, dense sliding equal to patch-wise evaluation, and bad settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seglab
from seglab.data import build_dataset
from seglab.data.patches import PatchSampler
from seglab.errors import ConfigError
from seglab.models.instance.deepmask import ProposalSettings
from seglab.structures import InstanceTarget


def small(**kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model("deepmask_vgg11", num_classes=4, **{**seglab.model_spec("deepmask_vgg11").test_kwargs,
                                                                 **kwargs})


def sampler(**kwargs: object) -> PatchSampler:
    data = build_dataset("synthetic", split="train", task="instance", num_images=12, size=(96, 128))
    return PatchSampler(data, size=112, **kwargs)


def test_positives_are_canonical_centred_and_inside() -> None:
    patches = sampler(positive_fraction=1.0, hflip=False)
    torch.manual_seed(0)
    for i in range(len(patches)):
        image, target = patches[i]
        assert image.shape == (3, 112, 112) and target["masks"].shape[0] == 1
        x1, y1, x2, y2 = target["boxes"][0].tolist()
        longer = max(x2 - x1, y2 - y1)
        # sec. 3.1: longer side 128/224 of the patch (64 px of 112) up to 2^(+-1/4), centre within 16/224 (8 px)
        assert 64 * 2**-0.25 - 1 <= longer <= 64 * 2**0.25 + 1, longer
        assert abs((x1 + x2) / 2 - 56) <= 8 + 1 and abs((y1 + y2) / 2 - 56) <= 8 + 1
        assert x1 >= 0 and y1 >= 0 and x2 <= 112 and y2 <= 112


def test_negatives_are_far_off_centre_or_off_scale() -> None:
    patches = sampler(positive_fraction=0.0)
    data = patches.dataset
    torch.manual_seed(1)
    for i in range(len(data)):
        _, target = data[i]
        boxes = target["boxes"].as_subclass(torch.Tensor)
        window = patches.negative(torch.rand(3, 96, 128), boxes)[1][0]
        side = float(window[2] - window[0])
        centre = (window[:2] + window[2:]) / 2
        for box in boxes:
            offset = float(((box[:2] + box[2:]) / 2 - centre).abs().max()) / side
            scale = float((box[2:] - box[:2]).max()) / (side * 128 / 224)
            assert offset >= 32 / 224 or scale <= 0.5 or scale >= 2.0, (offset, scale)
        assert len(patches[i][1]["labels"]) == 0  # a negative patch holds no object


def test_sampler_is_reproducible_under_a_seed_and_keeps_the_dataset_attributes() -> None:
    patches = sampler()
    torch.manual_seed(3)
    first = patches[2][0]
    torch.manual_seed(3)
    assert torch.equal(first, patches[2][0])
    assert patches.num_classes == 4 and patches.classes[0] == "background"


def target_with(box: list[float], size: int = 64) -> InstanceTarget:
    mask = torch.zeros(1, size, size, dtype=torch.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[0, y1:y2, x1:x2] = 1
    return InstanceTarget(boxes_xyxy=torch.tensor([box]), labels=torch.tensor([2]), masks=mask)


def test_loss_is_eq_1_with_lambda_and_the_mask_term_on_positives_only() -> None:
    model = small()  # 64-px windows: canonical side 64 x 4/7 = 36.6 px
    empty = InstanceTarget(boxes_xyxy=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64),
                           masks=torch.zeros(0, 64, 64, dtype=torch.uint8))
    targets = [target_with([14.0, 14.0, 50.0, 50.0]), empty, target_with([20.0, 14.0, 56.0, 50.0])]
    labels, mask_targets = model.labels(targets, torch.device("cpu"))
    # centred / no object / 6 px off (6/64 of the window, between 16/224 and 32/224): neither
    assert labels.tolist() == [1, 0, -1]
    assert mask_targets[0].sum() > 0 and mask_targets[1:].sum() == 0
    masks = torch.randn(3, model.mask_size, model.mask_size)
    masks[1:] = 50.0  # a negative's and an ignored window's masks must not count
    scores = torch.tensor([0.5, 2.0, -7.0])
    losses = model.losses(masks, scores, targets)
    expected_mask = F.binary_cross_entropy_with_logits(masks[0], mask_targets[0])
    expected_score = (F.softplus(-scores[0]) + F.softplus(scores[1])) / 32
    assert losses["loss_mask"].item() == pytest.approx(expected_mask.item(), rel=1e-5)
    assert losses["loss_score"].item() == pytest.approx(expected_score.item(), rel=1e-5)


def test_paper_configuration_layer_shapes_and_parameter_counts() -> None:
    with torch.device("meta"):
        model = seglab.create_model("deepmask_vgg11", num_classes=2)
        taps = model.trunk(torch.empty(2, 3, 224, 224))
        features = taps["c5"]
        masks, scores = model.heads(taps)
    assert features.shape == (2, 512, 14, 14)  # sec. 3.1: 512 x 14 x 14 at stride 16
    assert masks.shape == (2, 224, 224) and scores.shape == (2,)
    assert model.mask_predictor.linear.out_features == 56 * 56
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    assert count(model.trunk) == sum(9 * a * b + b for a, b in convs)  # VGG-A's 8 convs
    assert count(model.embedding) == (512 * 512 + 512) + (512 * 14 * 14 * 512 + 512)  # 1x1 conv, low-rank
    assert count(model.mask_predictor) == 512 * 56 * 56 + 56 * 56
    assert count(model.score_branch) == (512 * 7 * 7 * 512 + 512) + (512 * 1024 + 1024) + (1024 + 1)
    assert count(model) == seglab.model_spec("deepmask_vgg11").reference_params


def test_resnet50_variant_is_the_authors_code() -> None:
    with torch.device("meta"):
        model = seglab.create_model("deepmask_vgg11", num_classes=2, backbone="resnet50")
        masks, scores = model.heads(model.trunk(torch.empty(2, 3, 192, 192)))  # 160 + 2 x 16 context
    assert (model.patch_size, model.context, model.mask_size) == (160, 16, 112)
    assert model.embedding.reduce.in_channels == 1024 and model.embedding.reduce.out_channels == 128
    assert model.embedding.linear.in_features == 128 * 10 * 10 and masks.shape == (2, 112, 112)
    assert model.score_input == "embedding" and model.score_branch.dropout.p == 0.5
    assert sum(p.numel() for p in model.parameters()) == 17_363_713


def test_dense_sliding_equals_the_heads_on_each_window() -> None:
    # The fully connected layers run as convolutions over the whole map (stride 16, sec. 3.3): each
    # window's embedding and score equal the patch-mode heads on that window's f x f cells (the trunk's
    # own values differ at a cut patch's border, where its padding replaces the image's context).
    model = seglab.create_model("deepmask_vgg11", num_classes=2, patch_size=64, embedding_channels=8,
                                embedding_dim=16, mask_out=14, score_hidden=(16, 16)).eval()
    image = torch.rand(3, 40, 56)
    with torch.no_grad():
        level = model.candidates(image, 1.0)
        x, pad = model.pyramid_level(image, 1.0)
        features = model.trunk(x)["c5"]
        for k in (0, 7, len(level.logits) - 1):
            row, col = level.cells[k].tolist()
            x1, y1 = 16 * col - pad, 16 * row - pad
            assert level.windows[k].tolist() == [x1, y1, x1 + 64, y1 + 64]
            window = features[..., row : row + 4, col : col + 4]
            assert torch.allclose(model.embedding(window)[0], level.embeddings[k], atol=1e-5)
            assert model.score_branch(window)[0].item() == pytest.approx(level.logits[k].item(), abs=1e-5)


def test_proposals_are_class_agnostic_ranked_and_capped() -> None:
    model = small(top_k=7, scale_exponents=(-1.0, 0.0)).eval()
    assert model.settings.scales == [0.5, 2**-0.5, 1.0]
    with torch.no_grad():
        (prediction,) = model([torch.rand(3, 48, 64)])
    assert len(prediction) <= 7 and bool((prediction.labels == 1).all())
    assert bool((prediction.scores[:-1] >= prediction.scores[1:]).all())
    assert ProposalSettings().scales == pytest.approx([2 ** (e / 2) for e in range(-4, 3)])  # 2^-2 .. 2^1 (sec. 3.3)
    assert seglab.model_spec("deepmask_vgg11").outputs == "proposals"


def test_bad_settings_raise_config_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="patch_size 100"):
        small(patch_size=100)
    with pytest.raises(ConfigError, match="backbone 'densenet121'"):
        small(backbone="densenet121")
    with pytest.raises(ConfigError, match="2x2 max-pool"):
        seglab.create_model("deepmask_vgg11", num_classes=2, patch_size=48)
    with pytest.raises(ConfigError, match="PatchSampler: positive_fraction"):
        sampler(positive_fraction=2.0)


def test_recipe_patches_must_match_the_model() -> None:
    from seglab.engine.train import _check_patches
    from seglab.recipes import load_recipe

    recipe = load_recipe("deepmask_synthetic_cpu")
    model = small(patch_size=112)
    _check_patches(recipe, model)
    recipe.data.patches.size = 96
    with pytest.raises(ConfigError, match="data.patches.size is 96"):
        _check_patches(recipe, model)
    with pytest.raises(Exception, match="patches.size"):
        load_recipe("deepmask_synthetic_cpu").data.patches = {"size": 4}


def test_training_patches_are_seeded_per_epoch_and_index_so_runs_resume() -> None:
    from seglab.engine.sampling import SeededTransforms

    seeded = SeededTransforms(sampler(), None, seed=0)
    first = seeded[3][0]
    torch.rand(5)  # the global stream moves on; the item does not
    assert torch.equal(first, seeded[3][0])
    seeded.epoch = 1
    assert not torch.equal(first, seeded[3][0])
