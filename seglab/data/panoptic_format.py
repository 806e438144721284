"""COCO panoptic format (https://cocodataset.org/#format-results): one RGB PNG per image plus a JSON.

A PNG pixel's segment id is ``R + 256 G + 256^2 B``, 0 = void; each other id is one entry ``{"id",
"category_id", "iscrowd", "area", "bbox" [x, y, w, h]}`` of the ``segments_info`` of its entry in the
JSON's ``annotations`` (``image_id``, ``file_name``, ``segments_info``); ``categories`` hold ``id``,
``name``, ``isthing``, ``color``. seglab's side: ``semantic`` [H, W] int64 class 0..C-1 (255 = void)
and ``instance_ids`` [H, W] int64, > 0 on a thing instance, 0 on stuff and void; a thing-class pixel
with instance id 0 is a crowd region (one ``iscrowd: 1`` segment per class). Classes are the
categories sorted by id (``sorted_categories``), as ``CocoPanoptic`` numbers them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from scipy import ndimage

from seglab.data.base import IGNORE_INDEX, default_palette, open_image_file
from seglab.data.datasets.coco_json import _field, load_coco_json
from seglab.errors import ConfigError, DataError, InputError

__all__ = [
    "PanopticWriter", "check_segments_info", "decode_panoptic", "encode_panoptic", "panoptic_ids",
    "read_panoptic_folder", "sorted_categories",
]  # fmt: skip


def panoptic_ids(path: Path) -> np.ndarray:
    """Read a COCO panoptic PNG as segment ids ``R + 256 G + 256^2 B``, [H, W] int64.

    Raises:
        DataError: unreadable file, or not an RGB image.
    """
    image = open_image_file(path)
    if image.mode != "RGB":
        raise DataError(f"panoptic PNG {str(path)!r} has mode {image.mode!r}; expected RGB (id = R + 256 G + 256^2 B)")
    return _rgb_to_ids(np.asarray(image))


def sorted_categories(categories: list[Any], *, source: str | Path) -> list[dict[str, Any]]:
    """Check ``categories`` (``id``, ``name``, ``isthing`` each) and return them sorted by id: class k is entry k.

    Raises:
        DataError: a missing field or a repeated id, naming ``source`` (the JSON file) and the entry.
    """
    table: dict[int, dict[str, Any]] = {}
    for k, category in enumerate(categories):
        where = f"{str(source)!r}: categories[{k}]"
        category_id = _field(category, "id", int, where)
        if category_id in table:
            raise DataError(f"{where}: category id {category_id} appears twice")
        _field(category, "name", str, where)
        _field(category, "isthing", int, where)
        table[category_id] = category
    return [table[i] for i in sorted(table)]


def encode_panoptic(
    semantic: np.ndarray | torch.Tensor, instance_ids: np.ndarray | torch.Tensor, *,
    thing_classes: Sequence[int], category_ids: Sequence[int], ignore_index: int = IGNORE_INDEX,
) -> tuple[np.ndarray, list[dict[str, Any]]]:  # fmt: skip
    """Encode one image's panoptic maps as a COCO panoptic PNG and its ``segments_info``.

    Segment ids 1, 2, ... go by (instance id, class): one per stuff class and one ``iscrowd: 1``
    per thing class with instance id 0, then one per (thing class, instance id > 0), so
    ``decode_panoptic`` numbers the instances in the input's order. Stuff ignores instance ids.

    Args:
        semantic: [H, W] int class 0..C-1 per pixel, ``ignore_index`` = void (segment id 0).
        instance_ids: [H, W] int >= 0 (see the module docstring).
        thing_classes: the class ids that are things.
        category_ids: [C] the category id of each class (index = class).

    Returns:
        rgb [H, W, 3] uint8 (id = R + 256 G + 256^2 B) and segments_info, one dict per segment id.

    Raises:
        InputError: not two integer [H, W] maps of one shape; a class outside 0..C-1; an id < 0.
    """
    semantic, instance_ids = _label_map(semantic, "semantic"), _label_map(instance_ids, "instance_ids")
    if semantic.shape != instance_ids.shape:
        raise InputError(f"encode_panoptic: semantic {list(semantic.shape)} and instance_ids "
                         f"{list(instance_ids.shape)} must have one shape [H, W]")
    void, num_classes = semantic == ignore_index, len(category_ids)
    bad = np.unique(semantic[~void & ((semantic < 0) | (semantic >= num_classes))])
    if bad.size:
        raise InputError(f"encode_panoptic: semantic holds class(es) {bad[:5].tolist()}; expected "
                         f"0..{num_classes - 1} (one per category_ids entry) or {ignore_index} (void)")
    if (instance_ids < 0).any():
        raise InputError("encode_panoptic: instance_ids holds negative values; expected 0 (stuff, void, crowd) or > 0")
    things = {int(c) for c in thing_classes}
    is_thing = np.isin(semantic, sorted(things)) & ~void
    key = np.where(void, -1, np.where(is_thing, instance_ids, 0) * num_classes + semantic)
    keys, inverse = np.unique(key, return_inverse=True)  # sorted: void, instance 0 by class, instances
    ids = inverse.reshape(key.shape) + (0 if void.any() else 1)  # void (key -1) -> 0, segments 1..N
    keys = keys[keys >= 0]
    areas = np.bincount(ids.ravel(), minlength=keys.size + 1)
    segments_info = []
    for segment_id, (key_value, (rows, cols)) in enumerate(zip(keys.tolist(), ndimage.find_objects(ids)), start=1):
        cls, instance = key_value % num_classes, key_value // num_classes
        bbox = [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start]  # x, y, w, h
        segments_info.append({
            "id": segment_id, "category_id": int(category_ids[cls]), "iscrowd": int(cls in things and instance == 0),
            "area": int(areas[segment_id]), "bbox": bbox,
        })  # fmt: skip
    return _ids_to_rgb(ids), segments_info


def decode_panoptic(
    rgb_or_ids: np.ndarray, segments_info: Sequence[Mapping[str, Any]], *, category_to_class: Mapping[int, int],
    thing_classes: Sequence[int], ignore_index: int = IGNORE_INDEX,
    png: str | Path | None = None, json_file: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Decode a COCO panoptic PNG into (semantic [H, W] int64, instance_ids [H, W] int64).

    Instance ids 1..K number the non-crowd thing segments in ``segments_info`` order; stuff, crowd
    and void get instance id 0, void (segment id 0) the class ``ignore_index``.

    Args:
        rgb_or_ids: [H, W, 3] uint8 PNG pixels, or [H, W] int segment ids.
        segments_info: the annotation's segments (``id``, ``category_id``, optional ``iscrowd``).
        category_to_class: category id -> class 0..C-1.
        thing_classes: the class ids that are things.
        png, json_file: the files they come from, for the errors.

    Raises:
        DataError: a PNG id not in ``segments_info``, a listed id without a pixel, an unknown category.
    """
    ids = _rgb_to_ids(rgb_or_ids) if np.ndim(rgb_or_ids) == 3 else _label_map(rgb_or_ids, "segment ids")
    png_text = "the panoptic map" if png is None else f"panoptic PNG {str(png)!r}"
    json_text = "segments_info" if json_file is None else repr(str(json_file))
    present, inverse = np.unique(ids, return_inverse=True)
    listed = {info["id"]: info for info in segments_info}
    unknown = [int(i) for i in present if i != 0 and i not in listed]
    if unknown:
        raise DataError(f"{png_text} has segment id(s) {unknown[:5]} not in {json_text}")
    absent = sorted(set(listed) - set(present.tolist()))
    if absent:
        of = "the panoptic map" if png is None else Path(png).name
        raise DataError(f"{json_text}: segment id(s) {absent[:5]} of {of} have no pixel in the PNG")
    things = {int(c) for c in thing_classes}
    semantic_lut = np.full(present.size, ignore_index, dtype=np.int64)
    instance_lut = np.zeros(present.size, dtype=np.int64)
    position = {int(i): k for k, i in enumerate(present)}
    next_instance = 1
    for info in segments_info:  # segments_info order fixes the instance numbering
        if info["category_id"] not in category_to_class:
            raise DataError(f"{json_text}: segment {info['id']} of {png_text}: unknown category_id "
                            f"{info['category_id']} (not in 'categories')")
        cls = category_to_class[info["category_id"]]
        semantic_lut[position[info["id"]]] = cls
        if cls in things and not info.get("iscrowd", 0):
            instance_lut[position[info["id"]]] = next_instance
            next_instance += 1
    inverse = inverse.reshape(ids.shape)
    return semantic_lut[inverse], instance_lut[inverse]


