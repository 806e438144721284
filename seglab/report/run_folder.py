"""Read what a training run left in its folder: the metrics log, the final config.json and run.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError

WEIGHT_DIRS = ("final", "best")


@dataclass
class RunRecord:
    """A run folder, read."""

    folder: Path
    checkpoint: Path  # final/ (or best/ when the run did not finish)
    config: dict[str, Any]  # the checkpoint's config.json
    train: list[dict[str, float]] = field(default_factory=list)  # metrics.jsonl "train" records by step
    val: list[dict[str, float]] = field(default_factory=list)  # "val" records by step
    sessions: list[dict[str, Any]] = field(default_factory=list)  # run.json: time, steps, machine per session
    skipped_lines: int = 0  # unreadable lines of metrics.jsonl (a run killed mid-write)

    @property
    def name(self) -> str:
        return self.folder.resolve().name


def read_run(path: str | Path) -> RunRecord:
    """The run in ``path``: a run folder (``runs/x``) or one of its ``final/``/``best/`` checkpoints.

    Raises:
        ConfigError: the path is missing, or holds neither a checkpoint nor a metrics log.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{str(path)!r} does not exist; pass a run folder written by `seglab train` (e.g. runs/demo)")
    if (path / "config.json").is_file() and path.name in WEIGHT_DIRS:
        folder, checkpoint = path.parent, path
    else:
        folder = path
        found = [path / d for d in WEIGHT_DIRS if (path / d / "config.json").is_file()]
        if not found:
            raise ConfigError(f"{str(path)!r} is not a run folder: it has no final/ or best/ checkpoint "
                              "(config.json); pass the folder `seglab train --out` wrote")
        checkpoint = found[0]
    try:
        config = json.loads((checkpoint / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {str(checkpoint / 'config.json')!r}: {exc}") from None
    record = RunRecord(folder=folder, checkpoint=checkpoint, config=config)
    _read_metrics(folder / "metrics.jsonl", record)
    _read_sessions(folder / "run.json", record)
    return record


def _read_metrics(path: Path, record: RunRecord) -> None:
    """The last record per (kind, step): a resumed run logs again the steps after its last checkpoint."""
    if not path.is_file():
        return
    latest: dict[tuple[str, int], dict[str, float]] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            key = (str(entry.pop("kind")), int(entry["step"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            record.skipped_lines += 1
            continue
        latest[key] = entry
    for (kind, _), entry in sorted(latest.items(), key=lambda item: item[0][1]):
        (record.train if kind == "train" else record.val).append(entry)


def _read_sessions(path: Path, record: RunRecord) -> None:
    if not path.is_file():
        return
    try:
        record.sessions = list(json.loads(path.read_text()).get("sessions", []))
    except (OSError, ValueError, AttributeError):
        record.sessions = []
