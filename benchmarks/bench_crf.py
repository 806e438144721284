"""Time seglab's DenseCRF against pydensecrf2 (the compiled densecrf) on the same inputs, and compare labels.

Inputs are 360x480 with 21 classes and 10 mean-field iterations (CRFParams' defaults, DeepLab's):
one synthetic image (coloured rectangles with noise, blurred random logits) and ``--frames`` CamVid
frames from the data root (``$SEGLAB_DATA``, else ../shared/data; seglab.data.CamVid) whose logits
are made from the ground truth: a one-hot map with ~25 % of 16x16 blocks relabelled at random and
a few single-pixel flips, box-blurred and scaled, plus noise, so the CRF has edges to snap to and
noise to remove. Per input both implementations run ``--repeats`` times, interleaved (the machine
may be shared), and the medians are printed with their ratio and the argmax label agreement.
pydensecrf2 is benchmark-only: ``pip install pydensecrf2`` (compiles densecrf from source, about a
minute). Without it the script says so and times seglab alone. densecrf is single-threaded; torch
uses ``--threads``. Not a test.

Measured here (AMD EPYC with AVX-512, 2 cores shared with other jobs, torch 2.14.1, pydensecrf2
1.1, 5 repeats): seglab 0.40-0.43 s, pydensecrf2 0.63-0.72 s per image (median over the 6 inputs;
ratio 0.60-0.64 in two runs), labels identical on every pixel; with --threads 1, 0.60 s vs 0.57 s.
The CRF raises the corrupted CamVid logits' pixel accuracy from about 76 % to about 91 %.
Differences under ~15 % are within this machine's noise. When another process holds a core,
torch's OpenMP threads wait on each other and 2-thread runs slowed to about 2x pydensecrf2 here;
OMP_WAIT_POLICY=PASSIVE brought that back to about 1.05x.

    python benchmarks/bench_crf.py [--threads 2] [--frames 5] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seglab.errors import DataError
from seglab.layers.crf import CRFParams, DenseCRF

HEIGHT, WIDTH, NUM_CLASSES = 360, 480, 21  # CamVid frame, VOC classes
BLOCK, BLOCK_NOISE, FLIPS = 16, 0.25, 0.02  # corruption of the ground truth (see the docstring)

try:
    import pydensecrf.densecrf as dcrf
except ImportError:
    dcrf = None


def synthetic_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """[1, 21, 360, 480] smooth logits and a [1, 3, 360, 480] RGB image of rectangles (integers 0..255)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, HEIGHT, WIDTH), 90.0)
    for _ in range(12):
        y = int(torch.randint(0, HEIGHT - 60, (1,), generator=gen))
        x = int(torch.randint(0, WIDTH - 80, (1,), generator=gen))
        image[..., y : y + 60, x : x + 80] = 255 * torch.rand(3, 1, 1, generator=gen)
    image = (image + 8 * torch.randn(image.shape, generator=gen)).clamp(0, 255).round()
    coarse = torch.randn(1, NUM_CLASSES, HEIGHT // 8, WIDTH // 8, generator=gen) * 3
    logits = F.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)
    return logits, image


