"""Augmentation throughput per worker: images/s of a (image, mask) pair through v2 pipelines.

Times PSPNet's training pipeline (random resize 0.5-2, rotation +-10 degrees, Gaussian blur,
mirror, 473x473 crop with ignore fill; arXiv 1612.01105 sec. 4.1) and each named augmentation of
``seglab.data.augment`` alone, on synthetic-shape scenes of ``--size`` x ``--size`` (uint8 image,
int64 mask), on CPU with ``--threads`` threads (a DataLoader worker usually runs with 1). Each row
is ``--n`` samples, seeded per sample as training does; the median over ``--repeats`` passes is
printed. Not a test.

    python benchmarks/bench_augment.py [--size 512] [--n 32] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from seglab.data import SyntheticShapes
from seglab.data.augment import build_augmentation, list_augmentations

PSPNET = [
    {"name": "random_resize", "scale_range": [0.5, 2.0]},
    {"name": "rotate", "degrees": 10},
    {"name": "gaussian_blur"},
    {"name": "hflip"},
    {"name": "random_crop", "size": [473, 473]},
]
ALONE_PARAMS: dict[str, dict[str, Any]] = {  # parameters for augmentations that need or suit them
    "random_crop": {"size": [473, 473]},
    "gaussian_blur": {"p": 1.0},
}


def images_per_second(
    transform: Callable[..., Any], samples: list[tuple[Any, Any]], repeats: int
) -> tuple[float, float]:
    """Median over ``repeats`` passes of samples per wall-clock second and per CPU second.

    The CPU-time rate is what an uncontended worker would reach with 1 thread; on a shared
    machine the wall-clock rate is lower. One untimed warm-up sample runs first.
    """
    transform(*samples[0])
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for index, sample in enumerate(samples):
            torch.manual_seed(index)
            transform(*sample)
        wall.append(len(samples) / (time.perf_counter() - start))
        cpu.append(len(samples) / max(time.process_time() - start_cpu, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--n", type=int, default=32, help="samples per timed pass")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (median printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    scenes = SyntheticShapes(num_images=min(args.n, 8), size=(args.size, args.size))
    rendered = [scenes[i] for i in range(len(scenes))]
    samples = [rendered[i % len(rendered)] for i in range(args.n)]

    rows = [("pspnet pipeline", PSPNET)]
    rows += [(name, [{"name": name, **ALONE_PARAMS.get(name, {})}]) for name in list_augmentations()]
    print(f"{args.size}x{args.size} uint8 image + int64 mask, {args.n} samples, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"{'pipeline':<22}{'images/s':>10}{'ms/image':>10}{'images/CPU-s':>14}")
    for label, specs in rows:
        rate, cpu_rate = images_per_second(build_augmentation(specs), samples, args.repeats)
        print(f"{label:<22}{rate:>10.1f}{1000 / rate:>10.1f}{cpu_rate:>14.1f}")


if __name__ == "__main__":
    main()
