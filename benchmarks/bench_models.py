"""Params, GFLOPs and CPU latency of every registered semantic model; prints a table.

    python benchmarks/bench_models.py [--size 360 480] [--threads 2] [--repeats 3] [--models unet ...]

GFLOPs count multiply-adds as 2 FLOPs (torch.utils.flop_counter) for one image at --size.
Latency is the median eval-mode forward of one image (batch 1) after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import seglab
from seglab.models.cost import model_cost


def measure(name: str, size: tuple[int, int], repeats: int, num_classes: int) -> dict[str, float]:
    model = seglab.create_model(name, num_classes=num_classes).eval()
    images = torch.rand(1, 3, *size)
    params, gflops = model_cost(name, num_classes=num_classes, size=size)
    with torch.no_grad():
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(images)
            if i:  # the first run warms up allocators and kernels
                times.append(time.perf_counter() - start)
    return {"params_M": params / 1e6, "gflops": gflops or float("nan"), "latency_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(360, 480), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or seglab.list_models(task="semantic")
    print(f"{len(names)} models, one {args.size[0]}x{args.size[1]} image, {args.num_classes} classes, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"{'model':<26}{'params (M)':>12}{'GFLOPs':>10}{'latency (s)':>13}")
    for name in names:
        r = measure(name, tuple(args.size), args.repeats, args.num_classes)
        print(f"{name:<26}{r['params_M']:>12.2f}{r['gflops']:>10.1f}{r['latency_s']:>13.3f}", flush=True)


if __name__ == "__main__":
    main()
