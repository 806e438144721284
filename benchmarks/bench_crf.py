"""Time one DenseCRF call (10 mean-field iterations) on a 360x480 image with 21 classes.

The image is synthetic (coloured rectangles with noise) and the logits a blurred random map, so the
timing covers the same work as a real DeepLab-CRF prediction on a CamVid-sized frame. Runs on CPU
with 2 threads by default, so figures compare across machines; ``--device cuda`` times a GPU.
Prints seconds per call (median and min over ``--repeats``); not a test.

    python benchmarks/bench_crf.py [--threads 2] [--grid 8] [--window 15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from seglab.layers.crf import CRFParams, DenseCRF

HEIGHT, WIDTH, NUM_CLASSES = 360, 480, 21  # CamVid frame, VOC classes


def synthetic_inputs(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, 21, 360, 480] smooth logits and a [1, 3, 360, 480] RGB image of rectangles (0..255)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, HEIGHT, WIDTH), 90.0)
    for _ in range(12):
        y = int(torch.randint(0, HEIGHT - 60, (1,), generator=gen))
        x = int(torch.randint(0, WIDTH - 80, (1,), generator=gen))
        image[..., y : y + 60, x : x + 80] = 255 * torch.rand(3, 1, 1, generator=gen)
    image = (image + 8 * torch.randn(image.shape, generator=gen)).clamp(0, 255)
    coarse = torch.randn(1, NUM_CLASSES, HEIGHT // 8, WIDTH // 8, generator=gen) * 3
    logits = F.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
    return logits.to(device), image.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--grid", type=int, default=8, help="appearance-kernel cell size (pixels)")
    parser.add_argument("--window", type=int, default=15, help="cells per side summed around each pixel")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    logits, image = synthetic_inputs(device)
    crf = DenseCRF(CRFParams(), grid=args.grid, window=args.window)
    seconds = []
    for repeat in range(args.repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        refined = crf(logits, image)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if repeat > 0:
            seconds.append(time.perf_counter() - start)
    changed = (refined.argmax(1) != logits.argmax(1)).float().mean().item()
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, {HEIGHT}x{WIDTH}, "
          f"{NUM_CLASSES} classes, {CRFParams().iterations} iterations, grid {args.grid}, window {args.window}")
    print(f"DenseCRF: median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s per call "
          f"({100 * changed:.1f}% of labels changed)")


if __name__ == "__main__":
    main()
