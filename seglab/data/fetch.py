"""``seglab data fetch``: download a dataset from its official source, verify, extract and convert it.

Steps per file of a ``seglab.data.sources.DatasetSource``:

1. download with ``urllib`` to ``<root>/<folder>/<file>.part``; when a ``.part`` is left from an
   interrupted run, resume it with an HTTP ``Range: bytes=<size>-`` request (RFC 9110 sec. 14.2). A
   server that ignores Range answers 200 with the whole file: the download restarts from byte 0;
2. rename ``.part`` to the file and check its SHA-256 (and MD5 where only that is published). On a
   mismatch the file is renamed ``<file>.corrupt`` (kept for inspection, never reused) and a
   ``DataError`` names the file, the expected and the actual hash. With no published hash the
   computed SHA-256 is printed with a warning that the file could not be verified;
3. extract tar/tgz/zip archives, refusing absolute paths, ``..`` and links leaving the folder;
4. run the dataset's conversion steps (``seglab.data.convert``).

Finished steps leave markers in ``<folder>/.seglab_fetch/`` so running the command again only does
what is left. ``url_base`` (``--url-base`` or ``$SEGLAB_FETCH_URL_BASE``) replaces every official URL
by ``<url_base>/<file name>``: a mirror, or a local server in tests.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from seglab.data.convert import CONVERTERS
from seglab.data.root import data_root
from seglab.data.sources import ARCHIVE_TYPES, DatasetSource, get_source
from seglab.errors import ConfigError, DataError

__all__ = ["URL_BASE_ENV", "FetchResult", "download", "extract_archive", "fetch_dataset", "fetch_source", "verify_file"]

URL_BASE_ENV = "SEGLAB_FETCH_URL_BASE"
CHUNK_BYTES = 1 << 20
MARKER_DIR = ".seglab_fetch"

Progress = Callable[[str, int, "int | None"], None]  # (description, done, total or None)
Log = Callable[[str], None]


@dataclass
class FetchResult:
    """What ``fetch_source`` did.

    Attributes:
        name: the dataset name.
        folder: where its files are.
        sha256: file name -> SHA-256 computed here.
        unverified: file names with no published checksum (only the computed hash is known).
        converted: conversion steps run in this call.
        instructions: set when the files need a manual (login) download; nothing else was done.
    """

    name: str
    folder: Path
    sha256: dict[str, str] = field(default_factory=dict)
    unverified: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    instructions: str | None = None

    @property
    def complete(self) -> bool:
        return self.instructions is None


class _Interrupted(Exception):
    """A transfer stopped early (connection closed, reset or timed out): worth resuming."""


def fetch_dataset(name: str, root: str | Path | None = None, **kwargs: object) -> FetchResult:
    """Fetch the catalogue entry ``name`` (see ``seglab.data.sources.list_sources()``) into ``root``.

    Args:
        name: the dataset name.
        root: the data root (``None``: ``seglab.data.data_root()``); files go to ``<root>/<folder>``.
        **kwargs: as for ``fetch_source``.
    """
    return fetch_source(get_source(name), root, **kwargs)  # type: ignore[arg-type]


def fetch_source(
    source: DatasetSource,
    root: str | Path | None = None,
    *,
    url_base: str | None = None,
    attempts: int = 3,
    timeout: float = 60.0,
    progress: Progress | None = None,
    log: Log | None = None,
) -> FetchResult:
    """Download, verify, extract and convert ``source`` into ``<root>/<source.folder>``.

    Args:
        source: the catalogue entry.
        root: the data root (``None``: ``seglab.data.data_root()``).
        url_base: mirror replacing the official URLs (``None``: ``$SEGLAB_FETCH_URL_BASE`` if set).
        attempts: tries per file; each retry resumes where the previous one stopped.
        timeout: seconds without data before a connection counts as stalled.
        progress: called as ``progress(description, done, total)``; bytes while downloading, files
            while converting; ``total`` is ``None`` when unknown.
        log: receives one-line messages (warnings start with "warning:").

    Returns:
        a ``FetchResult``; ``complete`` is False when the files need a manual download.

    Raises:
        DataError: download failed, checksum mismatch, or unsafe or corrupt archive.
    """
    log = log or (lambda message: None)
    url_base = url_base if url_base is not None else (os.environ.get(URL_BASE_ENV) or None)
    folder = (Path(root).expanduser() if root is not None else data_root()) / source.folder
    result = FetchResult(name=source.name, folder=folder)
    if source.manual and url_base is None and any(not (folder / f.filename).is_file() for f in source.files):
        result.instructions = source.manual.format(folder=folder)
        return result
    markers = folder / MARKER_DIR
    markers.mkdir(parents=True, exist_ok=True)
    for remote in source.files:
        path = folder / remote.filename
        if path.is_file():
            log(f"{path} is already downloaded")
        else:
            url = f"{url_base.rstrip('/')}/{remote.filename}" if url_base else remote.url
            download(url, path, attempts=attempts, timeout=timeout, size=remote.size, progress=progress, log=log)
        result.sha256[remote.filename] = verify_file(path, sha256=remote.sha256, md5=remote.md5)
        if remote.sha256 is None and remote.md5 is None:
            result.unverified.append(remote.filename)
            log(f"warning: {path} could not be verified (no published checksum); its SHA-256 is "
                f"{result.sha256[remote.filename]}")
        marker = markers / f"{remote.filename}.extracted"
        if remote.archive and not marker.exists():
            log(f"extracting {path.name} into {folder / remote.extract_to}")
            extract_archive(path, folder / remote.extract_to, kind=remote.archive,
                            strip_prefix=remote.strip_prefix, log=log)
            marker.touch()
    for step in source.convert:
        marker = markers / f"{step}.done"
        if marker.exists():
            continue
        report = (lambda done, total, step=step: progress(step, done, total)) if progress else None
        written = CONVERTERS[step](folder, progress=report)
        log(f"{step}: wrote {written} files")
        result.converted.append(step)
        marker.touch()
    return result


def download(
    url: str,
    dest: Path,
    *,
    attempts: int = 3,
    timeout: float = 60.0,
    size: int | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a ``.part`` left by an earlier run.

    Args:
        url: http(s) or file URL.
        dest: the final path; ``<dest>.part`` holds the bytes received so far.
        attempts: tries before giving up (the ``.part`` is kept, so a later call resumes).
        timeout: socket timeout in seconds.
        size: expected size in bytes, used as the progress total when the server sends none.
        progress: see ``fetch_source``.
        log: see ``fetch_source``.

    Returns:
        ``dest``.

    Raises:
        DataError: HTTP error, or the transfer kept failing; names the URL and the ``.part`` file.
    """
    if attempts < 1:
        raise ConfigError(f"attempts must be at least 1, got {attempts}")
    log = log or (lambda message: None)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, timeout=timeout, size=size, progress=progress, log=log)
            break
        except _Interrupted as err:
            received = part.stat().st_size if part.exists() else 0
            if attempt == attempts:
                raise DataError(
                    f"download of {url} stopped after {received} bytes ({err}); the partial file "
                    f"{str(part)!r} is kept: run the command again to resume"
                ) from err
            log(f"warning: {err}; retrying ({attempt + 1}/{attempts}) from byte {received}")
    part.replace(dest)
    return dest


