"""Metric logs: JSONL and CSV files always, TensorBoard when it is installed."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


TENSORBOARD_MISSING = ("note: TensorBoard is not installed, so no tb/ event files are written (metrics.jsonl, "
                       "train.csv and val.csv are); pip install 'seglab[tensorboard]' for them")


class MetricsLogger:
    """Appends one record per call to ``metrics.jsonl`` and ``metrics.csv`` in ``directory``.

    The CSV's columns are fixed by the first record of each kind ("train" / "val"), written to
    ``train.csv`` and ``val.csv``. TensorBoard event files go to ``directory/tb`` when available.
    """

    def __init__(self, directory: str | Path, *, enabled: bool = True, append: bool = False) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self._writer: Any = None
        if not enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if not append:
            for name in ("metrics.jsonl", "train.csv", "val.csv"):
                (self.directory / name).unlink(missing_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.directory / "tb"))
        except ImportError:  # tensorboard is optional; train() says so (TENSORBOARD_MISSING) rather than nothing
            self._writer = None

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard event files are written (tensorboard installed)."""
        return self._writer is not None

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        """Record scalar ``values`` of ``kind`` ("train" or "val") at ``step``."""
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, **values}
        with open(self.directory / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        path = self.directory / f"{kind}.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *values], extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **values})
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
