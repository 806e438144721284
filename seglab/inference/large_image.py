"""Huge images (a 20000 x 20000 scan, an orthophoto): read by region, predicted by bands of tiles, the label
map written by bands, so memory depends on the image width and the tile, not on the image size.

Readers (``open_region_reader``): a TIFF through tifffile (an uncompressed one by memory map, a compressed
or tiled one by decoding only the strips or tiles a band needs), a ``.npy`` array by memory map, and a
PNG / JPEG / BMP decoded whole through ``seglab.data.read_image`` while Pillow accepts its size (above
that, an InputError says how to convert it to TIFF). Memory maps are opened per band and dropped, so the
pages read do not stay resident. The label map is a tiled, deflate-compressed palette TIFF
(``write_label_tiff``: pixel value = class id, shown in the class colours) written from the rows as they
are finished; no overlay is drawn for such images (an RGB overlay would be as large as the input).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from PIL import Image as PILImage
from torch import Tensor, nn

from seglab.errors import InputError
from seglab.inference.sliding_window import InferenceOptions, iter_band_probs

LARGE_IMAGE_PIXELS = 8192 * 8192  # above this: label map by bands to TIFF, no overlay (67 Mpixel)
TIFF_SUFFIXES = (".tif", ".tiff")
LABEL_TILE = 256  # tile side of the written label TIFF


def _rgb(rows: np.ndarray, path: Path) -> np.ndarray:
    """Pixel rows [h, W], [h, W, 1|3|4] uint8 or uint16 -> [h, W, 3] uint8 (16-bit divided by 257, as read_image)."""
    if rows.dtype == np.uint16:
        rows = (rows // 257).astype(np.uint8)
    if rows.dtype != np.uint8:
        raise InputError(f"{str(path)!r} holds {rows.dtype} pixels; large images are read as 8- or 16-bit "
                         "gray or RGB: convert it to uint8 (e.g. scaled to 0..255)")
    if rows.ndim == 2:
        rows = rows[..., None]
    if rows.ndim != 3 or rows.shape[2] not in (1, 3, 4):
        raise InputError(f"{str(path)!r} has pixel rows of shape {list(rows.shape)}; expected [H, W], [H, W, 3] "
                         "or [H, W, 4] (RGBA: alpha is dropped)")
    return np.repeat(rows, 3, axis=2) if rows.shape[2] == 1 else np.ascontiguousarray(rows[..., :3])


class RegionReader:
    """An image of ``height`` x ``width`` pixels read by rows: ``read_rows(y0, y1)`` -> [y1 - y0, W, 3] uint8."""

    def __init__(self, path: Path, height: int, width: int, read: Callable[[int, int], np.ndarray],
                 close: Callable[[], None] = lambda: None) -> None:
        self.path, self.height, self.width = path, height, width
        self._read, self.close = read, close

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        return _rgb(self._read(y0, y1), self.path)

    def __enter__(self) -> RegionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _memmap_rows(path: Path, open_map: Callable[[], np.ndarray]) -> Callable[[int, int], np.ndarray]:
    def read(y0: int, y1: int) -> np.ndarray:
        mapped = open_map()  # opened per band and dropped: pages read do not stay in this process's memory
        rows = np.array(mapped[y0:y1])
        del mapped
        return rows

    return read


def _segment_rows(tif: tifffile.TiffFile, path: Path) -> Callable[[int, int], np.ndarray]:
    """Rows of a compressed or tiled TIFF page, decoding only the strips or tiles that cross them."""
    page = tif.pages[0]
    chunk_h = page.chunks[0]
    across = page.chunked[1] if page.is_tiled else 1
    decode = page.decode
    samples = page.samplesperpixel

    def read(y0: int, y1: int) -> np.ndarray:
        out = np.zeros((y1 - y0, page.imagewidth, samples), dtype=page.dtype)
        for row in range(y0 // chunk_h, (y1 - 1) // chunk_h + 1):
            for index in range(row * across, (row + 1) * across):
                tif.filehandle.seek(page.dataoffsets[index])
                try:
                    segment, (_, _, top, left, _), _ = decode(tif.filehandle.read(page.databytecounts[index]), index,
                                                           jpegtables=page.jpegtables)
                except (ValueError, NotImplementedError) as err:
                    raise InputError(f"cannot decode {str(path)!r} ({page.compression.name} compression: {err}); "
                                     "`pip install imagecodecs` adds the codecs tifffile lacks, or convert it "
                                     "to deflate or uncompressed TIFF") from None
                if segment is None:
                    continue
                segment = segment[0]  # [h, w, samples], tiles padded past the image
                a, b = max(y0, top), min(y1, top + segment.shape[0])
                w = min(segment.shape[1], page.imagewidth - left)
                out[a - y0:b - y0, left:left + w] = segment[a - top:b - top, :w]
        return out[..., 0] if samples == 1 else out

    return read


def _tiff_reader(path: Path) -> RegionReader:
    tif = tifffile.TiffFile(path)
    page = tif.pages[0]
    height, width = page.imagelength, page.imagewidth
    if page.planarconfig != 1 and page.samplesperpixel > 1:
        tif.close()
        raise InputError(f"{str(path)!r} stores its colour planes separately (TIFF planar configuration 2); convert "
                         f"it to interleaved RGB, e.g. `vips copy {path.name} out.tif[tile,compression=deflate,bigtiff]`")
    if page.is_memmappable:
        tif.close()
        return RegionReader(path, height, width, _memmap_rows(path, lambda: tifffile.memmap(path, mode="r", page=0)))
    return RegionReader(path, height, width, _segment_rows(tif, path), close=tif.close)


def _pillow_refuses(path: Path, err: Exception) -> InputError:
    stem = path.with_suffix(".tif").name
    return InputError(f"{str(path)!r} is too large for Pillow to decode ({err}). seglab reads huge images by region "
                      f"from TIFF or .npy: convert it, e.g. `vips copy {path.name} {stem}[tile,compression=deflate,"
                      f"bigtiff]` (libvips streams it), then predict {stem} with --tile")


def open_region_reader(path: str | Path) -> RegionReader:
    """A reader of ``path`` by rows: TIFF (tifffile), ``.npy`` (memory map), else decoded whole (read_image).

    Raises:
        InputError: a PNG / JPEG too large for Pillow (says how to convert it to TIFF), an undecodable
            TIFF compression, or pixels that are not 8/16-bit gray or RGB(A); each names the file.
    """
    from seglab.data import read_image  # noqa: PLC0415 - keeps this module light to import

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _tiff_reader(path)
    if suffix == ".npy":
        shape = np.load(path, mmap_mode="r").shape
        if len(shape) not in (2, 3):
            raise InputError(f"{str(path)!r} holds an array of shape {list(shape)}; expected [H, W] or [H, W, 3]")
        return RegionReader(path, shape[0], shape[1], _memmap_rows(path, lambda: np.load(path, mmap_mode="r")))
    try:
        with warnings.catch_warnings():  # between 1x and 2x Pillow's limit it only warns: the size is intended here
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            image = read_image(path).permute(1, 2, 0).numpy()
    except Exception as err:
        if isinstance(err.__cause__, PILImage.DecompressionBombError):
            raise _pillow_refuses(path, err.__cause__) from None
        raise
    return RegionReader(path, image.shape[0], image.shape[1], lambda y0, y1: image[y0:y1])


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) of an image file from its header only, or None when it cannot be told (unreadable, or too
    large for Pillow: ``open_region_reader`` then says so)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                return tif.pages[0].imagelength, tif.pages[0].imagewidth
        if path.suffix.lower() == ".npy":
            return tuple(np.load(path, mmap_mode="r").shape[:2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as image:  # reads the header, decodes nothing
                return image.height, image.width
    except Exception:  # noqa: BLE001 - the reader that follows reports the file's problem
        return None


def is_large_image(path: str | Path) -> bool:
    """Whether ``path`` is read and written by bands: over ``LARGE_IMAGE_PIXELS``, a ``.npy`` array, or a
    PNG / JPEG larger than Pillow decodes."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return True
    size = image_size(path)
    if size is not None:
        return size[0] * size[1] > LARGE_IMAGE_PIXELS
    try:
        with PILImage.open(path):
            return False
    except PILImage.DecompressionBombError:
        return True
    except Exception:  # noqa: BLE001 - unreadable: read_image names the file and the problem
        return False


