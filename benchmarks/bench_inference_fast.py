"""seglab's default inference path vs torchvision's eager fp32, side by side in one process (issue 16 part 1).

The same architecture and input: seglab's ``deeplabv3_resnet101`` (output stride 8, as torchvision's)
run as ``seglab predict`` / ``seglab.Predictor`` run it by default (``seglab.inference.fast``: batch norm
folded, channels_last, bf16 autocast where the CPU has AVX512-BF16 or AMX), against torchvision's
``deeplabv3_resnet101`` in eager fp32 (random init, 21 classes, batch 1). Prints median seconds, the
ratio seglab/torchvision (target <= 0.8 on a CPU with AMX), GFLOP/s, each fast path's own speed-up,
argmax agreement of bf16 with fp32, and a measured roofline: fp32 and bf16 matmul and 3x3-conv probes.

    python benchmarks/bench_inference_fast.py [--size 512] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation import deeplabv3_resnet101

import seglab
from seglab.engine.machine import describe_machine
from seglab.inference.fast import fast_model


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocators, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def variant_seconds(name: str, size: int, repeats: int, threads: int | None) -> list[float]:
    """Seconds per call of one variant, measured in a fresh process (one model per process: fp32
    contiguous models run after channels_last/bf16 ones in the same process were measured up to 3x
    slower here, so sharing a process would bias the comparison)."""
    command = [sys.executable, __file__, "--variant", name, "--size", str(size), "--repeats", str(repeats)]
    command += ["--threads", str(threads)] if threads else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(name: str) -> Callable[[torch.Tensor], object]:
    torch.manual_seed(0)
    if name == "torchvision eager fp32":
        return deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=False).eval()
    ours = seglab.create_model("deeplabv3_resnet101", num_classes=21, output_stride=8).eval()  # torchvision's OS
    options = VARIANTS[name]
    return ours if options is None else fast_model(ours, device="cpu", **options)


VARIANTS = {
    "torchvision eager fp32": None,
    "seglab eager fp32": None,
    "seglab + fold BN": {"precision": "fp32", "channels_last": False},
    "seglab + fold BN + channels_last": {"precision": "fp32"},
    "seglab default (auto)": {"precision": "auto"},
}


def gflop(run: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


def roofline(repeats: int) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul and a 256->256 3x3 conv on 64x128 (channels_last), fp32 and bf16."""
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 256, 64, 128).contiguous(memory_format=torch.channels_last)
    conv_flop = 2 * 256 * 256 * 9 * 64 * 128
    out = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        aa, bb = (a, b) if dtype is None else (a.to(dtype), b.to(dtype))
        out[f"matmul {name}"] = 2 * 2048**3 / median_seconds(lambda: aa @ bb, repeats) / 1e9
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            out[f"conv3x3 {name}"] = conv_flop / median_seconds(lambda: conv(x), repeats) / 1e9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one measurement (child)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    if args.variant:
        model = build(args.variant)
        with torch.no_grad():
            model(x)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        print(json.dumps(times))
        return
    machine = describe_machine()
    print(f"machine: {machine['cpu']}, {machine['torch_threads']} threads, flags {' '.join(machine['cpu_flags'])}, "
          f"torch {machine['torch']} ({machine['cpu_capability']})")
    default = build("seglab default (auto)")
    print(f"seglab default: {default.paths.describe()}")
    with torch.no_grad():
        tv_flop = gflop(lambda: build("torchvision eager fp32")(x))
        ours = build("seglab eager fp32")
        our_flop = gflop(lambda: ours(x))
        agree = (default(x).logits.argmax(1) == ours(x).logits.argmax(1)).float().mean().item()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for order in (list(VARIANTS), list(reversed(VARIANTS))):  # forward then reverse: drift hits all alike
        for name in order:
            times[name] += variant_seconds(name, args.size, args.repeats, args.threads)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    tv_s = seconds["torchvision eager fp32"]
    print(f"\n{'variant (each in its own process)':36s} {'s/img':>7s} {'GFLOP':>7s} {'GFLOP/s':>8s} {'vs torchvision':>15s}")
    for name, s in seconds.items():
        flop = tv_flop if name.startswith("torchvision") else our_flop
        print(f"{name:36s} {s:7.3f} {flop:7.1f} {flop / s:8.1f} {s / tv_s:15.2f}")
    skipped = [note for note in default.paths.skipped]
    if skipped:
        print("fast paths skipped here: " + "; ".join(skipped))
    print(f"\nargmax labels of the default path equal to eager fp32: {agree:.4f} "
          "(random init; the trained-checkpoint check is tests/inference/test_fast.py)")
    print("roofline (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in roofline(args.repeats).items()))


if __name__ == "__main__":
    main()
