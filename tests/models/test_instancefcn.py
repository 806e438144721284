"""What is unique to InstanceFCN: the assembling table, DeepMask's window labels, the loss on positive
windows only, the branches' shapes and the paper configuration's parameter count, window geometry at test."""

from __future__ import annotations

import pytest
import torch

import seglab
from seglab.boxes import masks_to_boxes
from seglab.boxes.centred_windows import label_centred_windows, paste_window_masks
from seglab.heads.instance_sensitive import (
    OUTSIDE_LOGIT,
    InstanceAssembler,
    InstanceSensitiveBranch,
    ObjectnessBranch,
    assembling_table,
)
from seglab.recipes import load_recipe, model_kwargs
from seglab.structures import InstanceTarget

NAME = "instancefcn_vgg16"


def test_assembling_table_equals_a_naive_loop() -> None:
    for k, m in ((5, 21), (5, 8), (3, 9), (5, 6)):
        naive = torch.empty(m, m, dtype=torch.int64)
        for u in range(m):
            for v in range(m):
                naive[u, v] = int(u * k / m) * k + int(v * k / m)  # cell (floor(u k / m), floor(v k / m))
        assert torch.equal(assembling_table(k, m), naive), (k, m)


def test_assembling_picks_cell_i_j_from_map_i_k_plus_j() -> None:
    """Map c is constant c: each window pixel shows the map of its cell; cells of m = 21 are 5, 4, 4, 4, 4 wide."""
    k, m = 5, 21
    maps = torch.arange(k * k, dtype=torch.float32).view(1, k * k, 1, 1).expand(1, k * k, 30, 30).contiguous()
    window = InstanceAssembler(k=k, m=m)(maps, torch.tensor([0]), torch.tensor([15]), torch.tensor([15]))[0]
    edges = [0, 5, 9, 13, 17, 21]  # u k // m changes at u = 5, 9, 13, 17
    for i in range(k):
        for j in range(k):
            cell = window[edges[i]: edges[i + 1], edges[j]: edges[j + 1]]
            assert bool((cell == i * k + j).all()), (i, j, cell)


def test_assembling_copies_the_maps_at_the_window_and_pads_outside() -> None:
    k, m = 5, 8
    maps = torch.randn(2, k * k, 6, 7)
    images, rows, cols = torch.tensor([1, 0, 1]), torch.tensor([3, 0, 5]), torch.tensor([4, 6, 0])
    assembled = InstanceAssembler(k=k, m=m)(maps, images, rows, cols)
    table = assembling_table(k, m)
    for w in range(3):
        for u in range(m):
            for v in range(m):
                y, x = int(rows[w]) - m // 2 + u, int(cols[w]) - m // 2 + v
                inside = 0 <= y < 6 and 0 <= x < 7
                expected = maps[images[w], table[u, v], y, x] if inside else torch.tensor(OUTSIDE_LOGIT)
                assert assembled[w, u, v] == expected, (w, u, v)


def window(cx: float, cy: float, side: float) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def test_positive_and_negative_windows_follow_deepmask() -> None:
    """A 168-px window (m = 21 at stride 8): positives are centred within 12 px (16/224) with a longer side
    of 96 px (128/224) x 2^(+-1/4) = 81-114 px; negatives are 24 px (32/224) off or 2x off that size."""
    w = torch.tensor([window(100, 100, 168)])
    cases = {  # object box -> (positive, negative)
        "centred, canonical size": (window(100, 100, 96), (True, False)),
        "10 px off, 110 px": ([45, 55, 155, 145], (True, False)),
        "20 px off: between": (window(120, 100, 96), (False, False)),
        "30 px off: negative": (window(100, 130, 96), (False, True)),
        "70 px: too small, not 2x off": (window(100, 100, 70), (False, False)),
        "40 px: 2.4x too small": (window(100, 100, 40), (False, True)),
        "200 px: 2.1x too big": (window(100, 100, 200), (False, True)),
    }
    for name, (box, expected) in cases.items():
        _, positive, negative = label_centred_windows(torch.tensor([box]), w)
        assert (bool(positive), bool(negative)) == expected, name
    _, positive, negative = label_centred_windows(torch.zeros(0, 4), w)
    assert not positive.any() and negative.all()
    # two centred objects: the best-centred one is matched
    matched, positive, _ = label_centred_windows(torch.tensor([window(108, 100, 96), window(101, 100, 90)]), w)
    assert bool(positive) and int(matched) == 1


