"""`seglab data check` on a generated corpus of broken datasets, one test id per case.

Each case starts from a clean dataset written under ``tmp_path`` (a folder dataset of three 16x12
PNG pairs, or a COCO JSON over three 16x12 PNGs) and breaks one thing: unreadable folder entries,
JPEG masks, EXIF orientation tags, COCO sizes, file names, boxes, RLE, polygons and ids. The command
runs in-process; each case asserts the exit status (1 with errors, 0 with warnings only), that no
traceback or internal error is printed, and that one ``error:``/``warning:`` line names the file or
id and the problem. Nothing binary is committed: every file is generated here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from seglab.cli.app import run
from seglab.data import FolderDataset
from seglab.data.datasets.coco import CocoInstances
from seglab.data.masks import encode_rle
from seglab.errors import DataError

HEIGHT, WIDTH = 12, 16
BOX = [[1, 1, 7, 1, 7, 5, 1, 5]]  # a 6x4 polygon inside the 16x12 images
ANSI = re.compile(r"\x1b\[[0-9;]*m")

Expected = list[tuple[str, str]]  # ("error" | "warning", regex on that line; {images} {masks} {json} {root} = paths)


# --- writing files ----------------------------------------------------------------------------------------------


def _save_image(path: Path, *, orientation: int = 1) -> None:
    """Noise RGB image, 16x12; ``orientation`` != 1 stores an EXIF orientation tag."""
    pixels = np.random.default_rng(len(path.name)).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)


def _save_mask(path: Path, values: np.ndarray | None = None, *, orientation: int = 1) -> None:
    """Index mask: class 0 left, class 1 right (or ``values``); JPEG when the suffix says so."""
    if values is None:
        values = np.zeros((HEIGHT, WIDTH), np.uint8)
        values[:, WIDTH // 2:] = 1
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(values.astype(np.uint8), mode="L").save(path, exif=exif)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _broken_link(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(path.parent / "gone" / path.name)


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def error(pattern: str) -> tuple[str, str]:
    return ("error", pattern)


def warning(pattern: str) -> tuple[str, str]:
    return ("warning", pattern)


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return ANSI.sub("", captured.out + captured.err)


def _assert_report(status: int, text: str, expected_status: int, expected: Expected, paths: dict[str, Path]) -> None:
    assert "Traceback" not in text and "internal error" not in text, text
    assert status == expected_status, text
    lines = text.splitlines()
    for kind, pattern in expected:
        for key, path in paths.items():
            pattern = pattern.replace("{" + key + "}", re.escape(str(path)))
        assert any(line.startswith(f"{kind}: ") and re.search(pattern, line) for line in lines), (kind, pattern, text)
    if expected_status == 0:
        assert any(line.startswith("warning: ") for line in lines), text


# --- folder datasets --------------------------------------------------------------------------------------------


def _clean_folder(root: Path) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for stem in ("a", "b", "c"):
        _save_image(images / f"{stem}.png")
        _save_mask(masks / f"{stem}.png")
    return images, masks


def _seven_broken_mask_links(images: Path, masks: Path) -> None:
    for k in range(7):
        _broken_link(masks / f"z{k}.png")


def _mixed(images: Path, masks: Path) -> None:
    _broken_link(images / "a.png")
    (masks / "b.png").write_bytes(b"")
    _replace_with_dir(masks / "c.png")


def _jpeg_mask(values: np.ndarray | None, suffix: str = ".jpg") -> Callable[[Path, Path], None]:
    def mutate(images: Path, masks: Path) -> None:
        (masks / "b.png").unlink()
        _save_mask(masks / f"b{suffix}", values)
    return mutate


def _exif_image(orientation: int, suffix: str = ".jpg", mask_size: tuple[int, int] | None = None) -> Callable:
    def mutate(images: Path, masks: Path) -> None:
        (images / "b.png").unlink()
        _save_image(images / f"b{suffix}", orientation=orientation)
        if mask_size is not None:
            _save_mask(masks / "b.png", np.ones(mask_size, np.uint8))
    return mutate


def _exif_images(*stems: str) -> Callable[[Path, Path], None]:
    def mutate(images: Path, masks: Path) -> None:
        for stem in stems:
            _save_image(images / f"{stem}.png", orientation=6)
    return mutate


UNREADABLE = r"unreadable file\(s\): .*"
CHECKERBOARD = (np.indices((HEIGHT, WIDTH)).sum(0) % 2 * 255).astype(np.uint8)  # JPEG blurs it to unknown values
JPEG_WARNING = r"are JPEG files: lossy JPEG compression destroys label values.*save the masks as PNG"

FOLDER_CASES: dict[str, tuple[Callable[[Path, Path], None], int, Expected]] = {
    # unreadable entries: counted and named, never dropped
    "image-broken-symlink": (
        lambda i, m: _broken_link(i / "b.png"), 1,
        [error(r"1 " + UNREADABLE + r"'{images}/b\.png' \(broken symlink to '.*gone/b\.png'")]),
    "mask-broken-symlink": (
        lambda i, m: _broken_link(m / "c.png"), 1, [error(UNREADABLE + r"'{masks}/c\.png' \(broken symlink to")]),
    "unpaired-mask-broken-symlink": (
        lambda i, m: _broken_link(m / "z.png"), 1, [error(UNREADABLE + r"'{masks}/z\.png' \(broken symlink")]),
    "image-symlink-loop": (
        lambda i, m: ((i / "a.png").unlink(), (i / "a.png").symlink_to("a.png")), 1,
        [error(UNREADABLE + r"'{images}/a\.png' \(broken symlink to 'a\.png'")]),
    "seven-broken-symlinks": (
        _seven_broken_mask_links, 1, [error(r"7 " + UNREADABLE + r"'{masks}/z0\.png' \(broken symlink.*and 2 more")]),
    "image-is-a-directory": (
        lambda i, m: _replace_with_dir(i / "b.png"), 1,
        [error(UNREADABLE + r"'{images}/b\.png' \(a directory, not an image file")]),
    "mask-is-a-directory": (
        lambda i, m: _replace_with_dir(m / "a.png"), 1, [error(UNREADABLE + r"'{masks}/a\.png' \(a directory")]),
    "image-symlink-to-directory": (
        lambda i, m: ((i / "c.png").unlink(), (i / "c.png").symlink_to(m)), 1,
        [error(UNREADABLE + r"'{images}/c\.png' \(a directory")]),
    "image-no-read-permission": (
        lambda i, m: (i / "a.png").chmod(0), 1,
        [error(UNREADABLE + r"'{images}/a\.png' \(no read permission \(mode ----------\)")]),
    "mask-no-read-permission": (
        lambda i, m: (m / "b.png").chmod(0o200), 1, [error(UNREADABLE + r"'{masks}/b\.png' \(no read permission")]),
    "image-zero-bytes": (
        lambda i, m: (i / "c.png").write_bytes(b""), 1,
        [error(UNREADABLE + r"'{images}/c\.png' \(empty file \(0 bytes\)")]),
    "mask-zero-bytes": (
        lambda i, m: (m / "a.png").write_bytes(b""), 1, [error(UNREADABLE + r"'{masks}/a\.png' \(empty file")]),
    "image-truncated-png": (
        lambda i, m: _truncate(i / "b.png"), 1,
        [error(UNREADABLE + r"'{images}/b\.png' \(.*re-export or re-download")]),
    "mask-truncated-png": (
        lambda i, m: _truncate(m / "c.png"), 1, [error(UNREADABLE + r"'{masks}/c\.png' \(")]),
    "image-truncated-jpeg": (
        lambda i, m: ((i / "a.png").unlink(), _save_image(i / "a.jpg"), _truncate(i / "a.jpg")), 1,
        [error(UNREADABLE + r"'{images}/a\.jpg' \(")]),
    "image-not-an-image": (
        lambda i, m: (i / "a.png").write_bytes(b"not a png at all"), 1,
        [error(UNREADABLE + r"'{images}/a\.png' \(cannot identify image file")]),
    "mask-fifo": (  # reading a FIFO would block: it must be refused from its directory entry
        lambda i, m: ((m / "b.png").unlink(), os.mkfifo(m / "b.png")), 1,
        [error(UNREADABLE + r"'{masks}/b\.png' \(not a regular file")]),
    "three-kinds-at-once": (
        _mixed, 1,
        [error(r"3 " + UNREADABLE + r"'{images}/a\.png' \(broken symlink.*'{masks}/b\.png' \(empty file.*"
               r"'{masks}/c\.png' \(a directory")]),
    # JPEG masks
    "jpeg-mask-lossy": (
        _jpeg_mask(CHECKERBOARD), 1,
        [warning(r"1 mask\(s\) \('{masks}/b\.jpg'\) " + JPEG_WARNING),
         error(r"label value \d+ .* is not a known raw value.*{masks}/b\.jpg")]),
    "jpeg-mask-exact-values": (_jpeg_mask(None), 0, [warning(r"'{masks}/b\.jpg'\) " + JPEG_WARNING)]),
    "jpeg-mask-jpeg-suffix": (
        _jpeg_mask(np.zeros((HEIGHT, WIDTH)), ".jpeg"), 0, [warning(r"'{masks}/b\.jpeg'\) " + JPEG_WARNING)]),
    # EXIF orientation tags: warned about; images and masks are both read as stored
    "exif-6-jpeg-image": (
        _exif_image(6), 0,
        [warning(r"1 file\(s\) carry an EXIF orientation tag: '{images}/b\.jpg' \(orientation 6: shown rotated 90 "
                 r"degrees clockwise\); seglab ignores the tag for images and masks alike")]),
    "exif-3-png-image": (
        _exif_image(3, ".png"), 0, [warning(r"'{images}/b\.png' \(orientation 3: shown rotated 180 degrees\)")]),
    "exif-2-mirrored-image": (_exif_image(2), 0, [warning(r"'{images}/b\.jpg' \(orientation 2: shown mirrored")]),
    "exif-two-images": (
        _exif_images("a", "c"), 0,
        [warning(r"2 file\(s\) carry an EXIF orientation tag: '{images}/a\.png'.*'{images}/c\.png'")]),
    "exif-on-mask": (
        lambda i, m: _save_mask(m / "a.png", orientation=6), 0, [warning(r"'{masks}/a\.png' \(orientation 6")]),
    "exif-8-mask-drawn-turned": (
        _exif_image(8, mask_size=(WIDTH, HEIGHT)), 1,
        [error(r"size mismatch: image '{images}/b\.jpg' is 16x12 but label '{masks}/b\.png' is 12x16 \(WxH\); the "
               r"label matches the image turned by its EXIF orientation 8.*exif_transpose"),
         warning(r"'{images}/b\.jpg' \(orientation 8")]),
}


@pytest.mark.filterwarnings("ignore:folder dataset")  # the loader's own warning about unreadable entries
@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_folder_check_names_each_problem(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGLAB_DEBUG", raising=False)
    mutate, expected_status, expected = FOLDER_CASES[case]
    images, masks = _clean_folder(tmp_path)
    mutate(images, masks)
    status = run(["data", "check", "folder", "--images", str(images), "--masks", str(masks),
                  "--classes", "background,object"])
    _assert_report(status, _output(capsys), expected_status, expected, {"images": images, "masks": masks})


def test_folder_loader_warns_and_raises_on_unreadable_entries(tmp_path: Path) -> None:
    images, masks = _clean_folder(tmp_path)
    _broken_link(images / "b.png")
    _replace_with_dir(masks / "c.png")
    with pytest.warns(UserWarning, match=r"2 unreadable entries: .*images/b\.png' \(broken symlink.*masks/c\.png' "
                                         r"\(a directory"):
        dataset = FolderDataset(images, masks, classes=("background", "object"))
    assert len(dataset) == 3 and set(dataset.unreadable) == {images / "b.png", masks / "c.png"}  # kept, not dropped
    assert dataset[0][1].shape == (HEIGHT, WIDTH)
    with pytest.raises(DataError, match=r"images/b\.png': broken symlink"):
        dataset[1]
    with pytest.raises(DataError, match=r"masks/c\.png': a directory"):
        dataset[2]


def test_loaders_keep_image_and_mask_as_stored_despite_exif(tmp_path: Path) -> None:
    images, masks = _clean_folder(tmp_path)
    _save_image(images / "a.png", orientation=6)
    image, mask = FolderDataset(images, masks, classes=("background", "object"))[0]
    assert tuple(image.shape[-2:]) == tuple(mask.shape) == (HEIGHT, WIDTH)  # neither is turned
    assert mask[:, WIDTH // 2:].eq(1).all() and mask[:, : WIDTH // 2].eq(0).all()


# --- COCO JSON (instances) --------------------------------------------------------------------------------------


def _ann(ann_id: int, image_id: int, category_id: int, **extra: Any) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0, "bbox": [1, 1, 6, 4],
            "segmentation": BOX, **extra}


def _clean_coco() -> dict[str, Any]:
    """Images 1..3 (a.png, b.png, c.png); annotations 11..13 (class cell) and 21..23 (class nucleus), one per image."""
    images = [{"id": k, "file_name": f"{stem}.png", "height": HEIGHT, "width": WIDTH}
              for k, stem in enumerate("abc", start=1)]
    annotations = [_ann(10 * c + k, k, c) for c in (1, 2) for k in (1, 2, 3)]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]}


def _ann_of(data: dict[str, Any], ann_id: int) -> dict[str, Any]:
    return next(ann for ann in data["annotations"] if ann["id"] == ann_id)


def _set(ann_id: int, **fields: Any) -> Callable[[dict[str, Any], Path], None]:
    """Mutation: set fields of annotation ``ann_id`` (None deletes the field)."""
    def mutate(data: dict[str, Any], images: Path) -> None:
        ann = _ann_of(data, ann_id)
        for key, value in fields.items():
            ann.pop(key) if value is None else ann.__setitem__(key, value)
    return mutate


def _set_image(index: int, **fields: Any) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], images: Path) -> None:
        data["images"][index].update(fields)
    return mutate


def _drop_annotations(*image_ids: int) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], images: Path) -> None:
        data["annotations"] = [ann for ann in data["annotations"] if ann["image_id"] not in image_ids]
    return mutate


def _crowd_only(data: dict[str, Any], images: Path) -> None:
    crowd = np.zeros((HEIGHT, WIDTH), np.uint8)
    crowd[2:8, 2:10] = 1
    for ann in data["annotations"]:
        if ann["image_id"] == 2:
            ann.update(iscrowd=1, segmentation=encode_rle(crowd, compressed=False))


def _outside_file(data: dict[str, Any], images: Path) -> None:
    _save_image(images.parent / "outside.png")
    data["images"][0]["file_name"] = str(images.parent / "outside.png")


def _exif_coco_image(orientation: int, json_size: tuple[int, int]) -> Callable[[dict[str, Any], Path], None]:
    def mutate(data: dict[str, Any], images: Path) -> None:
        _save_image(images / "a.jpg", orientation=orientation)
        data["images"][0].update(file_name="a.jpg", height=json_size[0], width=json_size[1])
    return mutate


def _add(key: str, record: dict[str, Any]) -> Callable[[dict[str, Any], Path], None]:
    return lambda data, images: data[key].append(record)


def _outside(name: str) -> str:
    return rf"images\[0\] \(image id 1\): file_name {name} points outside the image folder '{{images}}'"


SHORT_RLE = encode_rle(np.ones((HEIGHT // 2, WIDTH), np.uint8))["counts"]  # sums to 96, not 192
NO_INSTANCE = r"image\(s\) have no instance \(no annotation, or none usable\): "

COCO_CASES: dict[str, tuple[Callable[[dict[str, Any], Path], None], int, Expected]] = {
    # width and height in the JSON against the image file
    "json-width-larger": (
        _set_image(0, width=20), 1,
        [error(r"item 0 \(image id 1, '{images}/a\.png'\): size mismatch: image '{images}/a\.png' is 16x12 \(width "
               r"x height\) but image id 1 in '{json}' says 20x12; fix width and height in the JSON")]),
    "json-height-smaller": (
        _set_image(1, height=10), 1, [error(r"'{images}/b\.png' is 16x12 .* image id 2 in '{json}' says 16x10")]),
    "json-size-of-exif-turned-image": (
        _exif_coco_image(6, (WIDTH, HEIGHT)), 1,
        [error(r"'{images}/a\.jpg' is 16x12 .* image id 1 in '{json}' says 12x16; the file's EXIF orientation 6 "
               r"turns it to the JSON size")]),
    "image-width-zero": (
        _set_image(1, width=0), 1,
        [error(r"images\[1\] \(image id 2\): width x height is 0x12; expected the positive size")]),
    # file names that leave the image folder: refused, never read
    "file-name-parent-dirs": (
        _set_image(0, file_name="../../etc/passwd"), 1, [error(_outside(r"'\.\./\.\./etc/passwd'"))]),
    "file-name-absolute": (
        _set_image(0, file_name="/etc/passwd"), 1, [error(_outside(r"'/etc/passwd'") + r".*the file is not read")]),
    "file-name-absolute-existing-image": (_outside_file, 1, [error(_outside(r"'{root}/outside\.png'"))]),
    "file-name-through-subfolder": (
        _set_image(0, file_name="sub/../../outside.png"), 1, [error(_outside(r"'sub/\.\./\.\./outside\.png'"))]),
    "file-name-backslashes": (
        _set_image(0, file_name="..\\..\\outside.png"), 1, [error(_outside(r"'\.\.\\\\\.\.\\\\outside\.png'"))]),
    "file-name-windows-drive": (
        _set_image(0, file_name="C:\\data\\a.png"), 1, [error(_outside(r"'C:\\\\data\\\\a\.png'"))]),
    # JSON boxes
    "bbox-negative-width": (
        _set(11, bbox=[1, 1, -4, 4]), 1,
        [error(r"'{json}': annotation id 11 \(image id 1\): bbox \[1, 1, -4, 4\] has a negative size "
               r"\(w = -4, h = 4\)")]),
    "bbox-negative-height": (
        _set(22, bbox=[1, 1, 4, -2]), 1,
        [error(r"annotation id 22 \(image id 2\): bbox .* has a negative size \(w = 4, h = -2\)")]),
    "bbox-negative-both": (_set(13, bbox=[5, 5, -1, -1]), 1, [error(r"annotation id 13 .* has a negative size")]),
    "bbox-outside-right": (
        _set(21, bbox=[10, 1, 9, 4]), 1,
        [error(r"annotation id 21 \(image id 1\): bbox \[10, 1, 9, 4\] reaches outside the 16x12 image")]),
    "bbox-outside-left": (
        _set(12, bbox=[-5, 1, 4, 4]), 1, [error(r"annotation id 12 .* reaches outside the 16x12")]),
    "bbox-not-four-numbers": (
        _set(23, bbox=[1, 2, 3]), 1,
        [error(r"annotation id 23 .*bbox \[1, 2, 3\] is not a list of 4 numbers \(x, y, w, h\)")]),
    # RLE
    "rle-counts-sum-list": (
        _set(11, segmentation={"size": [HEIGHT, WIDTH], "counts": [100, 5]}), 1,
        [error(r"'{json}': annotation id 11: RLE counts sum to 105 but size \[12, 16\] needs H\*W = 192 pixels; "
               r"re-encode the mask")]),
    "rle-counts-sum-string": (
        _set(22, segmentation={"size": [HEIGHT, WIDTH], "counts": SHORT_RLE}), 1,
        [error(r"annotation id 22: RLE counts sum to 96 but size \[12, 16\]")]),
    "rle-wrong-size": (
        _set(13, segmentation={"size": [6, WIDTH], "counts": [96]}), 1,
        [error(r"annotation id 13: RLE size \[6, 16\] \(H, W\) differs from the image size \[12, 16\]")]),
    "rle-without-size": (
        _set(21, segmentation={"counts": [192]}), 1,
        [error(r"annotation id 21: RLE size None \(H, W\) differs from the image size")]),
    "rle-invalid-character": (
        _set(12, segmentation={"size": [HEIGHT, WIDTH], "counts": "~~~"}), 1,
        [error(r"annotation id 12: invalid character '~' at position 0 of the RLE counts")]),
    "rle-truncated-string": (
        _set(23, segmentation={"size": [HEIGHT, WIDTH], "counts": "0a"}), 1,
        [error(r"annotation id 23: RLE counts string is truncated")]),
    # polygons
    "polygon-two-points": (
        _set(11, segmentation=[[1, 1, 5, 1]]), 1,
        [error(r"'{json}': annotation id 11: polygon 0 has 2 point\(s\); a polygon needs at least 3")]),
    "polygon-one-point-second-ring": (
        _set(21, segmentation=[BOX[0], [3, 3]]), 1, [error(r"annotation id 21: polygon 1 has 1 point\(s\)")]),
    "polygon-odd-coordinates": (
        _set(12, segmentation=[[1, 1, 5, 1, 5]]), 1,
        [error(r"annotation id 12: polygon 0 must be a flat list of an even number of coordinates")]),
    "polygon-empty-list": (
        _set(22, segmentation=[]), 1,
        [error(r"annotation id 22: segmentation must be an RLE dict or a non-empty list of polygons")]),
    "polygon-nan": (
        _set(13, segmentation=[[1, 1, float("nan"), 1, 5, 5]]), 1,
        [error(r"annotation id 13: polygon 0 has a coordinate that is not a finite number")]),
    "segmentation-missing": (
        _set(23, segmentation=None), 1, [error(r"annotation id 23: segmentation must be .*got None")]),
    # ids and categories
    "duplicate-image-id": (
        _add("images", {"id": 2, "file_name": "c.png", "height": HEIGHT, "width": WIDTH}), 1,
        [error(r"'{json}': images\[3\]: image id 2 appears twice \(images\[1\] and images\[3\]\)")]),
    "duplicate-annotation-id": (
        _add("annotations", _ann(12, 3, 1)), 1,
        [error(r"annotation id 12 appears twice \(annotations\[1\] and annotations\[6\]\)")]),
    "unknown-category-id": (
        _set(21, category_id=9), 1, [error(r"annotation id 21: unknown category_id 9 \(not in 'categories'\)")]),
    "duplicate-category-id": (
        _add("categories", {"id": 2, "name": "again"}), 1,
        [error(r"'{json}': categories\[2\]: category id 2 appears twice")]),
    "category-id-not-an-int": (
        _add("categories", {"id": "3", "name": "text id"}), 1,
        [error(r"categories\[2\]: field 'id' is missing or not a int")]),
    "unknown-image-id": (
        _add("annotations", _ann(99, 7, 1)), 1, [error(r"annotation id 99: image_id 7 is not in 'images'")]),
    "iscrowd-not-0-or-1": (_set(11, iscrowd=2), 1, [error(r"annotation id 11: iscrowd must be 0 or 1, got 2")]),
    # image files
    "missing-image-file": (
        _set_image(2, file_name="gone.png"), 1,
        [error(r"image file '{images}/gone\.png' \(image id 3 in '{json}'\) is missing")]),
    "image-file-broken-symlink": (
        lambda data, images: _broken_link(images / "b.png"), 1,
        [error(r"image file '{images}/b\.png' \(image id 2 in '{json}'\) is missing")]),
    "image-file-truncated": (
        lambda data, images: _truncate(images / "c.png"), 1,
        [error(r"item 2 \(image id 3, '{images}/c\.png'\): cannot read image file '{images}/c\.png'")]),
    "image-file-zero-bytes": (
        lambda data, images: (images / "a.png").write_bytes(b""), 1,
        [error(r"cannot read image file '{images}/a\.png': empty file \(0 bytes\)")]),
    # warnings only
    "image-without-annotations": (
        _drop_annotations(2), 0,
        [warning(r"1 " + NO_INSTANCE + r"item 1 \(image id 2, '{images}/b\.png'\); they train as background only")]),
    "two-images-without-annotations": (
        _drop_annotations(1, 3), 0, [warning(r"2 " + NO_INSTANCE + r"item 0 \(image id 1, .*item 2 \(image id 3")]),
    "crowd-only-image": (
        _crowd_only, 0,
        [warning(r"1 image\(s\) have only crowd regions \(iscrowd=1\) and no instance: item 1 \(image id 2, "
                 r"'{images}/b\.png'\)")]),
    "exif-tagged-coco-image": (
        _exif_coco_image(3, (HEIGHT, WIDTH)), 0,
        [warning(r"1 image file\(s\) carry an EXIF orientation tag: '{images}/a\.jpg' \(orientation 3: shown rotated "
                 r"180 degrees\); seglab ignores the tag")]),
}


def _write_coco(root: Path, data: dict[str, Any]) -> Path:
    path = root / "annotations.json"
    path.write_text(json.dumps(data))  # NaN stays NaN: Python's json reads it back
    return path


def _coco_args(json_path: Path, images: Path) -> list[str]:
    return ["data", "check", "coco", "--split", "mine", "-O", f"json_file={json_path}", "-O", f"image_dir={images}"]


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_json_check_names_each_problem(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGLAB_DEBUG", raising=False)
    mutate, expected_status, expected = COCO_CASES[case]
    images = tmp_path / "images"
    images.mkdir()
    for stem in "abc":
        _save_image(images / f"{stem}.png")
    data = _clean_coco()
    mutate(data, images)
    json_path = _write_coco(tmp_path, data)
    status = run(_coco_args(json_path, images))
    _assert_report(status, _output(capsys), expected_status, expected,
                   {"images": images, "json": json_path, "root": tmp_path})


def test_coco_loader_refuses_file_names_outside_the_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for stem in "abc":
        _save_image(images / f"{stem}.png")
    _save_image(tmp_path / "secret.png")
    data = _clean_coco()
    data["images"][0]["file_name"] = "../secret.png"
    json_path = _write_coco(tmp_path, data)
    with pytest.raises(DataError, match=r"file_name '\.\./secret\.png' points outside the image folder"):
        CocoInstances(split="mine", json_file=json_path, image_dir=images)  # strict: raises before any read
    lenient = CocoInstances(split="mine", json_file=json_path, image_dir=images, strict=False)
    assert all(path.parent == images for path, _ in lenient.samples) and len(lenient) == 2
    assert len(lenient.problems) == 1  # its annotations go with it, without problems of their own


# --- clean datasets pass ----------------------------------------------------------------------------------------


def test_clean_folder_dataset_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = _clean_folder(tmp_path)
    status = run(["data", "check", "folder", "--images", str(images), "--masks", str(masks),
                  "--classes", "background,object"])
    text = _output(capsys)
    assert status == 0 and "labels are consistent" in text and "warning:" not in text and "error" not in text, text


def test_clean_coco_json_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for stem in "abc":
        _save_image(images / f"{stem}.png")
    status = run(_coco_args(_write_coco(tmp_path, _clean_coco()), images))
    text = _output(capsys)
    assert status == 0 and "instances are consistent" in text and "warning:" not in text and "error" not in text, text
