"""seglab's Mask R-CNN R50-FPN against torchvision's, side by side in one process, same weights.

Two figures, each the median over ``--repeats`` runs timed alternately (seglab, torchvision, ...) so
machine noise hits both alike, after one warm-up run each:

- eval latency: one 512x512 image (``--size``), batch 1, 100 detections (score threshold 0, so
  both keep exactly ``max_detections``), masks pasted at image size;
- a training step: forward, backward and an SGD step, batch 2 of synthetic shapes at 512x512,
  with the same weights and the same random state in both.

Both models are built the way torchvision builds one for pretrained weights (FrozenBN, 3 trainable
stages) with random weights; seglab's loads torchvision's state dict through ``pretrained=``, so the
detections are identical (tests/models/test_mask_rcnn.py) and the ratio compares implementations.
The COCO evaluation comparison (faster-coco-eval vs pycocotools) is benchmarks/bench_coco_eval.py.

    python benchmarks/bench_mask_rcnn.py [--threads 2] [--size 512] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

import seglab
from seglab.data import build_dataset, collate_instance


def build_pair(size: int, num_classes: int, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(seglab, torchvision) Mask R-CNN R50-FPN with the same random weights, resizing to ``size``."""
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=3)
    theirs = MaskRCNN(backbone, num_classes=num_classes, min_size=size, max_size=1333, box_score_thresh=0.0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "torchvision_maskrcnn.pth"
        torch.save(theirs.state_dict(), path)
        ours = seglab.create_model("mask_rcnn_resnet50_fpn", num_classes=num_classes, pretrained=path,
                                   min_size=size, max_size=1333, score_threshold=0.0)
    return ours.to(device), theirs.to(device)


def alternate(runs: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each callable, timed in turns after one warm-up call each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def eval_latency(ours: torch.nn.Module, theirs: torch.nn.Module, size: int, repeats: int,
                 device: torch.device) -> dict[str, float]:
    image = [torch.rand(3, size, size, generator=torch.Generator().manual_seed(1)).to(device)]
    ours.eval(), theirs.eval()
    counts = {}

    def run(model: torch.nn.Module, name: str) -> Callable[[], None]:
        def call() -> None:
            with torch.no_grad():
                out = model(image)[0]
            counts[name] = len(out.labels) if hasattr(out, "labels") else len(out["labels"])
        return call

    result = alternate({"seglab": run(ours, "seglab"), "torchvision": run(theirs, "torchvision")}, repeats, device)
    print(f"  detections per image: seglab {counts['seglab']}, torchvision {counts['torchvision']}")
    return result


def train_step(ours: torch.nn.Module, theirs: torch.nn.Module, size: int, repeats: int,
               device: torch.device) -> dict[str, float]:
    data = build_dataset("synthetic", split="train", task="instance", num_images=2, size=(size, size))
    images, targets = collate_instance([data[0], data[1]])
    images = [i.to(device) for i in images]
    ours_targets = [t.to(device) for t in targets]
    theirs_targets = [{"boxes": t.boxes_xyxy, "labels": t.labels, "masks": t.masks} for t in ours_targets]
    ours.train(), theirs.train()

    def run(model: torch.nn.Module, batch_targets: list) -> Callable[[], None]:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

        def call() -> None:
            torch.manual_seed(2)  # the same anchor and RoI samples in both
            loss = sum(model(images, batch_targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return call

    return alternate({"seglab": run(ours, ours_targets), "torchvision": run(theirs, theirs_targets)}, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-train", action="store_true", help="time the eval forward only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"Mask R-CNN R50-FPN, 91 classes, {args.size}x{args.size}, {args.threads} threads, {device}, "
          f"torch {torch.__version__}, median of {args.repeats}")
    ours, theirs = build_pair(args.size, 91, device)
    figures = {"eval latency (batch 1, 100 detections)": eval_latency(ours, theirs, args.size, args.repeats, device)}
    if not args.skip_train:
        figures["training step (batch 2, fwd + bwd + SGD)"] = train_step(ours, theirs, args.size, args.repeats,
                                                                         device)
    print(f"{'':44s} {'seglab s':>9s} {'torchvision s':>14s} {'ratio':>7s}")
    for what, t in figures.items():
        print(f"{what:44s} {t['seglab']:9.3f} {t['torchvision']:14.3f} {t['seglab'] / t['torchvision']:7.2f}")


if __name__ == "__main__":
    main()
