"""Sliding-window prediction of a huge image in bounded memory: tiles/s, total time and peak RSS.

Writes a ``--size`` x ``--size`` RGB image (``--height`` rows if given) (synthetic gradients and blocks) to a temporary folder as an
uncompressed TIFF (read by memory map; ``--compress``: a tiled deflate TIFF, read by decoding the tiles
a band needs), in a child process so the figure below is the prediction's alone. Then predicts it with
``Predictor.predict_large_file`` (``--tile``, ``--overlap``) using a random-init ``--model`` of
``--classes`` classes, writing the label map by bands to a palette TIFF. Prints windows, tiles/s,
seconds, the process's peak resident memory (``getrusage`` ru_maxrss; psutil's view too when it is
installed) and whether it stayed under 2 GiB, and for a smaller ``--size`` the time extrapolated to
20000 x 20000 (same tile grid density). Not a test.

    python benchmarks/bench_large_image.py [--size 20000] [--tile 512] [--overlap 0.25] [--model unet]
        [--model-kwargs '{"base_channels": 4}'] [--classes 12] [--batch-size 4] [--compress] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

GIB = 2**30
BAND = 1024  # rows written per memory-map opening when making the input


def pattern(y0: int, y1: int, size: int) -> np.ndarray:
    """Rows y0..y1-1 of the synthetic image: [rows, size, 3] uint8 gradients, 97-pixel blocks and noise."""
    y, x = np.mgrid[y0:y1, 0:size]
    rng = np.random.default_rng(y0)
    image = np.stack([(x * 7) % 256, (y * 5) % 256, ((x // 97 + y // 97) % 2) * 180], axis=2)
    return (image + rng.integers(0, 40, image.shape)).clip(0, 255).astype(np.uint8)


def write_image(path: str, height: int, size: int, compress: bool) -> None:
    """The input TIFF, ``height`` x ``size``, by bands (in a child process: its memory is not the benchmark's)."""
    if compress:
        def tiles():
            for y0 in range(0, height, 512):
                rows = pattern(y0, min(y0 + 512, height), size)
                yield from (rows[:, x:x + 512] for x in range(0, size, 512))

        tifffile.imwrite(path, tiles(), shape=(height, size, 3), dtype=np.uint8, tile=(512, 512), compression="zlib",
                         photometric="rgb", bigtiff=True)
        return
    tifffile.memmap(path, shape=(height, size, 3), dtype=np.uint8, photometric="rgb",
                    bigtiff=height * size * 3 > 2**31)
    for y0 in range(0, height, BAND):
        mapped = tifffile.memmap(path, mode="r+")  # reopened per band so written pages leave this process
        mapped[y0:y0 + BAND] = pattern(y0, min(y0 + BAND, height), size)
        mapped.flush()
        del mapped


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--height", type=int, default=None, help="rows, if not --size (memory depends on the width)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--model-kwargs", default='{"base_channels": 4}', help="JSON builder arguments")
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--compress", action="store_true", help="tiled deflate input instead of uncompressed")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.height = args.height or args.size

    with tempfile.TemporaryDirectory(prefix="seglab_large_") as tmp:
        path = Path(tmp) / "large.tif"
        start = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=write_image, args=(str(path), args.height,
                                                                                        args.size, args.compress))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the input failed (exit {child.exitcode})")
        print(f"input: {args.size} x {args.height} RGB, {path.stat().st_size / GIB:.2f} GiB "
              f"{'tiled deflate' if args.compress else 'uncompressed'} TIFF, written in "
              f"{time.perf_counter() - start:.0f} s (child process)")
        predict(path, Path(tmp) / "out", args)


def predict(path: Path, out_dir: Path, args: argparse.Namespace) -> None:
    import torch  # noqa: PLC0415 - after the child is spawned

    import seglab
    from seglab.inference.large_image import open_region_reader
    from seglab.inference.predictor import Predictor
    from seglab.inference.sliding_window import window_shape, window_starts

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = seglab.create_model(args.model, num_classes=args.classes, **json.loads(args.model_kwargs))
    predictor = Predictor.from_model(model, {"model": args.model, "num_classes": args.classes}, device=args.device,
                                     tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
    wh, ww = window_shape(args.height, args.size, predictor.inference)
    windows = len(window_starts(args.height, wh, args.overlap)) * len(window_starts(args.size, ww, args.overlap))
    before = peak_rss()
    start = time.perf_counter()
    written = predictor.predict_large_file(path, out_dir)
    seconds = time.perf_counter() - start
    peak = peak_rss()
    with open_region_reader(written.labels) as labels:
        first = labels.read_rows(0, min(256, labels.height))[..., 0]
        size = (labels.height, labels.width)
    print(f"model: {args.model} {args.model_kwargs}, {args.classes} classes, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {torch.get_num_threads()} threads")
    print(f"tiles: {windows} windows of {args.tile} px, overlap {args.overlap}, batch {args.batch_size}")
    print(f"time: {seconds:.1f} s, {windows / seconds:.2f} tiles/s, {args.size * args.height / seconds / 1e6:.2f} Mpixel/s")
    print(f"label map: {written.labels.name} {size[1]} x {size[0]}, {written.labels.stat().st_size / 2**20:.1f} MiB; "
          f"classes in the first rows: {np.unique(first).tolist()}")
    print(f"peak RSS: {peak / GIB:.2f} GiB ({'under' if peak < 2 * GIB else 'OVER'} 2 GiB); "
          f"{before / GIB:.2f} GiB before predicting (torch, model)")
    try:
        import psutil  # noqa: PLC0415 - optional

        print(f"psutil: current RSS {psutil.Process().memory_info().rss / GIB:.2f} GiB")
    except ImportError:
        pass
    if (args.size, args.height) != (20000, 20000):
        print(f"extrapolated to 20000 x 20000: about {seconds * 20000**2 / (args.size * args.height):.0f} s")


if __name__ == "__main__":
    main()
