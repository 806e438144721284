"""Reading a COCO instances JSON into checked records, raising on the first problem or recording all.

Used by ``CocoInstances`` (``seglab.data.datasets.coco``). Every problem names the JSON file, the
record (image id, annotation id or ``categories[k]``) and the fix. With ``strict`` the first one
raises a ``DataError``; otherwise each is recorded and the bad record is left out:

- categories: missing ``id``/``name``, a category id declared twice (the later one is left out);
- images: missing ``id``/``file_name``/``height``/``width``, a size that is not positive, an image
  id used twice (the later record is left out), a ``file_name`` that leaves the image folder (an
  absolute path or one through ``..``: refused, never read), an image file missing from the folder;
- annotations: missing ``id``/``image_id``/``category_id``, an annotation id used twice (the later
  one is left out), a category not declared in ``categories``, an ``image_id`` not in ``images``,
  an RLE whose ``size`` differs from the image, polygons with fewer than 3 points.

Annotations of images left out are left out with them, without a problem of their own. The JSON
``bbox`` is not used (boxes are recomputed from the decoded masks), so ``bbox_problems`` reports a
bbox outside its image only when asked (``seglab data check``).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from seglab.data.masks import check_polygons
from seglab.errors import DataError

__all__ = ["CocoRecords", "Problems", "bbox_problems", "load_coco_json", "read_instances"]

# COCO polygons are floats; their boxes may pass the border by rounding. Beyond this is an error.
BBOX_SLACK = 1.0  # pixels


def load_coco_json(path: Path, *, required: tuple[str, ...]) -> dict[str, Any]:
    """Read a COCO-style JSON file and check its top-level keys.

    Raises:
        DataError: missing file, invalid JSON (with line and column), or a missing top-level key.
    """
    if not path.is_file():
        raise DataError(f"annotation file {str(path)!r} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{str(path)!r} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read annotation file {str(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{str(path)!r}: expected a JSON object at the top level, got {type(data).__name__}")
    missing = [key for key in required if not isinstance(data.get(key), list)]
    if missing:
        raise DataError(f"{str(path)!r}: missing top-level list(s) {', '.join(repr(k) for k in missing)}")
    return data


def _field(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(record, dict) or not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
        raise DataError(f"{where}: field {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return record[key]


class Problems:
    """Where the problems of a JSON go: raised at once (``strict``) or recorded in ``messages``.

    Args:
        strict: raise the first problem instead of recording it.
    """

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.messages: list[str] = []

    def add(self, error: DataError, *, left_out: str) -> None:
        """Raise ``error`` (strict) or record it, saying what is left out ("the annotation", "the image")."""
        if self.strict:
            raise error
        self.messages.append(f"{error} ({left_out} is left out)")


@dataclass
class CocoRecords:
    """The usable records of a COCO instances JSON.

    Attributes:
        category_names: category id -> name, for the declared categories.
        images: image id -> ``{id, file_name, height, width}``, in JSON order.
        annotations: ``{id, image_id, category_id, iscrowd, area, bbox, segmentation}`` of those images.
    """

    category_names: dict[int, str]
    images: dict[int, dict[str, Any]]
    annotations: list[dict[str, Any]]


def read_instances(json_path: Path, image_dir: Path, problems: Problems) -> CocoRecords:
    """Read and check ``json_path`` (images under ``image_dir``), see the module docstring.

    Raises:
        DataError: an unreadable file or top level; with ``problems.strict``, the first problem.
    """
    data = load_coco_json(json_path, required=("images", "annotations", "categories"))
    names = _read_categories(data["categories"], json_path, problems)
    images, left_out = _read_images(data["images"], json_path, image_dir, problems)
    annotations = _read_annotations(data["annotations"], json_path, names, images, left_out, problems)
    return CocoRecords(category_names=names, images=images, annotations=annotations)


def _read_categories(records: list[Any], json_path: Path, problems: Problems) -> dict[int, str]:
    names: dict[int, str] = {}
    for k, record in enumerate(records):
        where = f"{str(json_path)!r}: categories[{k}]"
        try:
            category_id = _field(record, "id", int, where)
            if category_id in names:
                raise DataError(f"{where}: category id {category_id} appears twice; give every category a unique id")
            names[category_id] = str(_field(record, "name", str, where))
        except DataError as err:
            problems.add(err, left_out="the category")
    return names


def _read_images(
    records: list[Any], json_path: Path, image_dir: Path, problems: Problems
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """Return the usable images by id, and the ids of images left out for their size or file (not duplicates)."""
    images: dict[int, dict[str, Any]] = {}
    first: dict[int, int] = {}
    left_out: set[int] = set()
    for k, record in enumerate(records):
        where = f"{str(json_path)!r}: images[{k}]"
        try:
            image = {key: _field(record, key, kind, where) for key, kind in
                     (("id", int), ("file_name", str), ("height", int), ("width", int))}  # fmt: skip
            if image["id"] in first:
                raise DataError(
                    f"{where}: image id {image['id']} appears twice (images[{first[image['id']]}] and images[{k}]); "
                    f"give every image a unique id"
                )
            first[image["id"]] = k
            try:
                _check_image(image, where, json_path, image_dir)
            except DataError:
                left_out.add(image["id"])  # its annotations go with it, without problems of their own
                raise
            images[image["id"]] = image
        except DataError as err:
            problems.add(err, left_out="the image")
    return images, left_out


def leaves_folder(name: str) -> bool:
    """Whether a ``file_name`` of a JSON points outside the folder it is relative to (absolute, a drive, ``..``)."""
    posix = name.replace("\\", "/")  # a Windows-made JSON may use backslashes
    return posix.startswith("/") or bool(PureWindowsPath(name).drive) or posixpath.normpath(posix).split("/")[0] == ".."


def _check_image(image: dict[str, Any], where: str, json_path: Path, image_dir: Path) -> None:
    """Raise DataError for a non-positive size, a ``file_name`` outside ``image_dir`` (never read), a missing file."""
    if image["height"] <= 0 or image["width"] <= 0:
        raise DataError(
            f"{where} (image id {image['id']}): width x height is {image['width']}x{image['height']}; expected "
            f"the positive size in pixels of the image file"
        )
    name = image["file_name"]
    if leaves_folder(name):
        raise DataError(
            f"{where} (image id {image['id']}): file_name {name!r} points outside the image folder "
            f"{str(image_dir)!r}; file names must be relative paths inside image_dir (the file is not read)"
        )
    if not (image_dir / name).is_file():
        raise DataError(
            f"image file {str(image_dir / name)!r} (image id {image['id']} in {str(json_path)!r}) is missing; "
            f"restore it or remove the image from the JSON"
        )


def _read_annotations(
    records: list[Any],
    json_path: Path,
    names: dict[int, str],
    images: dict[int, dict[str, Any]],
    images_left_out: set[int],
    problems: Problems,
) -> list[dict[str, Any]]:
    """Check every annotation's ids and the cheap parts of its segmentation (RLE size, polygon points)."""
    annotations = []
    first: dict[int, int] = {}
    for k, record in enumerate(records):
        ann_id = record.get("id", f"#{k}") if isinstance(record, dict) else f"#{k}"
        where = f"{str(json_path)!r}: annotation id {ann_id}"
        try:
            ann = {key: _field(record, key, int, where) for key in ("id", "image_id", "category_id")}
            if ann["id"] in first:
                raise DataError(
                    f"{where} appears twice (annotations[{first[ann['id']]}] and annotations[{k}]); "
                    f"give every annotation a unique id"
                )
            first[ann["id"]] = k
            if ann["image_id"] in images_left_out:
                continue  # its image was left out (and reported)
            _check_annotation(record, ann, where, names, images)
        except DataError as err:
            problems.add(err, left_out="the annotation")
            continue
        ann["iscrowd"] = int(record.get("iscrowd", 0))
        ann["area"], ann["bbox"], ann["segmentation"] = record.get("area"), record.get("bbox"), record.get("segmentation")
        annotations.append(ann)
    return annotations


