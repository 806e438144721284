"""Small file readers shared by the dataset loaders: split-list files and MATLAB label files.

MATLAB ``.mat`` labels are read with ``scipy.io.loadmat`` (MAT v5 files, as SBD and SiftFlow ship).
A MATLAB struct comes back either as a structured ``numpy`` record array ``[1, 1]`` (the default,
``struct_as_record=True``) or as a ``mat_struct`` object (``struct_as_record=False``); both are handled.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.base import IMAGE_SUFFIXES
from seglab.errors import DataError

__all__ = ["pair_ids", "read_id_list", "read_mat_label"]


def read_id_list(path: Path, *, dataset: str) -> list[str]:
    """Read a split list (one image id per line, blank lines skipped).

    Args:
        path: the list file, e.g. ``ImageSets/Segmentation/train.txt``.
        dataset: the dataset name, for the error message.

    Returns:
        the ids in file order (first whitespace-separated token of each line).

    Raises:
        DataError: the file is missing or lists no ids; the message names the file.
    """
    if not path.is_file():
        raise DataError(f"{dataset} split list {str(path)!r} not found; restore it from the official release")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{dataset} split list {str(path)!r} is empty; expected one image id per line")
    return ids


def pair_ids(
    ids: Iterable[str], image_dir: Path, image_suffix: str, label_dir: Path, label_suffix: str, *, source: Path
) -> list[tuple[Path, Path]]:
    """Return ``(image_dir/<id><image_suffix>, label_dir/<id><label_suffix>)`` for each id.

    Raises:
        DataError: a file is missing; the message names it and the list file (``source``) naming the id.
    """
    pairs = []
    for item in ids:
        image, label = image_dir / f"{item}{image_suffix}", label_dir / f"{item}{label_suffix}"
        for path in (image, label):
            if not path.is_file():
                raise DataError(
                    f"{str(path)!r} not found (id {item!r} listed in {str(source)!r}); restore the file "
                    f"or remove the id from the list"
                )
        pairs.append((image, label))
    return pairs


def pair_folders(image_dir: Path, label_dir: Path, *, missing: str, expected: str) -> list[tuple[Path, Path]]:
    """Pair every image in ``image_dir`` with ``label_dir/<stem>.png``.

    Args:
        missing: what to tell the user when a folder is missing (how to obtain or lay it out).
        expected: what image files the folder should hold (for an empty folder's message).

    Raises:
        DataError: a missing folder, no images, or an image without its label (each named).
    """
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DataError(f"split folder {str(folder)!r} is missing; {missing}")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"no images found in {str(image_dir)!r}; expected {expected}")
    pairs = []
    for image in images:
        label = label_dir / f"{image.stem}.png"
        if not label.is_file():
            raise DataError(f"image {str(image)!r} has no label {str(label)!r}; add it or remove the image")
        pairs.append((image, label))
    return pairs


def read_mat_label(path: str | Path, variable: str, field: str | None = None) -> np.ndarray:
    """Read a 2-D integer label array from a MATLAB file.

    Args:
        path: the ``.mat`` file.
        variable: the top-level variable, e.g. ``"S"`` (SiftFlow) or ``"GTcls"`` (SBD).
        field: for a struct variable, the field that holds the labels, e.g. ``"Segmentation"``.

    Returns:
        [H, W] integer array (uint8 kept as is; integral float arrays become int32).

    Raises:
        DataError: unreadable file, missing variable or field, or not a 2-D integer-valued array;
            the message names the file and ``variable.field``.
    """
    from scipy.io import loadmat  # imported here: only the .mat datasets need it
    from scipy.io.matlab import MatReadError

    name = f"{variable}.{field}" if field else variable
    try:
        contents = loadmat(str(path), variable_names=[variable])
    except (MatReadError, OSError, ValueError, TypeError, EOFError, NotImplementedError) as err:
        raise DataError(f"cannot read MATLAB file {str(path)!r}: {err}; re-download or re-convert it") from err
    if variable not in contents:
        raise DataError(
            f"MATLAB file {str(path)!r} has no variable {variable!r} (expected the label array {name}); "
            f"is it the right file for this dataset?"
        )
    value = contents[variable]
    if field is not None:
        value = _struct_field(value, field, path=path, name=name)
    array = np.asarray(value)
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(
            f"{name} in {str(path)!r} is a {array.dtype} array of shape {list(array.shape)}; expected a 2-D "
            f"integer label array [H, W]"
        )
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise DataError(f"{name} in {str(path)!r} holds non-integer values; expected class ids")
        array = array.astype(np.int32)
    return array


def _struct_field(value: Any, field: str, *, path: str | Path, name: str) -> Any:
    """Return ``value.field`` for a MATLAB struct loaded either as a record array or a ``mat_struct``."""
    fields: tuple[str, ...] = ()
    if isinstance(value, np.ndarray) and value.dtype.names:  # struct_as_record=True: [1, 1] record array
        fields = value.dtype.names
        if field in fields and value.size == 1:
            return value[field].reshape(-1)[0]
    elif hasattr(value, "_fieldnames"):  # struct_as_record=False: scipy's mat_struct
        fields = tuple(value._fieldnames)
        if field in fields:
            return getattr(value, field)
    raise DataError(
        f"MATLAB file {str(path)!r}: variable {name.split('.')[0]!r} has no field {field!r} "
        f"(fields: {', '.join(fields) or 'none, not a 1x1 struct'}); expected the label array {name}"
    )
