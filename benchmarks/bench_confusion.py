"""Time confusion-matrix updates per 512x512 label pair (19 classes, ~10% ignored pixels).

Compares ``ConfusionMatrix.update`` with two naive references (``where`` + bincount and a boolean
mask + bincount) and, when installed, torchmetrics' ``MulticlassJaccardIndex.update``. Runs on
CPU with 2 threads so figures compare across machines. Prints a table; not a test.

    python benchmarks/bench_confusion.py [--pairs 8] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from seglab.metrics import ConfusionMatrix

NUM_CLASSES = 19  # Cityscapes
IGNORE = 255
SIZE = 512


def where_bincount(preds: Tensor, targets: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Reference: send ignored pixels to an extra bin with ``where``, then one bincount."""
    targets, preds = targets.reshape(-1), preds.reshape(-1)
    index = torch.where(targets != IGNORE, targets * num_classes + preds, num_classes**2)
    counts = torch.bincount(index, minlength=num_classes**2 + 1)
    return counts[: num_classes**2].view(num_classes, num_classes)


def mask_bincount(preds: Tensor, targets: Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Reference: keep the valid pixels with a boolean mask, then one bincount."""
    valid = targets != IGNORE
    index = targets[valid] * num_classes + preds[valid]
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


def time_per_pair(
    updates: dict[str, tuple[Callable[[Tensor, Tensor], object], list]], repeats: int
) -> dict[str, list[float]]:
    """Return ms per pair of each update over its pairs, for each of ``repeats`` passes.

    Passes of the different updates are interleaved so that a noisy neighbour or clock drift
    hits all of them alike; one untimed warm-up pass runs first.
    """
    times: dict[str, list[float]] = {name: [] for name in updates}
    for repeat in range(repeats + 1):
        for name, (update, pairs) in updates.items():
            start = time.perf_counter()
            for preds, targets in pairs:
                update(preds, targets)
            if repeat > 0:
                times[name].append((time.perf_counter() - start) * 1e3 / len(pairs))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="distinct 512x512 pairs per pass")
    parser.add_argument("--repeats", type=int, default=15, help="timed passes; median and min shown")
    args = parser.parse_args()

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(args.pairs):
        targets = torch.randint(0, NUM_CLASSES, (1, SIZE, SIZE), generator=generator)
        targets[torch.rand(1, SIZE, SIZE, generator=generator) < 0.1] = IGNORE
        preds = torch.randint(0, NUM_CLASSES, (1, SIZE, SIZE), generator=generator)
        pairs.append((preds, targets))

    cm = ConfusionMatrix(NUM_CLASSES, ignore_index=IGNORE)
    cm.update(*pairs[0])
    assert torch.equal(cm.matrix, where_bincount(*pairs[0])), "ConfusionMatrix disagrees with reference"
    uint8_pairs = [(p.to(torch.uint8), t.to(torch.uint8)) for p, t in pairs]

    updates = {
        "ConfusionMatrix.update (int64)": (cm.update, pairs),
        "ConfusionMatrix.update (uint8)": (cm.update, uint8_pairs),
        "where + bincount (reference)": (where_bincount, pairs),
        "mask + bincount (reference)": (mask_bincount, pairs),
    }
    try:
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        print("torchmetrics not installed: skipping MulticlassJaccardIndex")
    else:
        jaccard = MulticlassJaccardIndex(NUM_CLASSES, average=None, ignore_index=IGNORE)
        updates["torchmetrics MulticlassJaccardIndex"] = (jaccard.update, pairs)
    times = time_per_pair(updates, args.repeats)

    reference = statistics.median(times["where + bincount (reference)"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.pairs} pairs x "
          f"{args.repeats} passes, {SIZE}x{SIZE}, {NUM_CLASSES} classes, ~10% ignored")
    print(f"{'method':<38} {'median ms':>10} {'min ms':>8} {'vs where':>9}")
    for name, ms in times.items():
        median = statistics.median(ms)
        print(f"{name:<38} {median:>10.3f} {min(ms):>8.3f} {reference / median:>8.2f}x")


if __name__ == "__main__":
    main()
