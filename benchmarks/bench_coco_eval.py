"""Time COCO bbox and segm evaluation: CocoEvaluator (faster-coco-eval) against pycocotools.

Ground truth: coco_tiny val (50 images). Detections: each image's ground truth, jittered (masks
and boxes shifted by up to 6 pixels, ~10% relabelled, random scores) and replicated to about
``--dets`` per image. Both evaluators see the same in-memory ground truth and results
(``CocoEvaluator.coco_inputs``); ``--copies N`` evaluates the image set N times under new image ids
for a longer run. Also times the RLE encoding of the detection masks (faster-coco-eval, seglab's
numpy encoder, pycocotools). pycocotools is a benchmark / test-only import. Prints a table; not a test.

    python benchmarks/bench_coco_eval.py [--dets 100] [--copies 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pycocotools.mask
import torch

import seglab.data
from seglab.data.masks import encode_rle
from seglab.metrics import CocoEvaluator
from seglab.metrics.coco import encode_masks
from seglab.structures import InstancePrediction, InstanceTarget

TYPES = ("bbox", "segm")


def shift(masks: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move [K, H, W] masks by (dy, dx) pixels; what leaves the image is lost."""
    h, w = masks.shape[-2:]
    out = torch.zeros_like(masks)
    out[:, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = masks[:, max(-dy, 0): h + min(-dy, 0),
                                                                          max(-dx, 0): w + min(-dx, 0)]
    return out


def detections(target: InstanceTarget, num: int, generator: torch.Generator) -> InstancePrediction:
    """About ``num`` jittered copies of the ground truth (random rectangles for an image without any)."""
    h, w = target.image_size
    if len(target) == 0:
        target = InstanceTarget(boxes_xyxy=torch.tensor([[w / 4, h / 4, w / 2, h / 2]]), labels=torch.tensor([1]),
                                masks=torch.zeros(1, h, w, dtype=torch.uint8))
        target.masks[0, h // 4: h // 2, w // 4: w // 2] = 1
    pick = torch.randint(0, len(target), (num,), generator=generator)
    masks, boxes, labels = target.masks[pick].bool(), target.boxes_xyxy[pick].clone(), target.labels[pick].clone()
    offsets = torch.randint(-6, 7, (num, 2), generator=generator)
    for group in range(4):  # four shifts per image keep the jitter cheap
        rows = torch.arange(num) % 4 == group
        dy, dx = offsets[rows][0].tolist()
        masks[rows] = shift(masks[rows], dy, dx)
        boxes[rows] += torch.tensor([dx, dy, dx, dy], dtype=torch.float32)
    relabel = torch.rand(num, generator=generator) < 0.1
    labels[relabel] = torch.randint(1, 81, (int(relabel.sum()),), generator=generator)
    return InstancePrediction(masks=masks, boxes_xyxy=boxes, labels=labels, scores=torch.rand(num, generator=generator))


def pycocotools_eval(evaluator: CocoEvaluator, iou_type: str) -> list[float]:
    """The 12 COCOeval stats of pycocotools on the evaluator's in-memory ground truth and results."""
    gt, results = evaluator.coco_inputs(iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = pycocotools.coco.COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        reference = pycocotools.cocoeval.COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    return [float(s) for s in reference.stats]


def encode_times(predictions: list[InstancePrediction]) -> dict[str, float]:
    """ms per mask of each RLE encoder on the same [K, H, W] bool masks (the first images)."""
    times: dict[str, float] = {}
    count = sum(len(p) for p in predictions)
    encoders = {
        "faster-coco-eval (encode_masks)": lambda m: encode_masks(m),
        "seglab.data.masks.encode_rle": lambda m: [encode_rle(x) for x in m.numpy()],
        "pycocotools (Fortran copy + encode)": lambda m: pycocotools.mask.encode(
            np.asfortranarray(m.numpy().view(np.uint8).transpose(1, 2, 0))),
    }
    for name, encode in encoders.items():
        start = time.perf_counter()
        for prediction in predictions:
            encode(prediction.masks)
        times[name] = (time.perf_counter() - start) * 1e3 / count
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--copies", type=int, default=1, help="evaluate the 50 images this many times")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations; median shown")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = seglab.data.build_dataset("coco", split="val", folder="coco_tiny", task="instance")
    category_ids = dataset.category_ids
    targets = [InstanceTarget.from_dict(target) for _, target in dataset]
    evaluators = {t: CocoEvaluator(classes=dataset.classes, category_ids=category_ids, iou_types=(t,)) for t in TYPES}
    update_s = dict.fromkeys(TYPES, 0.0)
    generator = torch.Generator().manual_seed(0)
    first = []
    for copy in range(args.copies):
        for index, target in enumerate(targets):
            prediction = detections(target, args.dets, generator)  # made per image: memory stays bounded
            if copy == 0 and index < 5:
                first.append(prediction)
            for iou_type, evaluator in evaluators.items():
                start = time.perf_counter()
                evaluator.update([prediction], [target], image_ids=[copy * len(targets) + index])
                update_s[iou_type] += time.perf_counter() - start

    num_dets = len(evaluators["bbox"].results())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); coco_tiny val x {args.copies}: "
          f"{len(targets) * args.copies} images, {num_dets} detections, median of {args.repeats} runs")
    print("RLE encoding, ms per mask (first 5 images):")
    for name, ms in encode_times(first).items():
        print(f"  {name:<38} {ms:8.3f}")
    print(f"{'IoU type':<8} {'update s':>9} {'CocoEvaluator s':>16} {'pycocotools s':>14} {'speed-up':>9} "
          f"{'max |stat diff|':>16}")
    for iou_type, evaluator in evaluators.items():
        ours, theirs = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = evaluator.compute()
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            reference = pycocotools_eval(evaluator, iou_type)
            theirs.append(time.perf_counter() - start)
        diff = max(abs(a - b) for a, b in zip(scores["stats"][iou_type], reference) if not np.isnan(a))
        fast, slow = statistics.median(ours), statistics.median(theirs)
        print(f"{iou_type:<8} {update_s[iou_type]:>9.2f} {fast:>16.3f} {slow:>14.3f} {slow / fast:>8.2f}x "
              f"{diff:>16.1e}")
    print("update: CocoEvaluator.update over all images (thresholding + RLE encoding; bbox encodes the ground "
          "truth only); evaluation times include building the in-memory COCO datasets")


if __name__ == "__main__":
    main()