def write_label_tiff(path: str | Path, rows: Iterable[tuple[int, np.ndarray]], *, height: int, width: int,
                     palette: np.ndarray) -> None:
    """Write a label map given as its rows, top to bottom, to a tiled deflate TIFF without holding it whole.

    Args:
        rows: (y0, labels [h, width] integer class ids) covering rows 0..height-1 in order.
        palette: [C, 3] uint8 class colours; with C <= 256 the TIFF is palette-mode uint8 (viewers show the
            colours, ``tifffile.imread`` and Pillow return class ids), else uint16 gray.
    """
    dtype = np.uint8 if len(palette) <= 256 else np.uint16
    colour: dict[str, Any] = {"photometric": "minisblack"}
    if dtype == np.uint8:
        colormap = np.zeros((3, 256), dtype=np.uint16)
        colormap[:, :len(palette)] = palette.T.astype(np.uint16) * 257
        colour = {"photometric": "palette", "colormap": colormap}
    bigtiff = height * width * np.dtype(dtype).itemsize > 2**31  # offsets past 4 GiB need BigTIFF; margin kept
    tifffile.imwrite(path, _tiles(rows, width, dtype), shape=(height, width), dtype=dtype,
                     tile=(LABEL_TILE, LABEL_TILE), compression="zlib", bigtiff=bigtiff, **colour)