def test_pasted_window_masks_keep_pixel_edges() -> None:
    """A full mask's box is exactly its window (>= 0.5); at 8 px per cell, pixels copy their cell's value
    except within half a cell of a change, where they blend bilinearly (so corners round off)."""
    masks = torch.ones(2, 4, 4)
    masks[1, :, 2:] = 0.0  # right half empty
    pasted = paste_window_masks(masks, torch.tensor([[8.0, 16.0, 40.0, 48.0], [-16.0, -16.0, 16.0, 16.0]]), (64, 64))
    assert masks_to_boxes(pasted[:1] >= 0.5).tolist() == [[8.0, 16.0, 40.0, 48.0]]
    assert (pasted[0, 32] >= 0.5).nonzero().flatten().tolist() == list(range(8, 40))  # a middle row: the edges
    assert pasted[0, 20:44, 12:36].eq(1).all() and pasted[0].max() == 1 and pasted[0, :12].eq(0).all()
    assert not (pasted[1] >= 0.5).any(), "the window's full left half lies outside the image"
    shifted = paste_window_masks(masks[1:], torch.tensor([[0.0, 0.0, 32.0, 32.0]]), (64, 64))[0] >= 0.5
    assert masks_to_boxes(shifted[None]).tolist() == [[0.0, 0.0, 16.0, 32.0]]


