"""`seglab report` and `seglab eval --save-confusion` on a tiny synthetic run; the page checked in a real browser."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from seglab.cli.app import app
from seglab.cli.app import run as run_cli
from seglab.report import read_run, write_report

runner = CliRunner()

TINY = {
    "description": "report test",
    "source": "test",
    "model": {"name": "unet", "kwargs": {"base_channels": 4, "batch_norm": True}},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 8, "size": [32, 48]}, "batch_size": 4},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"steps": 6},
    "train": {"log_every": 1, "checkpoint_every": 2, "eval_every": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(scope="module")
def report(run: Path) -> Path:
    result = runner.invoke(app, ["report", str(run), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    return run / "report.html"


def test_training_records_sessions_and_the_confusion_matrix(run: Path) -> None:
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0]["steps"] == [0, 6] and sessions[0]["images_per_s"] > 0
    machine = sessions[0]["machine"]
    assert machine["cores"] >= 1 and machine["torch"] and isinstance(machine["cpu_flags"], list)
    metrics = json.loads((run / "final" / "config.json").read_text())["metrics"]
    matrix = np.asarray(metrics["confusion"])
    assert matrix.shape == (4, 4) and matrix.sum() == 8 * 32 * 48  # every val pixel counted once (no ignore)


def test_report_holds_every_section(report: Path) -> None:
    page = report.read_text()
    for needle in ("training loss curves", "learning-rate curve", "validation metric curves", "per-class IoU bars",
                   "confusion matrix heat map", "validation image 1: image | ground truth | prediction", "Recipe",
                   "report test", "Hardware and timings", "images/s"):
        assert needle in page, needle
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert page.count('<img alt="') == 7


def test_report_reads_resumed_logs_and_cut_lines(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 6, "loss": 123.0}) + "\n")  # a resumed run logs step 6 again
        f.write('{"kind": "train", "st')  # killed mid-write
    record = read_run(copy / "final")
    assert record.folder == copy and [r["step"] for r in record.train] == [1, 2, 3, 4, 5, 6]
    assert record.train[-1]["loss"] == 123.0 and record.skipped_lines == 1 and len(record.val) == 3
    out = write_report(copy, tmp_path / "r.html", samples=0)
    assert "1 unreadable line" in out.read_text()


def test_report_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["report", str(tmp_path / "nope")]) == 2
    assert "nope' does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(["report", str(tmp_path / "empty")]) == 2
    assert "empty' is not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy", ".png"])
def test_eval_save_confusion(run: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"confusion{suffix}"
    result = runner.invoke(app, ["eval", str(run / "final"), "--save-confusion", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    recorded = np.asarray(json.loads((run / "final" / "config.json").read_text())["metrics"]["confusion"])
    if suffix == ".csv":
        rows = list(csv.reader(path.open()))
        assert rows[0][1:] == ["background", "circle", "square", "triangle"]
        assert np.array_equal(np.asarray([r[1:] for r in rows[1:]], dtype=np.int64), recorded)
    elif suffix == ".json":
        assert np.array_equal(np.asarray(json.loads(path.read_text())["matrix"]), recorded)
    elif suffix == ".npy":
        assert np.array_equal(np.load(path), recorded)
    else:
        assert Image.open(path).size[0] > 200


def test_eval_save_confusion_refuses_a_bad_suffix_before_evaluating(run: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["eval", str(run / "final"), "--save-confusion", str(tmp_path / "c.txt")]) == 2
    out = capsys.readouterr()
    assert "unknown suffix '.txt'" in out.err and "miou" not in out.out


def _browser():  # noqa: ANN202 - a selenium Chrome driver, or a skip / a failure under CI
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver are missing under CI (.ci/run installs Debian's chromium and "
                        "chromium-driver)")
        pytest.skip("chromium/chromedriver not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


def test_report_renders_in_a_headless_browser(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    try:
        browser.get(report.resolve().as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    assert errors == [], errors
    assert len(images) == 7 and all(complete and w > 100 and h > 50 for _, complete, w, h in images), images
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # not blank: text and charts are drawn
