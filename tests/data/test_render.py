"""Real samples load and render: image | colour labels | overlay strips, for every real dataset in shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require_dataset
from PIL import Image
from typer.testing import CliRunner

from seglab.cli.app import app
from seglab.data import build_dataset
from seglab.data.render import IGNORE_COLOUR, render_sample, target_labels

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
    assert Image.open(tmp_path / "coco_val_00000.png").size == (3 * 640, 427)


@pytest.mark.parametrize(("args", "message"), [
    (["-O", "folder"], "must look like key=value"),
    (["-O", "folder=coco_tiny", "-i", "500"], "out of range"),
])
def test_cli_render_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    require_dataset("coco_tiny")
    result = CliRunner().invoke(app, ["data", "render", "coco", "--split", "val", "--out", str(tmp_path), *args])
    assert result.exit_code != 0
    assert message in str(result.exception)