def build(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = seglab.model_spec(NAME)
    return seglab.create_model(NAME, num_classes=4, **{**spec.test_kwargs, "window": 8, **kwargs})


def square_target(x1: int, y1: int, side: int, size: tuple[int, int] = (64, 96)) -> InstanceTarget:
    masks = torch.zeros(1, *size, dtype=torch.uint8)
    masks[0, y1: y1 + side, x1: x1 + side] = 1
    return InstanceTarget(boxes_xyxy=torch.tensor([[x1, y1, x1 + side, y1 + side]], dtype=torch.float32),
                          labels=torch.tensor([2]), masks=masks)


def test_mask_loss_reaches_only_positive_windows() -> None:
    """The mask loss's gradient lies inside the positive windows' footprints; with none it is zero."""
    model = build(windows_per_image=1000).train()
    score_maps = torch.zeros(1, 25, 8, 12, requires_grad=True)
    objectness = torch.zeros(1, 4, 8, 12, requires_grad=True)
    target = square_target(36, 20, 36)  # 64-px windows: positives for 31-43 px objects centred within 4.6 px
    windows = model.windows(8, 12, torch.device("cpu"))
    _, positive, _ = label_centred_windows(target.boxes_xyxy, windows)
    assert positive.sum() >= 1
    losses = model.losses(score_maps, objectness, [target])
    assert losses["loss_mask"] > 0
    (grad,) = torch.autograd.grad(losses["loss_mask"], score_maps)
    footprint = torch.zeros(8, 12, dtype=torch.bool)
    for index in positive.nonzero().flatten().tolist():
        r, c = divmod(index, 12)
        footprint[max(r - 4, 0): r + 4, max(c - 4, 0): c + 4] = True
    assert bool((grad[0].abs().sum(0)[~footprint] == 0).all()) and bool(grad.abs().sum() > 0)
    # objectness: the positive windows carry the object's class, CE over the sampled windows
    (obj_grad,) = torch.autograd.grad(losses["loss_objectness"], objectness, retain_graph=True)
    assert bool((obj_grad[0, 2].flatten()[positive] < 0).all())  # pushes class 2 up at the positives
    small = model.losses(score_maps, objectness, [square_target(36, 20, 12)])  # 12 px: never positive
    assert small["loss_mask"] == 0
    (grad,) = torch.autograd.grad(small["loss_mask"], score_maps)
    assert bool((grad == 0).all())


def test_branch_shapes_and_parameters_match_the_paper() -> None:
    instance = InstanceSensitiveBranch(512, k=5, channels=512)
    objectness = ObjectnessBranch(512, num_outputs=2, channels=512)
    assert instance.reduce.kernel_size == (1, 1) and instance.scores.kernel_size == (3, 3)
    assert objectness.conv.kernel_size == (3, 3) and objectness.scores.kernel_size == (1, 1)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(instance) == (512 * 512 + 512) + (512 * 25 * 9 + 25)
    assert count(objectness) == (512 * 512 * 9 + 512) + (512 * 2 + 2)
    features = torch.randn(1, 512, 7, 9)
    assert instance(features).shape == (1, 25, 7, 9) and objectness(features).shape == (1, 2, 7, 9)


def test_parameter_count_of_the_paper_configuration_by_formula() -> None:
    vgg16 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # the 13 convs of VGG-16 (D)
    trunk = sum(c_in * c_out * 9 + c_out for c_in, c_out in vgg16)
    assert trunk == 14_714_688
    branches = (512 * 512 + 512) + (512 * 25 * 9 + 25) + (512 * 512 * 9 + 512) + (512 * 2 + 2)
    spec = seglab.model_spec(NAME)
    assert spec.reference_params == trunk + branches
    with torch.device("meta"):
        model = seglab.create_model(NAME, **spec.reference_kwargs)
    assert sum(p.numel() for p in model.parameters()) == trunk + branches
    assert model.backbone.feature_specs["c5"].stride == 8 and model.assembler.m == 21 and model.assembler.k == 5


def test_a_confident_window_becomes_a_detection_at_its_place() -> None:
    """One window scored for class 3 with all-inside score maps: its mask is its 64-px window cut to the image,
    at every scale of the pyramid, mapped back to the input image."""
    model = build(test_sizes=(64, 128)).eval()

    def branches(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, height, width = images.shape
        objectness = torch.zeros(n, 4, height // 8, width // 8)
        objectness[:, 0] = 5.0
        objectness[:, 3, 2, 3] = 10.0  # the window of cell (2, 3): cells -2..5 x -1..6, pixels -16..48 x -8..56
        return torch.full((n, 25, height // 8, width // 8), 10.0), objectness

    model.branches = branches
    with torch.no_grad():
        (prediction,) = model([torch.rand(3, 64, 96)])
    assert prediction.labels.tolist() == [3] * len(prediction) and len(prediction) >= 1
    assert bool((prediction.scores[:-1] >= prediction.scores[1:]).all())
    # inside the maps: 6 x 7 cells = 48 x 56 px at scale 1, half of that at scale 2 (both kept: IoU 0.25)
    assert prediction.boxes_xyxy.tolist() == [[0.0, 0.0, 56.0, 48.0], [0.0, 0.0, 28.0, 24.0]]


def test_published_recipe_loads_and_builds() -> None:
    recipe = load_recipe("instancefcn_voc2012")
    assert recipe.model.name == NAME and recipe.published and recipe.published.row == "InstanceFCN"
    with torch.device("meta"):
        model = seglab.create_model(NAME, num_classes=21, **model_kwargs(recipe))
    assert model.test_sizes == (119, 178, 267, 400, 600, 900)
    cpu = load_recipe("instancefcn_synthetic_cpu")
    assert cpu.model.name == NAME and cpu.published is None


def test_bad_settings_raise_config_errors() -> None:
    with pytest.raises(seglab.errors.ConfigError, match="num_classes"):
        seglab.create_model(NAME, num_classes=1, backbone="resnet18")
    with pytest.raises(seglab.errors.ConfigError, match="window"):
        seglab.create_model(NAME, num_classes=3, backbone="resnet18", window=3)