def corrupted_logits(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """[H, W] int64 labels (255 = void) -> [1, 21, H, W] logits of a damaged, blurred one-hot map."""
    gen = torch.Generator().manual_seed(seed)
    h, w = labels.shape
    noisy = torch.where(labels == 255, torch.randint(0, NUM_CLASSES, (h, w), generator=gen), labels)
    grid = (-(-h // BLOCK), -(-w // BLOCK))
    block_hit = torch.rand(grid, generator=gen) < BLOCK_NOISE
    block_class = torch.randint(0, NUM_CLASSES, grid, generator=gen)
    hit = block_hit.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:h, :w]
    wrong = block_class.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[:h, :w]
    noisy = torch.where(hit, wrong, noisy)
    flip = torch.rand(h, w, generator=gen) < FLIPS
    noisy = torch.where(flip, torch.randint(0, NUM_CLASSES, (h, w), generator=gen), noisy)
    one_hot = F.one_hot(noisy, NUM_CLASSES).permute(2, 0, 1)[None].float()
    blurred = F.avg_pool2d(one_hot, 9, stride=1, padding=4, count_include_pad=False)
    return 3 * blurred + 0.3 * torch.randn(blurred.shape, generator=gen)


def camvid_inputs(frames: int) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """``frames`` CamVid val frames spread over the split: (name, logits [1, 21, H, W], image [1, 3, H, W], labels)."""
    from seglab.data.datasets.camvid import CamVid

    dataset = CamVid(split="val")
    picks = np.linspace(0, len(dataset) - 1, frames).round().astype(int)
    inputs = []
    for index in picks:
        image, labels = dataset[int(index)]
        name = Path(dataset.samples[int(index)][0]).name
        labels = labels.as_subclass(torch.Tensor)
        inputs.append((f"camvid val {name}", corrupted_logits(labels, int(index)), image[None].float(), labels))
    return inputs


def pydensecrf_inputs(logits: torch.Tensor, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The same problem as pydensecrf2 takes it: unary -logits [C, H W] float32, image [H, W, 3] uint8."""
    c = logits.shape[1]
    unary = np.ascontiguousarray(-logits[0].reshape(c, -1).numpy())
    return unary, np.ascontiguousarray(image[0].permute(1, 2, 0).numpy().astype(np.uint8))


def pydensecrf_refine(unary: np.ndarray, rgb: np.ndarray, p: CRFParams) -> np.ndarray:
    """pydensecrf2's defaults (DIAG_KERNEL, NORMALIZE_SYMMETRIC), Potts compat = the weights: Q [C, H W]."""
    h, w, _ = rgb.shape
    crf = dcrf.DenseCRF2D(w, h, unary.shape[0])
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=p.theta_gamma, compat=p.w_smoothness)
    crf.addPairwiseBilateral(sxy=p.theta_alpha, srgb=p.theta_beta, rgbim=rgb, compat=p.w_appearance)
    return np.array(crf.inference(p.iterations))


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def compare(
    logits: torch.Tensor, image: torch.Tensor, labels: torch.Tensor | None, repeats: int, device: torch.device
) -> dict[str, float]:
    """Interleaved timings (median seconds) of both implementations, label agreement, labels changed and,
    given the ground truth ``labels`` [H, W] (255 = void), the pixel accuracy before and after seglab's CRF."""
    p, crf = CRFParams(), DenseCRF()
    on_device = (logits.to(device), image.to(device))
    crf(*on_device)  # warm-up
    their_inputs = pydensecrf_inputs(logits, image) if dcrf is not None else None
    ours, theirs, refined, q = [], [], None, None
    for _ in range(repeats):
        seconds, refined = timed(lambda: crf(*on_device), device)
        ours.append(seconds)
        if their_inputs is not None:
            seconds, q = timed(lambda: pydensecrf_refine(*their_inputs, p), torch.device("cpu"))
            theirs.append(seconds)
    refined_labels = refined.argmax(1)[0].cpu()
    before = logits.argmax(1)[0]
    result = {"seglab": statistics.median(ours), "changed": (refined_labels != before).float().mean().item()}
    if labels is not None:
        valid = labels != 255
        result["accuracy"] = tuple((x == labels)[valid].float().mean().item() for x in (before, refined_labels))
    if q is not None:
        reference = torch.from_numpy(q.argmax(0).reshape(refined_labels.shape))
        result["pydensecrf2"] = statistics.median(theirs)
        result["agreement"] = (refined_labels == reference).float().mean().item()
        result["differing"] = int((refined_labels != reference).sum())
    return result


def cpu_description() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return f"{model}, avx512f {'yes' if ' avx512f' in info else 'no'}"


def load_average() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--frames", type=int, default=5, help="CamVid val frames (0 = synthetic input only)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each implementation per input")
    parser.add_argument("--device", default="cpu", help="seglab's device (pydensecrf2 runs on the CPU)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    p = CRFParams()
    print(f"torch {torch.__version__}, seglab on {device} with {torch.get_num_threads()} threads, pydensecrf2 "
          f"{'single-threaded' if dcrf is not None else 'NOT INSTALLED (pip install pydensecrf2); seglab only'}")
    print(f"{cpu_description()}; {HEIGHT}x{WIDTH}, {NUM_CLASSES} classes, {p.iterations} iterations, "
          f"{args.repeats} interleaved repeats, medians; load average before: {load_average()}")
    inputs = [("synthetic", *synthetic_inputs(), None)]
    if args.frames > 0:
        try:
            inputs += camvid_inputs(args.frames)
        except DataError as error:
            print(f"no CamVid frames ({error}); synthetic input only")
    print(f"{'input':30s} {'seglab s':>8s} {'pydensecrf2 s':>13s} {'ratio':>5s} {'agreement':>9s} "
          f"{'(pixels)':>8s} {'changed':>7s}  accuracy vs ground truth before -> after")
    results = []
    for name, logits, image, labels in inputs:
        r = compare(logits, image, labels, args.repeats, device)
        results.append((name, r))
        theirs = f"{'-':>13s} {'-':>5s} {'-':>9s} {'-':>8s}"
        if "pydensecrf2" in r:
            theirs = (f"{r['pydensecrf2']:13.3f} {r['seglab'] / r['pydensecrf2']:5.2f} {100 * r['agreement']:8.3f}% "
                      f"{r['differing']:8d}")
        accuracy = f"{100 * r['accuracy'][0]:.1f}% -> {100 * r['accuracy'][1]:.1f}%" if "accuracy" in r else ""
        print(f"{name:30s} {r['seglab']:8.3f} {theirs} {100 * r['changed']:6.1f}%  {accuracy}")
    ours = statistics.median(r["seglab"] for _, r in results)
    line = f"median over {len(results)} inputs: seglab {ours:.3f} s"
    if dcrf is not None:
        theirs = statistics.median(r["pydensecrf2"] for _, r in results)
        line += f", pydensecrf2 {theirs:.3f} s, ratio {ours / theirs:.2f}"
        camvid = [r["agreement"] for name, r in results if name.startswith("camvid")]
        if camvid:
            line += f"; agreement on CamVid mean {100 * statistics.mean(camvid):.3f}%, min {100 * min(camvid):.3f}%"
    print(line)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