def _transfer(url: str, part: Path, *, timeout: float, size: int | None, progress: Progress | None, log: Log) -> None:
    """One request: append to ``part`` after a 206, or rewrite it after a 200."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "seglab-fetch", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part is not a prefix the server can continue: start over
            log(f"warning: server refused to resume {url} at byte {offset}; restarting from byte 0")
            part.unlink()
            raise _Interrupted("range not satisfiable") from err
        if err.code >= 500:
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from err
        raise DataError(
            f"cannot download {url}: HTTP {err.code} {err.reason}; check the URL, or pass --url-base (or set "
            f"{URL_BASE_ENV}) to use a mirror"
        ) from err
    except (urllib.error.URLError, OSError) as err:
        raise _Interrupted(f"cannot reach {url}: {getattr(err, 'reason', err)}") from err
    with response:
        mode, done, total = "wb", 0, _length(response.headers.get("Content-Length"))
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"server resumed at byte {start} instead of {offset}; restarting")
            mode, done = "ab", offset
        elif offset:
            log(f"warning: the server ignored the Range request for {url}; restarting from byte 0")
        total = total if total is not None else size
        try:
            with part.open(mode) as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(part.name[: -len(".part")], done, total)
        except (OSError, http.client.HTTPException) as err:
            raise _Interrupted(f"connection lost after {done} bytes: {err}") from err
    if total is not None and done < total:
        raise _Interrupted(f"connection closed after {done} of {total} bytes")


def _length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _content_range(value: str) -> tuple[int, int | None]:
    """Parse ``bytes <start>-<end>/<total or *>`` into (start, total)."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        raise _Interrupted(f"unexpected Content-Range {value!r} in a 206 answer")
    return int(match[1]), int(match[2]) if match[2] != "*" else None