def _tiles(rows: Iterable[tuple[int, np.ndarray]], width: int, dtype: Any) -> Iterator[np.ndarray]:
    """Re-cut rows arriving in any chunks into TIFF tiles, row of tiles by row of tiles (edge tiles smaller)."""
    pending: list[np.ndarray] = []
    held = 0
    for _, chunk in rows:
        pending.append(chunk.astype(dtype, copy=False))
        held += chunk.shape[0]
        while held >= LABEL_TILE:
            block = np.concatenate(pending)
            yield from (block[:LABEL_TILE, x:x + LABEL_TILE] for x in range(0, width, LABEL_TILE))
            pending, held = [block[LABEL_TILE:]], held - LABEL_TILE
    if held:
        block = np.concatenate(pending)
        yield from (block[:, x:x + LABEL_TILE] for x in range(0, width, LABEL_TILE))


def predict_large_image(model: nn.Module, path: str | Path, out_path: str | Path, *, options: InferenceOptions,
                        prepare: Callable[[np.ndarray], Tensor], palette: np.ndarray) -> tuple[int, int]:
    """Predict an image file by bands of tiles and write its label map to ``out_path`` (``write_label_tiff``).

    Args:
        options: with ``tile`` set (``seglab.inference.sliding_window``).
        prepare: pixel rows [h, W, 3] uint8 -> [3, h, W] on the model's device as the model takes them:
            float, normalised as the checkpoint was (applied to each band on its own), or uint8 when
            only the division by 255 applies (``iter_band_probs`` does it per window).

    Returns:
        The image size (H, W). The TIFF is written beside ``out_path`` first and renamed when complete.
    """
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    with open_region_reader(path) as reader:
        bands = iter_band_probs(model, height=reader.height, width=reader.width, options=options,
                                read_rows=lambda y0, y1: prepare(reader.read_rows(y0, y1)))
        rows = ((y0, probs.argmax(0).to(torch.int32).cpu().numpy()) for y0, probs in bands)
        try:
            write_label_tiff(partial, rows, height=reader.height, width=reader.width, palette=palette)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(out_path)
    return reader.height, reader.width