class PanopticWriter:
    """Write panoptic maps as a COCO panoptic folder: ``panoptic/<stem>.png`` and ``panoptic.json``.

    Args:
        folder: the output folder (created).
        classes: class names, index = class id.
        thing_classes: the class ids that are things (``isthing: 1``).
        category_ids: the category id of each class (index = class), e.g. ``CocoPanoptic.category_ids``.
        palette: one (r, g, b) per class for ``categories[*].color``; default the VOC colours.

    Raises:
        ConfigError: ``category_ids`` or ``palette`` not one per class, or a repeated category id.
        DataError: the folder cannot be created.
    """

    def __init__(self, folder: str | Path, *, classes: Sequence[str], thing_classes: Sequence[int],
                 category_ids: Sequence[int], palette: Sequence[Sequence[int]] | None = None) -> None:
        palette = default_palette(len(classes)) if palette is None else palette
        if len(category_ids) != len(classes) or len(palette) < len(classes):
            raise ConfigError(f"PanopticWriter: {len(classes)} classes need as many category_ids (got "
                              f"{len(category_ids)}) and palette colours (got {len(palette)})")
        if len(set(category_ids)) != len(category_ids):
            raise ConfigError(f"PanopticWriter: category_ids {list(category_ids)} repeat an id; one per class")
        self.folder, self.png_dir = Path(folder), Path(folder) / "panoptic"
        self.thing_classes = tuple(int(c) for c in thing_classes)
        self.category_ids = [int(i) for i in category_ids]
        self.categories = sorted(({
            "id": category_id, "name": name, "isthing": int(cls in self.thing_classes),
            "color": [int(c) for c in palette[cls]],
        } for cls, (category_id, name) in enumerate(zip(self.category_ids, classes))), key=lambda c: c["id"])
        self.annotations: list[dict[str, Any]] = []
        self._image_ids: set[int] = set()  # add() refuses repeats without scanning the annotations
        self._file_names: set[str] = set()
        try:
            self.png_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"cannot create the panoptic output folder {str(self.png_dir)!r}: {err}") from err

    def add(self, image_id: int, file_stem: str, semantic: np.ndarray | torch.Tensor,
            instance_ids: np.ndarray | torch.Tensor) -> None:
        """Encode one image's maps (see ``encode_panoptic``) into ``panoptic/<file_stem>.png``.

        Raises:
            InputError: bad maps, or an image id or file stem already added.
            DataError: the PNG cannot be written.
        """
        file_name = f"{file_stem}.png"
        if image_id in self._image_ids or file_name in self._file_names:
            raise InputError(f"PanopticWriter.add: image id {image_id} or file {file_name!r} was already added")
        rgb, segments_info = encode_panoptic(semantic, instance_ids, thing_classes=self.thing_classes,
                                             category_ids=self.category_ids)
        path = self.png_dir / file_name
        try:
            PILImage.fromarray(rgb).save(path)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot write panoptic PNG {str(path)!r}: {err}") from err
        self.annotations.append({"image_id": int(image_id), "file_name": file_name, "segments_info": segments_info})
        self._image_ids.add(int(image_id))
        self._file_names.add(file_name)

    def close(self) -> Path:
        """Write ``<folder>/panoptic.json`` (annotations and categories) and return its path."""
        path = self.folder / "panoptic.json"
        try:
            path.write_text(json.dumps({"annotations": self.annotations, "categories": self.categories}))
        except OSError as err:
            raise DataError(f"cannot write panoptic JSON {str(path)!r}: {err}") from err
        return path