def _check_annotation(
    record: dict[str, Any], ann: dict[str, Any], where: str, names: dict[int, str], images: dict[int, dict[str, Any]]
) -> None:
    if ann["category_id"] not in names:
        raise DataError(
            f"{where}: unknown category_id {ann['category_id']} (not in 'categories'); declare the category or "
            f"fix the annotation's category_id"
        )
    if ann["image_id"] not in images:
        raise DataError(f"{where}: image_id {ann['image_id']} is not in 'images'; add the image or remove the annotation")
    if record.get("iscrowd", 0) not in (0, 1):
        raise DataError(f"{where}: iscrowd must be 0 or 1, got {record['iscrowd']!r}")
    height, width = images[ann["image_id"]]["height"], images[ann["image_id"]]["width"]
    segmentation = record.get("segmentation")
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if size != [height, width]:
            raise DataError(
                f"{where}: RLE size {size!r} (H, W) differs from the image size [{height}, {width}]; "
                f"re-encode the mask at the image size"
            )
    else:
        check_polygons(segmentation, where=where)


def bbox_problems(json_path: Path, images: list[dict[str, Any]], annotations: list[list[dict[str, Any]]]) -> list[str]:
    """List the JSON ``bbox`` fields ``[x, y, w, h]`` that are malformed, negative in size or outside their image.

    Args:
        json_path: the file, named in the messages.
        images: image records; annotations: the annotations of each image, in the same order.

    Returns:
        one message per bad bbox, naming the annotation and image ids (a missing bbox is fine).
    """
    messages = []
    for image, anns in zip(images, annotations):
        for ann in anns:
            problem = _bbox_problem(ann.get("bbox"), image["width"], image["height"])
            if problem:
                messages.append(
                    f"{str(json_path)!r}: annotation id {ann['id']} (image id {image['id']}): bbox {ann['bbox']!r} "
                    f"{problem}; recompute it from the segmentation (seglab trains on boxes from the masks, but "
                    f"COCO box evaluation reads the JSON bbox)"
                )
    return messages


def _bbox_problem(bbox: Any, width: int, height: int) -> str:
    if bbox is None:
        return ""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        return "is not a list of 4 numbers (x, y, w, h)"
    x, y, w, h = bbox
    if w < 0 or h < 0:
        return f"has a negative size (w = {w}, h = {h})"
    if x < -BBOX_SLACK or y < -BBOX_SLACK or x + w > width + BBOX_SLACK or y + h > height + BBOX_SLACK:
        return f"reaches outside the {width}x{height} image (x + w = {x + w}, y + h = {y + h})"
    return ""
