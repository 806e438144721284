"""What a newcomer types first: --version, python -m seglab, seglab data list, shell completion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import seglab
from seglab.cli.app import run


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"seglab {seglab.__version__} (torch ")


def test_python_dash_m_seglab_is_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "seglab", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("seglab "), result.stderr


def test_data_list_names_every_dataset_and_what_is_on_disk(data_root: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from seglab.data.datasets import list_datasets

    assert run(["data", "list", "--data-root", str(data_root), "--format", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == list_datasets()
    assert rows["coco"]["tasks"] == "sem inst" and rows["synthetic"]["on disk"] == "(generated)"
    if (data_root / "camvid").is_dir():
        assert rows["camvid"]["on disk"] == "yes"
    if (data_root / "coco_tiny").is_dir():
        assert rows["coco"]["on disk"] == "folder=coco_tiny"  # not coco_panoptic_sample, another dataset's


def test_shell_completion_is_offered(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    assert "--install-completion" in capsys.readouterr().out


def test_the_command_line_starts_without_torch() -> None:
    # `seglab --help` and `seglab <cmd> --help` import no model, dataset or torch (timed in benchmarks/bench_cli_startup.py)
    code = ("import sys; from seglab.cli.app import run; run(['--help']); run(['train', '--help']); "
            "run(['data', 'check', '--help']); run(['--version']); assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_light_copy_of_the_fetch_mirror_variable_matches() -> None:
    from seglab.cli.data import URL_BASE_ENV
    from seglab.data.fetch import URL_BASE_ENV as REAL

    assert URL_BASE_ENV == REAL
