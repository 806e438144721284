"""Data root resolution: env var first, then ../shared/data from the cwd, then next to the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require_dataset
from seglab.data.root import _PACKAGE_CANDIDATE, data_root, dataset_dir
from seglab.errors import DataError


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGLAB_DATA", str(tmp_path))
    assert data_root() == tmp_path


def test_cwd_relative_shared_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEGLAB_DATA", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    assert data_root() == (tmp_path / "shared" / "data").resolve()


def test_falls_back_to_package_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEGLAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # tmp_path/../shared/data does not exist
    assert data_root() == _PACKAGE_CANDIDATE
    assert _PACKAGE_CANDIDATE.parts[-2:] == ("shared", "data")


def test_dataset_dir_found(tmp_path: Path) -> None:
    (tmp_path / "camvid").mkdir()
    assert dataset_dir("camvid", tmp_path) == tmp_path / "camvid"


def test_missing_dataset_names_folder_and_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGLAB_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        dataset_dir("camvid")
    message = str(info.value)
    assert str(tmp_path / "camvid") in message
    assert "SEGLAB_DATA" in message and "--data-root" in message


def test_require_dataset_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGLAB_DATA", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_dataset("camvid")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=str(tmp_path / "camvid")):
        require_dataset("camvid")
