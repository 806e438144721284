"""Real samples load and render: image | colour labels | overlay strips, for every real dataset in shared/data;
draw_panoptic on a hand-made scene and on the COCO panoptic sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_dataset
from PIL import Image
from typer.testing import CliRunner

from seglab.cli.app import app
from seglab.data import build_dataset
from seglab.data.render import IGNORE_COLOUR, draw_panoptic, instance_shade, render_sample, target_labels

REAL = {  # dataset name -> (data folder, options, split)
    "camvid": ("camvid", {}, "val"),
    "isbi2012_em": ("isbi2012_em", {}, "val"),
    "cityscapes": ("cityscapes_sample", {"folder": "cityscapes_sample"}, "all"),
    "coco": ("coco_tiny", {"folder": "coco_tiny"}, "val"),
    "coco_panoptic": ("coco_panoptic_sample", {
        "folder": "coco_panoptic_sample", "json_file": "panoptic_examples.json",
        "panoptic_dir": "panoptic_examples", "image_dir": "input_images"}, "val"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_sample_renders_with_labels_in_place(name: str) -> None:
    folder, options, split = REAL[name]
    require_dataset(folder)
    data = build_dataset(name, split=split, **options)
    image, target = data[0]
    strip = render_sample(image, target, data.palette)
    height, width = image.shape[-2:]
    assert strip.shape == (height, 3 * width, 3)
    np.testing.assert_array_equal(strip[:, :width], image.permute(1, 2, 0).numpy())  # the image, untouched
    labels, _ = target_labels(target)
    palette = np.asarray(data.palette, dtype=np.uint8)
    for value in np.unique(labels)[:5]:  # each label's pixels carry its colour (or white when ignored)
        y, x = np.argwhere(labels == value)[0]
        expected = IGNORE_COLOUR if value == data.ignore_index else tuple(palette[value])
        assert tuple(strip[y, width + x]) == expected, (name, int(value))


def test_cli_render_writes_strips_and_names_the_classes(tmp_path: Path) -> None:
    require_dataset("coco_tiny")
    result = CliRunner().invoke(app, ["data", "render", "coco", "-O", "folder=coco_tiny", "--split", "val",
                                      "-i", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "person" in result.stdout
    strip = Image.open(tmp_path / "coco_val_00000.png")
    assert strip.size[0] == 3 * 640 and strip.size[1] > 427  # image | labels | overlay, then the legend below


@pytest.mark.parametrize(("args", "message"), [
    (["-O", "folder"], "must look like key=value"),
    (["-O", "folder=coco_tiny", "-i", "500"], "out of range"),
])
def test_cli_render_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    require_dataset("coco_tiny")
    result = CliRunner().invoke(app, ["data", "render", "coco", "--split", "val", "--out", str(tmp_path), *args])
    assert result.exit_code != 0
    assert message in str(result.exception)


# --- draw_panoptic ----------------------------------------------------------------------------------

PANOPTIC_PALETTE = [(0, 200, 0), (200, 0, 0), (0, 0, 200)]  # stuff 0, things 1 and 2


def _panoptic_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey 20x24 image; stuff class 0, void rows 0-2, thing 1 instances 1 | 2 side by side, a crowd of class 2."""
    image = np.full((20, 24, 3), 100, dtype=np.uint8)
    semantic = np.zeros((20, 24), dtype=np.int64)
    instance_ids = np.zeros((20, 24), dtype=np.int64)
    semantic[:3] = 255
    semantic[5:15, 4:10], instance_ids[5:15, 4:10] = 1, 1
    semantic[5:15, 10:16], instance_ids[5:15, 10:16] = 1, 2
    semantic[16:19, 18:22] = 2  # instance id 0: a crowd region
    return image, semantic, instance_ids


def test_draw_panoptic_fills_outlines_and_leaves_void() -> None:
    image, semantic, instance_ids = _panoptic_scene()
    drawn = draw_panoptic(image, semantic, instance_ids, palette=PANOPTIC_PALETTE, thing_classes=(1, 2))
    assert isinstance(drawn, Image.Image) and drawn.mode == "RGB" and drawn.size == (24, 20)
    out = np.asarray(drawn)
    np.testing.assert_array_equal(out[:3], image[:3])  # void: the image itself
    assert tuple(out[10, 0]) == (50, 150, 50)  # stuff: half image, half class colour
    shade_1, shade_2 = instance_shade(PANOPTIC_PALETTE[1], 1), instance_shade(PANOPTIC_PALETTE[1], 2)
    assert tuple(shade_1) != tuple(shade_2)
    assert tuple(out[10, 9]) == tuple(shade_1) and tuple(out[10, 10]) == tuple(shade_2)  # the shared boundary
    assert tuple(out[5, 6]) == tuple(shade_1) and tuple(out[14, 12]) == tuple(shade_2)  # top and bottom edges
    expected_inside = (image[10, 6].astype(np.float32) * 0.5 + shade_1 * 0.5).round().astype(np.uint8)
    assert tuple(out[10, 6]) == tuple(expected_inside)  # interior: filled, not outlined
    assert (out[16:19, 18:22] == (50, 50, 150)).all()  # crowd: the plain class colour, no outline
    np.testing.assert_array_equal(image, _panoptic_scene()[0])  # the input is not modified


def test_draw_panoptic_takes_tensors_and_checks_inputs() -> None:
    image, semantic, instance_ids = _panoptic_scene()
    from_tensors = draw_panoptic(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(semantic),
                                 torch.from_numpy(instance_ids), palette=PANOPTIC_PALETTE, thing_classes=(1, 2))
    from_arrays = draw_panoptic(image, semantic, instance_ids, palette=PANOPTIC_PALETTE, thing_classes=(1, 2))
    np.testing.assert_array_equal(np.asarray(from_tensors), np.asarray(from_arrays))
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] but the palette has 2 colours"):
        draw_panoptic(image, semantic, instance_ids, palette=PANOPTIC_PALETTE[:2], thing_classes=(1, 2))
    with pytest.raises(ValueError, match=r"must both be \[H, W\] at the image size \[20, 24\]"):
        draw_panoptic(image, semantic[:10], instance_ids[:10], palette=PANOPTIC_PALETTE, thing_classes=(1, 2))


def test_instance_shades_are_deterministic_and_distinct() -> None:
    for colour in ((220, 20, 60), (0, 0, 0), (255, 255, 255)):
        shades = [tuple(instance_shade(colour, i)) for i in range(1, 11)]
        assert len(set(shades)) == 10, colour
        assert shades == [tuple(instance_shade(colour, i)) for i in range(1, 11)]


def test_draw_panoptic_on_the_coco_sample() -> None:
    folder, options, split = REAL["coco_panoptic"]
    require_dataset(folder)
    data = build_dataset("coco_panoptic", split=split, **options)
    image, target = data[1]
    semantic, instance_ids = target["semantic"].numpy(), target["instance_ids"].numpy()
    drawn = draw_panoptic(image, semantic, instance_ids, palette=data.palette, thing_classes=data.thing_classes)
    out = np.asarray(drawn)
    rgb = image.permute(1, 2, 0).numpy()
    assert out.shape == rgb.shape
    void = semantic == 255
    np.testing.assert_array_equal(out[void], rgb[void])
    for instance in (1, 2, 26):  # each instance's edge carries its own shade
        cls = int(semantic[instance_ids == instance][0])
        member = instance_ids == instance
        edge = member & ~np.pad(member, 1)[2:, 1:-1]  # its pixels with no member below
        assert (out[edge] == instance_shade(data.palette[cls], instance)).all(axis=1).all(), instance
