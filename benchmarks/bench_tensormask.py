"""TensorMask R50-FPN eval latency on CPU, and the part of it spent in the pure-PyTorch SwapAlign2Nat.

The reference configuration (ResNet-50-FPN P2..P7, towers 256 / 128 / 128, 80 classes, bipyramid with
SwapAlign2Nat(2^l) on every level) with random weights, one ``--size`` x ``--size`` image resized to
that size (``min_size=--size``), score threshold 0 so that 100 detections are decoded and pasted as
in a trained model. Forward hooks time the backbone, the FPN, the head and, inside the head, the 12
SwapAlign2Nat calls (6 levels x 2 anchor sizes); the rest is selection, NMS and mask pasting. Medians
of ``--repeats`` runs after one warm-up.

    python benchmarks/bench_tensormask.py [--threads 2] [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import seglab
from seglab.layers.swap_align2nat import SwapAlign2Nat


def add_timers(model: torch.nn.Module) -> dict[str, list[float]]:
    """Hooks adding each call's seconds to the last entry of its part's list (a run appends a 0 to each first)."""
    totals: dict[str, list[float]] = {"backbone": [], "neck": [], "head": [], "swap_align2nat": []}
    parts = {"backbone": model.backbone, "neck": model.neck, "head": model.head}
    layers = [m for m in model.modules() if isinstance(m, SwapAlign2Nat)]
    parts |= {f"swap_align2nat.{i}": m for i, m in enumerate(layers)}
    for name, module in parts.items():
        key = "swap_align2nat" if name.startswith("swap") else name

        def start(mod: torch.nn.Module, args: object) -> None:
            mod._bench_start = time.perf_counter()

        def stop(mod: torch.nn.Module, args: object, out: object, key: str = key) -> None:
            totals[key][-1] += time.perf_counter() - mod._bench_start

        module.register_forward_pre_hook(start)
        module.register_forward_hook(stop)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = seglab.create_model("tensormask_resnet50_fpn", num_classes=81, min_size=args.size, max_size=1333,
                                score_threshold=0.0).eval()
    totals = add_timers(model)
    image = [torch.rand(3, args.size, args.size)]
    runs = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first is the warm-up
            for values in totals.values():
                values.append(0.0)
            start = time.perf_counter()
            detections = model(image)[0]
            runs.append(time.perf_counter() - start)
    median = statistics.median(runs[1:])
    part = {k: statistics.median(v[-args.repeats:]) for k, v in totals.items()}
    print(f"TensorMask R50-FPN, 1 image {args.size}x{args.size}, {args.threads} threads, {len(detections)} detections, "
          f"median of {args.repeats}")
    print(f"  eval forward     {median:8.3f} s")
    for name in ("backbone", "neck", "head", "swap_align2nat"):
        note = "  (inside the head)" if name == "swap_align2nat" else ""
        print(f"  {name:16s} {part[name]:8.3f} s  {100 * part[name] / median:5.1f} %{note}")
    rest = median - part["backbone"] - part["neck"] - part["head"]
    print(f"  selection, NMS, pasting {rest:6.3f} s  {100 * rest / median:5.1f} %")


if __name__ == "__main__":
    main()
