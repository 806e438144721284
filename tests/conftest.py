"""Shared test fixtures: locating the real datasets under the data root, and a tiny engine recipe.

The only conftest.py: test modules import ``require_dataset`` from it by name, which a second
conftest module elsewhere under tests/ would shadow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from seglab.data.root import ENV_VAR, data_root as _data_root


def require_dataset(name: str) -> Path:
    """Return ``<data root>/<name>``; skip the test when it is missing, or fail when ``CI=true``."""
    folder = _data_root() / name
    if folder.is_dir():
        return folder
    message = f"dataset {name!r} not found at {str(folder)!r}; set {ENV_VAR} to the folder holding {name}/"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def survey_tables_path() -> Path:
    """shared/survey/tables.yaml (beside the data root); skip when missing, or fail when ``CI=true``."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "survey" / "tables.yaml",
                  _data_root().parent / "survey" / "tables.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    message = f"survey transcription not found at {', '.join(map(str, candidates))}; set {ENV_VAR} beside survey/"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def data_root() -> Path:
    """The resolved data root (may not exist; use the dataset fixtures to skip when it does not)."""
    return _data_root()


@pytest.fixture
def camvid_dir() -> Path:
    return require_dataset("camvid")


@pytest.fixture
def isbi_dir() -> Path:
    return require_dataset("isbi2012_em")


# A tiny recipe for engine tests: a 4-channel U-Net on 16 synthetic 32x48 images.
TINY = {
    "description": "engine tests",
    "model": {"name": "unet", "kwargs": {"base_channels": 4, "batch_norm": True, "dropout": 0.5}},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 16, "size": [32, 48]}, "batch_size": 4,
             "crop_size": [32, 32], "scale_range": [0.75, 1.25]},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005},
    "schedule": {"policy": "poly", "steps": 10, "warmup_steps": 2},
    "train": {"seed": 3, "log_every": 1, "checkpoint_every": 3},
}


@pytest.fixture
def tiny_recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path
