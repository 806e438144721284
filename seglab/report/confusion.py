"""Write a confusion matrix to a file: CSV, JSON, NumPy or a heat-map picture, chosen by the suffix."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seglab.errors import ConfigError

FORMATS = {".csv": "CSV (rows: ground truth, columns: prediction)", ".json": "JSON {classes, matrix}",
           ".npy": "NumPy int64 [C, C]", ".png": "heat map", ".svg": "heat map", ".pdf": "heat map"}


def save_confusion(path: str | Path, matrix: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str]) -> Path:
    """Write the [C, C] pixel counts (row = ground-truth class, column = predicted class) to ``path``.

    Raises:
        ConfigError: an unknown suffix (the message lists the known ones) or a matrix that does not fit
            the classes.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{s} ({d})" for s, d in FORMATS.items())
        raise ConfigError(f"--save-confusion {str(path)!r}: unknown suffix {suffix or '(none)'!r}; use one of {known}")
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise ConfigError(f"confusion matrix has shape {list(counts.shape)} for {len(classes)} classes")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["truth \\ predicted", *classes])
            writer.writerows([name, *row] for name, row in zip(classes, counts.tolist()))
    elif suffix == ".json":
        path.write_text(json.dumps({"classes": list(classes), "rows": "ground truth", "columns": "prediction",
                                    "matrix": counts.tolist()}))
    elif suffix == ".npy":
        np.save(path, counts)
    else:
        from seglab.report.plots import confusion_heatmap  # noqa: PLC0415 - matplotlib loads only for pictures

        path.write_bytes(confusion_heatmap(counts, classes, fmt=suffix[1:]))
    return path
