"""Class colours, label PNGs that show them, and legends.

One place decides how a class looks: ``class_colours`` takes a dataset's palette and guarantees one
distinct colour per class, none of them the white of ignored pixels (ISBI's cells were white, so
they vanished into the ignore colour). ``write_label_png`` saves a label map as a palette-mode PNG:
pixel values stay class ids (``PIL.Image.open(...)`` and every seglab reader return them), while an
image viewer shows the class colours instead of a near-black grayscale. ``with_legend`` appends a
strip of colour swatches and class names under a picture (``data render`` and ``predict`` overlays).
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from seglab.data.base import IGNORE_INDEX, default_palette

__all__ = ["IGNORE_COLOUR", "class_colours", "label_font", "read_label_png", "with_legend", "write_label_png"]

IGNORE_COLOUR = (255, 255, 255)  # ignored pixels are white in colour label maps
GOLDEN_RATIO_CONJUGATE = 0.618033988749895  # successive hues a golden-ratio turn apart never cluster


def class_colours(palette: Sequence[Sequence[int]] | np.ndarray | None, num_classes: int) -> np.ndarray:
    """[num_classes, 3] uint8: the palette's colours, made distinct and never the ignore colour.

    Classes beyond the palette get the VOC colour map; a colour equal to ``IGNORE_COLOUR`` or to an
    earlier class's is replaced by the first unused colour of a golden-ratio hue sequence, so the
    same palette always gives the same colours.
    """
    colours = np.asarray(default_palette(num_classes), dtype=np.uint8).reshape(-1, 3)
    given = np.asarray([] if palette is None else [tuple(c)[:3] for c in palette], dtype=np.int64).reshape(-1, 3)
    count = min(len(given), num_classes)
    colours[:count] = np.clip(given[:count], 0, 255)
    used: set[tuple[int, ...]] = {IGNORE_COLOUR}
    spare = _spare_colours()
    for i in range(num_classes):
        key = tuple(int(c) for c in colours[i])
        while key in used:
            key = next(spare)
        colours[i] = key
        used.add(key)
    return colours


def write_label_png(labels: np.ndarray, path: str | Path, colours: np.ndarray, *,
                    ignore_index: int = IGNORE_INDEX) -> None:
    """Save [H, W] class ids as a palette-mode PNG: value = class id, shown in its class colour.

    ``ignore_index`` (255) shows as ``IGNORE_COLOUR``. Ids must fit in 0..255 (a PNG palette has 256
    entries); more classes than that raise ValueError.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"write_label_png: labels span {int(labels.min())}..{int(labels.max())}; a palette PNG "
                         "holds ids 0..255")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: min(len(colours), 256)] = np.asarray(colours, dtype=np.uint8)[:256]
    if 0 <= ignore_index < 256:
        table[ignore_index] = IGNORE_COLOUR
    image = PILImage.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(table.reshape(-1).tolist())
    image.save(path)


def read_label_png(path: str | Path) -> np.ndarray:
    """[H, W] class ids of a label PNG written by ``write_label_png`` (or a grayscale one)."""
    with PILImage.open(path) as image:
        return np.asarray(image if image.mode in ("P", "L", "I", "I;16") else image.convert("L")).astype(np.int64)


def with_legend(image: np.ndarray, classes: Sequence[str], colours: np.ndarray, *,
                present: Sequence[int] | None = None, ignored: bool = False) -> np.ndarray:
    """``image`` [H, W, 3] uint8 with a legend strip below: a swatch and the name of each class.

    Args:
        classes: class names, index = class id (ids beyond it are shown as numbers).
        colours: [>= C, 3] the class colours (``class_colours``).
        present: the class ids to list (e.g. those in the picture); default all.
        ignored: add a white "ignored" swatch.
    """
    h, w = image.shape[:2]
    ids = list(range(len(colours))) if present is None else [int(i) for i in present]
    entries = [(classes[i] if 0 <= i < len(classes) else str(i), tuple(int(c) for c in colours[i]))
               for i in ids if 0 <= i < len(colours)]
    if ignored:
        entries.append(("ignored", IGNORE_COLOUR))
    if not entries:
        return image
    font = label_font(int(np.clip(w / 48, 10, 18)))
    probe = ImageDraw.Draw(PILImage.new("RGB", (1, 1)))
    line = max(probe.textbbox((0, 0), "Ag", font=font)[3], 10) + 6
    swatch, gap = line - 6, 12
    widths = [swatch + 4 + int(probe.textlength(name, font=font)) + gap for name, _ in entries]
    rows, x = [[]], 4
    for entry, width in zip(entries, widths):
        if x + width > w and rows[-1]:
            rows.append([])
            x = 4
        rows[-1].append((entry, x))
        x += width
    strip = PILImage.new("RGB", (w, line * len(rows) + 4), (32, 32, 32))
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        top = 2 + r * line + 3
        for (name, colour), left in row:
            draw.rectangle([left, top, left + swatch - 1, top + swatch - 1], fill=colour, outline=(200, 200, 200))
            draw.text((left + swatch + 4, top - 1), name, fill=(240, 240, 240), font=font)
    return np.concatenate([np.asarray(image, dtype=np.uint8), np.asarray(strip)], axis=0)


def _spare_colours():  # noqa: ANN202 - an endless generator of (r, g, b)
    """Saturated colours, hues a golden-ratio turn apart, three brightness levels."""
    i = 0
    while True:
        hue = (0.07 + i * GOLDEN_RATIO_CONJUGATE) % 1.0
        value = (0.9, 0.65, 0.45)[(i // 7) % 3]
        yield tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 0.85, value))
        i += 1


@functools.lru_cache(maxsize=8)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font (offline); Pillow < 10.1 has only the fixed-size bitmap one."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()
