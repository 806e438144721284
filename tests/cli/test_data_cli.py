"""`seglab data fetch`, `seglab data stats` and `seglab data check` through the typer app (no subprocess)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import require_dataset
from PIL import Image
from typer.testing import CliRunner

from seglab.cli.app import app
from seglab.errors import DataError

runner = CliRunner()


class FileServer:
    """Serves ``files`` (name -> bytes) from 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()


@pytest.fixture
def server() -> FileServer:
    srv = FileServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_fetch_from_a_mirror_warns_for_unverified_files(server: FileServer, tmp_path: Path) -> None:
    # isbi_cell_tracking publishes no checksums: the command prints the computed ones and extracts.
    archives = {"PhC-C2DH-U373.zip": _zip({"PhC-C2DH-U373/01/t000.tif": b"u373"}),
                "DIC-C2DH-HeLa.zip": _zip({"DIC-C2DH-HeLa/01/t000.tif": b"hela"})}
    server.files.update(archives)
    result = runner.invoke(app, ["data", "fetch", "isbi_cell_tracking", "--root", str(tmp_path),
                                 "--url-base", server.url, "--quiet"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "DIC-C2DH-HeLa" / "01" / "t000.tif").read_bytes() == b"hela"
    for data in archives.values():
        assert hashlib.sha256(data).hexdigest() in result.output
    assert result.output.count("could not be verified") == 2 and "ok" in result.output


def test_fetch_checksum_mismatch_is_a_data_error(server: FileServer, tmp_path: Path) -> None:
    server.files["ADEChallengeData2016.zip"] = _zip({"ADEChallengeData2016/images/a.jpg": b"not the real one"})
    result = runner.invoke(app, ["data", "fetch", "ade20k", "--root", str(tmp_path), "--quiet"],
                           env={"SEGLAB_FETCH_URL_BASE": server.url})
    assert isinstance(result.exception, DataError)
    assert "SHA256 mismatch" in str(result.exception) and "ADEChallengeData2016.zip" in str(result.exception)
    assert (tmp_path / "ADEChallengeData2016.zip.corrupt").is_file()


def test_fetch_cityscapes_prints_instructions_and_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "fetch", "cityscapes", "--root", str(tmp_path)],
                           env={"COLUMNS": "300", "SEGLAB_FETCH_URL_BASE": ""})
    assert result.exit_code == 1
    assert "cityscapes-dataset.com/login" in result.output and "leftImg8bit_trainvaltest.zip" in result.output


def test_stats_json_on_camvid(camvid_dir: Path) -> None:
    result = runner.invoke(app, ["data", "stats", "camvid", "--split", "train", "--data-root", str(camvid_dir.parent),
                                 "--max-items", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["num_items"] == 3 and report["total_pixels"] == 3 * 480 * 360
    assert [row["class"] for row in report["classes"]][:2] == ["Sky", "Building"]
    counted = sum(row["pixels"] for row in report["classes"]) + report["ignored_pixels"]
    assert counted == report["total_pixels"]
    assert all(row["weight"] >= 0 for row in report["classes"])


def test_stats_table_on_synthetic_data() -> None:
    result = runner.invoke(app, ["data", "stats", "synthetic", "--max-items", "4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "weight" in result.output and "(ignored)" in result.output and "median(freq)" in result.output


def _broken_coco_json(folder: Path) -> Path:
    """A COCO JSON with an undeclared category (annotation 12), a duplicate annotation id (11) and a
    bbox outside its 8x6 image (annotation 13); one 8x6 image under ``folder/images``."""
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(folder / "images" / "a.jpg")
    polygon = [[1, 1, 5, 1, 5, 3, 1, 3]]
    annotations = [{"id": i, "image_id": 1, "category_id": c, "segmentation": polygon, "bbox": b}
                   for i, c, b in ((11, 1, [1, 1, 4, 2]), (12, 7, [1, 1, 4, 2]), (11, 1, [1, 1, 4, 2]),
                                   (13, 1, [6, 1, 4, 2]))]  # fmt: skip
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 6, "width": 8}], "annotations": annotations,
            "categories": [{"id": 1, "name": "cell"}]}
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_check_own_coco_json_exits_1_naming_each_problem(tmp_path: Path) -> None:
    path = _broken_coco_json(tmp_path / "mine")
    args = ["data", "check", "coco", "--split", "mine", "-O", f"json_file={path}", "-O", "image_dir=mine/images",
            "--data-root", str(tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "annotation id 12: unknown category_id 7" in result.output
    assert "annotation id 11 appears twice" in result.output
    assert "annotation id 13 (image id 1): bbox [6, 1, 4, 2] reaches outside the 8x6 image" in result.output
    assert "instances" in result.output and "3 error(s)" in result.output
    report = json.loads(runner.invoke(app, [*args, "--format", "json"]).output)
    assert report["task"] == "instance" and len(report["errors"]) == 3 and report["class_instances"] == {"cell": 2}


def test_check_coco_tiny_instances_exits_0() -> None:
    root = require_dataset("coco_tiny")
    result = runner.invoke(app, ["data", "check", "coco", "-O", "folder=coco_tiny", "--split", "val",
                                 "--data-root", str(root.parent), "--max-items", "6"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "instances" in result.output and "person" in result.output and "instances are consistent" in result.output


def test_check_routes_by_task() -> None:
    result = runner.invoke(app, ["data", "check", "synthetic", "-O", "task=instance", "-O", "num_images=4",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["task"] == "instance" and set(report["class_instances"]) == {"circle", "square", "triangle"}
    semantic = json.loads(runner.invoke(app, ["data", "check", "synthetic", "-O", "num_images=2", "--format", "json"]).output)
    assert semantic["task"] == "semantic" and semantic["class_pixels"]["background"] > 0
    sample = require_dataset("cityscapes_sample")
    result = runner.invoke(app, ["data", "check", "cityscapes", "--split", "all", "-O", f"folder={sample.name}",
                                 "-O", "task=instance", "--data-root", str(sample.parent)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "car" in result.output and "(images without instances)" in result.output
