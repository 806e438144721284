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


@pytest.mark.parametrize("command", [["models"], ["recipes"], ["data", "list"]])
def test_tables_show_whole_names_at_80_columns(command: list[str], capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from seglab.cli.common import console

    monkeypatch.setattr(console, "_width", 80)
    assert run([*command, "--format", "json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert run(command) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for name in names:
        assert f" {name} " in out, name  # whole, on one line


def test_numbers_keep_their_size() -> None:
    from seglab.formatting import format_number

    assert [format_number(v) for v in (1e-9, 2e-05, 0.0001, 0.001, 0.5, 0.0, 12.345)] == [
        "1e-09", "2e-05", "0.0001", "0.0010", "0.5000", "0.0000", "12.35"]


def _own_folders(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i in range(4):
        mask = np.zeros((24, 32), np.uint8)
        mask[8:16, 4 + 3 * i:16 + 3 * i] = 1
        mask[:2] = 11  # void
        Image.fromarray(np.where(mask[..., None] == 1, 200, 30).repeat(3, 2).astype(np.uint8)).save(
            tmp_path / "img" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "msk" / f"{i}.png")
    return tmp_path / "img", tmp_path / "msk"


def test_train_on_your_own_folders_in_one_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = _own_folders(tmp_path)
    assert run(["train", "--model", "unet", "--images", str(images), "--masks", str(masks), "--classes", "bg,box",
                "--ignore", "11", "--out", str(tmp_path / "run"), "--max-steps", "2", "--quiet",
                "--set", "model.kwargs.base_channels=4"]) == 0
    out = capsys.readouterr().out
    assert "no --recipe: training under the CPU budget" in " ".join(out.split())
    config = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert config["classes"] == ["bg", "box"] and config["label_map"]["11"] == 255  # --ignore 11: void
    assert config["input_size"] == [120, 160]  # the CPU budget's resolution
    assert seglab.load(tmp_path / "run").seglab_config["dataset"] == "folder"


@pytest.mark.parametrize(("args", "expected"), [
    (["--images", "IMG"], "--images, --masks and --classes go together"),
    (["--images", "IMG", "--masks", "MSK"], "go together"),
    (["--images", "IMG", "--masks", "MSK", "--classes", " , "], "--classes is empty"),
    (["--images", "NOPE", "--masks", "MSK", "--classes", "a,b"], "is not a folder"),
])
def test_own_data_options_say_what_is_missing(args: list[str], expected: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    images, masks = _own_folders(tmp_path)
    args = [str(images) if a == "IMG" else str(masks) if a == "MSK" else str(tmp_path / a) if a == "NOPE" else a
            for a in args]
    assert run(["train", "--model", "unet", *args, "--out", str(tmp_path / "run")]) == 2
    assert expected in capsys.readouterr().err
