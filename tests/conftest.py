"""Shared test fixtures. Data-related only: locating the real datasets under the data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