def read_panoptic_folder(
    json_file: str | Path, png_dir: str | Path, *,
    category_to_class: Mapping[int, int] | None = None, thing_classes: Sequence[int] | None = None,
) -> Iterator[tuple[int, str, np.ndarray, np.ndarray]]:  # fmt: skip
    """Read a panoptic JSON and its PNGs: ``(image_id, file_name, semantic, instance_ids)`` per annotation.

    The JSON is checked at the call, each PNG decoded (``decode_panoptic``) when the iterator reaches it.

    Args:
        json_file: the panoptic JSON.
        png_dir: the folder of ``annotations[*].file_name``.
        category_to_class: category id -> class; default the JSON's categories sorted by id.
        thing_classes: the thing class ids; default those of the categories with ``isthing: 1``.

    Raises:
        DataError: unreadable JSON, a missing field or an unknown category id (naming the file and
            the annotation); on iteration a missing PNG or one that disagrees with its segments.
    """
    json_path, png_dir = Path(json_file), Path(png_dir)
    derive = category_to_class is None or thing_classes is None
    data = load_coco_json(json_path, required=("annotations", "categories") if derive else ("annotations",))
    if derive:
        ordered = sorted_categories(data["categories"], source=json_path)
        if category_to_class is None:
            category_to_class = {c["id"]: k for k, c in enumerate(ordered)}
        if thing_classes is None:
            thing_classes = [category_to_class[c["id"]] for c in ordered
                             if c["isthing"] and c["id"] in category_to_class]
    items = []
    for k, ann in enumerate(data["annotations"]):
        where = f"{str(json_path)!r}: annotations[{k}]"
        image_id, file_name = _field(ann, "image_id", int, where), _field(ann, "file_name", str, where)
        segments = check_segments_info(_field(ann, "segments_info", list, where),
                                       where=f"{where} (image id {image_id})", category_to_class=category_to_class)
        items.append((where, image_id, file_name, segments))

    def decode_all() -> Iterator[tuple[int, str, np.ndarray, np.ndarray]]:
        for where, image_id, file_name, segments in items:
            png = png_dir / file_name
            if not png.is_file():
                raise DataError(f"{where}: panoptic PNG {str(png)!r} (image id {image_id}) is missing")
            semantic, instance_ids = decode_panoptic(panoptic_ids(png), segments, category_to_class=category_to_class,
                                                     thing_classes=thing_classes, png=png, json_file=json_path)
            yield image_id, file_name, semantic, instance_ids

    return decode_all()


def check_segments_info(segments_info: list[Any], *, where: str, category_to_class: Mapping[int, int]) -> list[Any]:
    """Check that each segment has an int ``id`` and a known ``category_id``; return ``segments_info``.

    Raises:
        DataError: "<where> segment <id>: ..." naming the field, the unknown category id or the id listed twice.
    """
    seen: set[int] = set()
    for info in segments_info:
        segment_where = f"{where} segment {info.get('id') if isinstance(info, dict) else '?'}"
        if _field(info, "id", int, segment_where) in seen:
            raise DataError(f"{segment_where}: segment id {info['id']} is listed twice in segments_info; keep one")
        seen.add(info["id"])
        if _field(info, "category_id", int, segment_where) not in category_to_class:
            raise DataError(f"{segment_where}: unknown category_id {info['category_id']} (not in 'categories')")
    return segments_info


def _label_map(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} has {array.dtype} {list(array.shape)}; expected an integer [H, W] map")
    return array.astype(np.int64, copy=False)


def _rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"panoptic PNG pixels have shape {list(rgb.shape)}; expected [H, W, 3] RGB")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // (256 * 256)], axis=-1).astype(np.uint8)