def verify_file(path: Path, *, sha256: str | None = None, md5: str | None = None) -> str:
    """Check ``path`` against the published hashes and return its SHA-256 (lowercase hex).

    Raises:
        DataError: a hash differs; the file has been renamed ``<path>.corrupt`` (kept for inspection,
            replaced by the next mismatch) and the message names the file and both hashes.
    """
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            for digest in digests.values():
                digest.update(chunk)
    actual = {name: digest.hexdigest() for name, digest in digests.items()}
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and actual[name] != expected.lower():
            corrupt = path.with_name(path.name + ".corrupt")
            path.replace(corrupt)
            raise DataError(
                f"{name.upper()} mismatch for {str(path)!r}: expected {expected.lower()}, got {actual[name]}; "
                f"the file was moved to {str(corrupt)!r} (delete it once inspected); run the command again "
                f"to download it afresh"
            )
    return actual["sha256"]


def extract_archive(
    archive: Path, dest: Path, *, kind: str, strip_prefix: str = "", log: Log | None = None
) -> int:
    """Extract a tar, tgz or zip archive into ``dest``, refusing members that would land outside it.

    Args:
        archive: the archive file.
        dest: the folder to extract into (created).
        kind: "tar", "tgz" or "zip".
        strip_prefix: path prefix removed from member names; members outside it are skipped (counted
            in a log line).
        log: see ``fetch_source``.

    Returns:
        the number of members extracted.

    Raises:
        DataError: unsafe member (absolute path, ``..``, link or device leaving ``dest``), or a corrupt
            or truncated archive; the message names the archive and the member.
    """
    if kind not in ARCHIVE_TYPES:
        raise ConfigError(f"unknown archive type {kind!r} for {str(archive)!r}; expected one of {ARCHIVE_TYPES}")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        extracted, skipped = (_extract_zip if kind == "zip" else _extract_tar)(archive, dest, strip_prefix)
    except (tarfile.ReadError, zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise DataError(
            f"archive {str(archive)!r} is corrupt or truncated ({err}); delete it and run the command again"
        ) from err
    if skipped and log is not None:
        log(f"{archive.name}: extracted {extracted} members under {strip_prefix!r}, skipped {skipped} others")
    return extracted


def _member_path(name: str, strip_prefix: str, archive: Path) -> PurePosixPath | None:
    """Return the member's path relative to the destination ("." for the prefix itself), None if outside."""
    if strip_prefix:
        if not name.startswith(strip_prefix):
            return None
        name = name[len(strip_prefix):]
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name or (rel.parts and ":" in rel.parts[0]):
        raise DataError(
            f"archive {str(archive)!r} has an unsafe member {name!r} (absolute path or '..' would write "
            f"outside the dataset folder); refusing to extract it: the archive is corrupt or not the official one"
        )
    return rel


def _extract_tar(archive: Path, dest: Path, strip_prefix: str) -> tuple[int, int]:
    extracted = skipped = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = _member_path(member.name, strip_prefix, archive)
            if rel is None or not rel.parts:
                skipped += rel is None
                continue
            changes = {"name": str(rel)}
            if member.islnk():  # hard-link targets are archive paths too
                target = _member_path(member.linkname, strip_prefix, archive)
                if target is None or not target.parts:
                    raise DataError(
                        f"archive {str(archive)!r}: hard link {member.name!r} points outside {strip_prefix!r}"
                    )
                changes["linkname"] = str(target)
            try:  # the "data" filter (PEP 706) also rejects links leaving dest and device files
                tar.extract(member.replace(**changes), dest, filter="data")
            except tarfile.FilterError as err:
                raise DataError(f"archive {str(archive)!r} has an unsafe member {member.name!r}: {err}") from err
            extracted += 1
    return extracted, skipped


def _extract_zip(archive: Path, dest: Path, strip_prefix: str) -> tuple[int, int]:
    extracted = skipped = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member_path(info.filename, strip_prefix, archive)
            if rel is None or not rel.parts:
                skipped += rel is None
                continue
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:  # zipfile writes a stored symlink as a small file holding its target: nothing escapes
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
            extracted += 1
    return extracted, skipped

