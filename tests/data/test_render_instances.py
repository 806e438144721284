"""draw_instances: one colour per instance, outlines, boxes and labels; render_sample of instance targets."""

from __future__ import annotations

import numpy as np
import pytest

from seglab.data import build_dataset
from seglab.data.render import IGNORE_COLOUR, draw_instances, instance_colours, instance_outline, render_sample

CLASSES = ("background", "cat", "dog")


def grey_image(h: int = 64, w: int = 80) -> np.ndarray:
    return np.full((h, w, 3), 100, dtype=np.uint8)


def rectangle_masks(h: int, w: int, *rects: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """[K, H, W] bool masks of (x1, y1, x2, y2) rectangles (x2 = last column + 1) and their boxes."""
    masks = np.zeros((len(rects), h, w), dtype=bool)
    for mask, (x1, y1, x2, y2) in zip(masks, rects):
        mask[y1:y2, x1:x2] = True
    return masks, np.asarray(rects, dtype=np.float32)


def test_no_instances_returns_the_image() -> None:
    image = grey_image()
    drawn = draw_instances(image, np.zeros((0, 64, 80), dtype=bool), np.zeros((0, 4)), [], classes=CLASSES)
    np.testing.assert_array_equal(drawn, image)
    assert drawn is not image


def test_overlapping_instances_get_distinct_colours_and_full_colour_outlines() -> None:
    masks, _ = rectangle_masks(64, 80, (10, 20, 40, 50), (30, 25, 70, 60))
    drawn = draw_instances(grey_image(), masks, None, [1, 2], classes=CLASSES)
    colours = instance_colours(2)
    assert tuple(drawn[40, 15]) != tuple(drawn[40, 60])  # interiors of instance 0 and 1
    assert tuple(drawn[40, 15]) != (100, 100, 100)
    assert tuple(drawn[49, 15]) == tuple(colours[0])  # bottom edge of instance 0, outside instance 1
    assert tuple(drawn[59, 60]) == tuple(colours[1])
    assert tuple(drawn[40, 69]) == tuple(colours[1])  # right edge


def test_colours_are_distinct_deterministic_and_never_white() -> None:
    colours = instance_colours(50)
    assert len({tuple(c) for c in colours}) == 50
    np.testing.assert_array_equal(colours, instance_colours(50))
    assert not any(tuple(c) == IGNORE_COLOUR for c in colours)


def test_outline_is_the_mask_minus_its_erosion() -> None:
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:7] = True
    outline = instance_outline(mask)
    expected = mask.copy()
    expected[3:5, 3:6] = False
    np.testing.assert_array_equal(outline, expected)
    assert instance_outline(mask, width=2).sum() == mask.sum()  # 4 rows: two-pixel rings cover it


def test_box_and_label_are_drawn_above_the_box() -> None:
    image = grey_image()
    masks, boxes = rectangle_masks(64, 80, (30, 30, 40, 40))
    masks[:] = False  # no mask pixels: whatever changes is the box or the label
    drawn = draw_instances(image, masks, boxes, [2], classes=CLASSES, scores=[0.93])
    colour = tuple(instance_colours(1)[0])
    for y, x in ((30, 30), (30, 39), (39, 30), (39, 39), (35, 30), (30, 35)):  # corners and edges of the box
        assert tuple(drawn[y, x]) == colour, (y, x)
    assert tuple(drawn[35, 35]) == (100, 100, 100)  # inside the box: untouched
    assert (drawn[:30] != image[:30]).any(axis=2)[15:30, 30:60].sum() > 50  # label region above the box
    assert (drawn[41:] == image[41:]).all()  # nothing below the box


def test_label_stays_inside_when_the_box_touches_the_top() -> None:
    image = grey_image()
    masks, boxes = rectangle_masks(64, 80, (5, 0, 60, 40))
    drawn = draw_instances(image, masks, boxes, [1], classes=CLASSES, scores=[0.5])
    assert (drawn[1:12, 6:30] == instance_colours(1)[0]).all(axis=2).sum() > 30  # label background inside


def test_mask_of_another_size_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"masks has shape \[1, 32, 40\]; expected \[1, 64, 80\]"):
        draw_instances(grey_image(), np.zeros((1, 32, 40), dtype=bool), None, [1], classes=CLASSES)


def test_render_sample_draws_instance_targets() -> None:
    data = build_dataset("synthetic", split="val", task="instance", num_images=2, size=(64, 96))
    image, target = data[0]
    strip = render_sample(image, target, data.palette, classes=data.classes)
    assert strip.shape == (64, 3 * 96, 3)
    rgb = image.permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(strip[:, :96], rgb)
    masks = target["masks"].numpy().astype(bool)
    panel = strip[:, 192:]
    for mask, colour in zip(masks, instance_colours(len(masks))):  # each instance outlined in its own colour
        assert (panel[instance_outline(mask)] == colour).all(axis=1).mean() > 0.5
    assert (panel[~masks.any(axis=0)] != rgb[~masks.any(axis=0)]).any()  # boxes and labels drawn
