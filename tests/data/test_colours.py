"""Class colours: distinct and never the ignore colour; palette-mode label PNGs; legends."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from PIL import Image

import seglab.data.datasets as datasets
from seglab.data.colours import IGNORE_COLOUR, class_colours, read_label_png, with_legend, write_label_png


def _palettes() -> list[tuple[str, list]]:
    """Every dataset palette declared on its class (those set from files are VOC colours)."""
    found = []
    for name in datasets.__all__:
        cls = getattr(datasets, name)
        palette = getattr(cls, "palette", None) if inspect.isclass(cls) else None
        if isinstance(palette, (list, tuple)) and palette:
            found.append((name, list(palette)))
    return found


def test_every_dataset_palette_gives_distinct_colours_and_none_white() -> None:
    palettes = _palettes()
    assert len(palettes) >= 5, [n for n, _ in palettes]
    for name, palette in palettes:
        colours = class_colours(palette, len(palette))
        keys = {tuple(c) for c in colours.tolist()}
        assert len(keys) == len(palette), name
        assert IGNORE_COLOUR not in keys, name


def test_isbi_cells_are_no_longer_drawn_in_the_ignore_colour() -> None:
    assert tuple(datasets.ISBI2012EM.palette[0]) != IGNORE_COLOUR
    assert tuple(datasets.ISBICellTracking.palette[1]) != IGNORE_COLOUR


def test_class_colours_keeps_good_palettes_and_repairs_bad_ones() -> None:
    good = [(10, 20, 30), (40, 50, 60)]
    assert class_colours(good, 2).tolist() == [list(c) for c in good]
    bad = class_colours([(255, 255, 255), (1, 2, 3), (1, 2, 3)], 5)  # white, a duplicate, 2 missing
    keys = [tuple(c) for c in bad.tolist()]
    assert keys[1] == (1, 2, 3) and len(set(keys)) == 5 and IGNORE_COLOUR not in keys
    assert np.array_equal(bad, class_colours([(255, 255, 255), (1, 2, 3), (1, 2, 3)], 5))  # deterministic
    many = class_colours(None, 300)
    assert len({tuple(c) for c in many.tolist()}) == 300


def test_label_png_is_palette_mode_with_class_ids_as_values(tmp_path) -> None:
    labels = np.array([[0, 1, 2], [255, 1, 0]], dtype=np.int64)
    colours = class_colours([(0, 0, 0), (200, 0, 0), (0, 200, 0)], 3)
    write_label_png(labels, tmp_path / "l.png", colours)
    image = Image.open(tmp_path / "l.png")
    assert image.mode == "P"
    assert np.array_equal(np.asarray(image), labels) and np.array_equal(read_label_png(tmp_path / "l.png"), labels)
    rgb = np.asarray(image.convert("RGB"))
    assert tuple(rgb[0, 1]) == (200, 0, 0) and tuple(rgb[1, 0]) == IGNORE_COLOUR
    with pytest.raises(ValueError, match="0..255"):
        write_label_png(np.array([[300]]), tmp_path / "x.png", colours)


def test_legend_names_the_classes_below_the_picture() -> None:
    picture = np.zeros((40, 300, 3), np.uint8)
    colours = class_colours([(200, 0, 0), (0, 200, 0), (0, 0, 200)], 3)
    out = with_legend(picture, ["road", "car", "sky"], colours, present=[0, 2], ignored=True)
    assert out.shape[1:] == (300, 3) and out.shape[0] > 40 and np.array_equal(out[:40], picture)
    strip = {tuple(c) for c in out[40:].reshape(-1, 3).tolist()}
    assert (200, 0, 0) in strip and (0, 0, 200) in strip and (0, 200, 0) not in strip and IGNORE_COLOUR in strip
    narrow = with_legend(np.zeros((10, 60, 3), np.uint8), ["a" * 12] * 3, colours)  # wraps onto several rows
    assert narrow.shape[0] > out.shape[0] - 40 + 10
