"""seglab's default inference path vs torchvision's eager fp32, side by side in one run (issue 16 part 1).

The same architecture, weights initialisation and input for three architectures, batch 1, random init:

- ``deeplabv3_resnet101``: seglab's model at output stride 8 (torchvision's) vs torchvision's, 21 classes;
- ``fcn_resnet50``: torchvision's FCN-ResNet50 vs the same network composed of seglab's parts (dilated
  ResNet-50 at output stride 8 + ``FCNHead``: 3x3 conv 2048->512, BN, ReLU, dropout, 1x1), 21 classes;
- ``mask_rcnn_resnet50_fpn``: seglab's Mask R-CNN loaded with torchvision's random weights (FrozenBN, as
  torchvision builds it for weights; benchmarks/bench_mask_rcnn.py), 91 classes, score threshold 0 so
  both keep 100 detections and pay for 100 masks.

seglab runs as ``seglab predict`` / ``seglab eval`` / ``seglab.Predictor`` run it by default
(``seglab.inference.fast`` and ``fast_instance``: batch norms folded, channels_last, bf16 autocast where
the CPU has AVX512-BF16 or AMX; Mask R-CNN's box arithmetic stays fp32). Prints median seconds, the ratio
seglab/torchvision (target <= 0.8), GFLOP/s, each fast path's own speed-up, how much of eager fp32's
output the default keeps, what was skipped on this CPU, and a measured roofline: fp32 and bf16 matmul
and 3x3-conv probes.

    python benchmarks/bench_inference_fast.py [--arch mask_rcnn_resnet50_fpn] [--size 512] [--repeats 3] [--threads 2]
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
from torchvision.models.segmentation import deeplabv3_resnet101, fcn_resnet50
from torchvision.ops import box_iou

import seglab
from seglab.backbones import build_backbone
from seglab.engine.machine import describe_machine
from seglab.heads.fcn_head import FCNHead
from seglab.inference.fast import fast_model
from seglab.inference.fast_instance import fast_instance_model
from seglab.models.semantic.segmenter import SemanticSegmenter


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocators, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def variant_seconds(arch: str, name: str, size: int, repeats: int, threads: int | None) -> list[float]:
    """Seconds per call of one variant, measured in a fresh process (one model per process: fp32
    contiguous models run after channels_last/bf16 ones in the same process were measured up to 3x
    slower here, so sharing a process would bias the comparison)."""
    command = [sys.executable, __file__, "--arch", arch, "--variant", name, "--size", str(size),
               "--repeats", str(repeats)]
    command += ["--threads", str(threads)] if threads else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


ARCHITECTURES = ("deeplabv3_resnet101", "fcn_resnet50", "mask_rcnn_resnet50_fpn")
VARIANTS = ("torchvision eager fp32", "seglab eager fp32", "seglab + fold BN", "seglab + fold BN + channels_last",
            "seglab default (auto)")
FAST_OPTIONS = {"seglab + fold BN": {"precision": "fp32", "channels_last": False},
                "seglab + fold BN + channels_last": {"precision": "fp32"}, "seglab default (auto)": {"precision": "auto"}}


def build(arch: str, name: str, size: int) -> Callable[[torch.Tensor], object]:
    """One variant of one architecture, random init (torch.manual_seed(0)), eval mode, ready for ``x``."""
    torch.manual_seed(0)
    if arch == "mask_rcnn_resnet50_fpn":
        return _mask_rcnn(name, size)
    if name.startswith("torchvision"):
        make = deeplabv3_resnet101 if arch == "deeplabv3_resnet101" else fcn_resnet50
        return make(weights=None, weights_backbone=None, num_classes=21, aux_loss=False).eval()
    if arch == "deeplabv3_resnet101":
        ours = seglab.create_model("deeplabv3_resnet101", num_classes=21, output_stride=8).eval()  # torchvision's OS
    else:  # torchvision's FCN-ResNet50, composed of seglab's parts: dilated ResNet-50 (OS 8) + the 3x3/1x1 FCNHead
        ours = SemanticSegmenter(backbone=build_backbone("resnet50", output_stride=8),
                                 head=FCNHead(2048, 21, in_key="c5"), num_classes=21, input_multiple=8).eval()
    return ours if name == "seglab eager fp32" else fast_model(ours, device="cpu", **FAST_OPTIONS[name])


def _mask_rcnn(name: str, size: int) -> Callable[[torch.Tensor], object]:
    """Mask R-CNN R50-FPN as torchvision builds it for weights (FrozenBN), the same random weights in both
    (bench_mask_rcnn.build_pair), 100 detections kept (score threshold 0); ``x`` [1, 3, H, W] -> one image."""
    from bench_mask_rcnn import build_pair

    ours, theirs = build_pair(size, 91, torch.device("cpu"))
    model, paths = (theirs if name.startswith("torchvision") else ours).eval(), None
    if name in FAST_OPTIONS:
        example = torch.rand(3, size, size)
        model, paths = fast_instance_model(model, device="cpu", example=example, **FAST_OPTIONS[name])

    def run(x: torch.Tensor) -> object:
        return model(list(x))
    run.paths = paths
    return run


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
    parser.add_argument("--arch", action="append", choices=ARCHITECTURES, help="default: all three")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement (child)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    if args.variant:
        model = build(args.arch[0], args.variant, args.size)
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
    for arch in args.arch or ARCHITECTURES:
        report(arch, x, args)
    print("\nroofline (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in roofline(args.repeats).items()))


def report(arch: str, x: torch.Tensor, args: argparse.Namespace) -> None:
    """Time every variant of ``arch`` (each in its own process, forward then reverse order) and print the table."""
    size = args.size
    print(f"\n{arch}, {size}x{size}, batch 1, random init")
    with torch.no_grad():
        theirs, ours, default = (build(arch, name, size) for name in
                                 ("torchvision eager fp32", "seglab eager fp32", "seglab default (auto)"))
        tv_flop, our_flop = gflop(lambda: theirs(x)), gflop(lambda: ours(x))
        agree = agreement(arch, default(x), ours(x))
    paths = default.paths
    print(f"seglab default: {paths.describe()}")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for order in (list(VARIANTS), list(reversed(VARIANTS))):  # forward then reverse: drift hits all alike
        for name in order:
            times[name] += variant_seconds(arch, name, size, args.repeats, args.threads)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    tv_s = seconds["torchvision eager fp32"]
    print(f"{'variant (each in its own process)':36s} {'s/img':>7s} {'GFLOP':>7s} {'GFLOP/s':>8s} {'vs torchvision':>15s}")
    for name, s in seconds.items():
        flop = tv_flop if name.startswith("torchvision") else our_flop
        print(f"{name:36s} {s:7.3f} {flop:7.1f} {flop / s:8.1f} {s / tv_s:15.2f}")
    if paths.skipped:
        print("fast paths skipped here: " + "; ".join(paths.skipped))
    print(f"{agree} (random init; the trained-checkpoint checks are tests/inference/test_fast.py and "
          "test_fast_instance.py)")


def agreement(arch: str, fast: object, eager: object) -> str:
    """How much of eager fp32's output the default path keeps: argmax labels, or for Mask R-CNN the share of
    eager's 100 boxes that the default path finds again (IoU > 0.9, same class)."""
    if arch != "mask_rcnn_resnet50_fpn":
        share = (fast.logits.argmax(1) == eager.logits.argmax(1)).float().mean().item()
        return f"argmax labels of the default path equal to eager fp32: {share:.4f}"
    (f,), (e,) = fast, eager
    same = (box_iou(e.boxes_xyxy, f.boxes_xyxy) > 0.9) & (e.labels[:, None] == f.labels[None])
    return f"eager fp32's {len(e)} detections found again by the default path: {same.any(1).float().mean():.3f}"


if __name__ == "__main__":
    main()
