"""COCO box and mask AP (bbox and segm) on faster-coco-eval's C++ COCOeval.

The protocol is COCO's detection evaluation (https://cocodataset.org/#detection-eval): per image
and category, detections sorted by score are matched greedily to ground truth at the IoU
thresholds .50:.05:.95; AP averages the 101-point interpolated precision over thresholds and
categories; small / medium / large split the ground truth at areas 32^2 and 96^2 pixels; AR is the
recall at 1, 10 and 100 detections. Crowd regions (``iscrowd``) are matched last, by the share of
the detection inside them, and a detection matched to one is neither a true nor a false positive.

``CocoEvaluator`` keeps a compact record per image (RLE strings, boxes, scores: plain Python
objects, never dense masks), ``gather`` merges the records of all processes, and ``compute`` builds
the COCO ground truth and results in memory and runs ``faster_coco_eval.COCOeval_faster``, whose
figures match pycocotools (tests/metrics/test_coco_eval.py checks all 12 statistics to 1e-6); on coco_tiny
with 100 detections per image it was measured 6-10x faster for bbox and 2.6-3.9x for segm
(benchmarks/bench_coco_eval.py).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from faster_coco_eval import COCO, COCOeval_faster
from faster_coco_eval.core import mask as mask_api
from torch import Tensor

from seglab.errors import ConfigError, InputError
from seglab.structures import InstancePrediction, InstanceTarget

__all__ = ["CocoEvaluator", "encode_masks"]

IOU_TYPES = ("bbox", "segm")
# The flat keys of compute() and their index in COCOeval.stats (its 12-line summary order).
# "ar" is AR at max_dets detections: "ar100" with the default.
_STAT_KEYS = {"ap": 0, "ap50": 1, "ap75": 2, "aps": 3, "apm": 4, "apl": 5, "ar": 8}


def encode_masks(masks: Tensor) -> list[str]:
    """Encode binary masks as compressed COCO RLE counts (column-major runs, see seglab.data.masks).

    faster-coco-eval's C++ encoder reads a Fortran-ordered uint8 [H, W, K] array; the permuted view
    of ``masks`` is copied into that order once by the binding (about half the time), and bool masks
    are reinterpreted as uint8 without a copy. Measured 1.7-2.2x faster than the numpy
    ``seglab.data.masks.encode_rle`` on coco_tiny masks (benchmarks/bench_coco_eval.py).

    Args:
        masks: [K, H, W] bool or uint8 (0 / 1), on any device.

    Returns:
        K ``counts`` strings; with the size [H, W] each is ``{"size": [H, W], "counts": ...}``.
    """
    if masks.shape[0] == 0:
        return []
    array = masks.detach().cpu().numpy()
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    rles = mask_api.encode(array.transpose(1, 2, 0))
    return [rle["counts"].decode("ascii") for rle in rles]


def _xywh(boxes_xyxy: Tensor) -> list[list[float]]:
    """[K, 4] pixel-edge XYXY -> COCO [x, y, width, height] lists."""
    boxes = boxes_xyxy.detach().to("cpu", torch.float64)
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


class CocoEvaluator:
    """Accumulates instance predictions and ground truth, then computes COCO bbox and segm AP.

    Crowd: seglab's crowd mask has no class, but COCOeval only matches a crowd annotation against
    detections of its own category. ``compute`` therefore adds the crowd region once per category
    detected in that image: a crowd annotation of a category without detections there changes
    nothing (it is ignored ground truth), so this forgives a detection of any class inside the crowd
    exactly as COCO would, for at most one extra annotation per detected category. For bbox AP the
    crowd box is the box of the whole crowd mask (the union of the image's crowd regions).

    Args:
        classes: class names indexed by contiguous label; index 0 is "background".
        category_ids: the dataset's category id of each label (index = label, entry 0 unused), e.g.
            COCO's ids 1..90 with gaps; None uses the label itself. Results and per-class figures
            use these ids and ``classes``' names.
        iou_types: any of "bbox" and "segm".
        mask_threshold: soft prediction masks are foreground where >= this (Mask R-CNN sec. 3: 0.5).
        max_dets: detections kept per image, top scores first (the COCO protocol's 100), and the
            last of COCOeval's maxDets (1, 10, max_dets); or three increasing counts, COCOeval's maxDets
            themselves, e.g. (10, 100, 1000) for proposal recall, which adds ``_ar<d>`` for each.
        class_agnostic: ignore categories (COCOeval ``useCats = 0``): every detection may match every
            ground truth, as proposal recall is measured (DeepMask sec. 4: AR@10/100/1000 of boxes and
            masks); ``per_class`` is then empty.
    """

    def __init__(self, *, classes: Sequence[str], category_ids: Sequence[int] | None = None,
                 iou_types: Sequence[str] = IOU_TYPES, mask_threshold: float = 0.5,
                 max_dets: int | Sequence[int] = 100, class_agnostic: bool = False) -> None:
        ids = list(range(len(classes))) if category_ids is None else list(category_ids)
        dets = _max_dets_list(max_dets)
        _check_config(classes, ids, iou_types, mask_threshold, dets[-1])
        self.classes, self.category_ids = tuple(classes), ids
        self.iou_types, self.mask_threshold, self.max_dets = tuple(iou_types), float(mask_threshold), dets[-1]
        self.max_dets_list, self.all_recalls = dets, not isinstance(max_dets, int)
        self.class_agnostic = bool(class_agnostic)
        self._records: list[dict[str, Any]] = []
        self._seen: set[int] = set()
        self._updated = 0  # images given to update() in this process (the default ids)

    def __repr__(self) -> str:
        return (f"CocoEvaluator(classes={len(self.classes) - 1}, iou_types={self.iou_types}, "
                f"images={len(self._records)})")

    def update(self, predictions: Sequence[InstancePrediction], targets: Sequence[InstanceTarget | dict],
               image_ids: Sequence[int] | None = None) -> None:
        """Record one batch: encode every mask to RLE once and keep only the compact record.

        Args:
            predictions: per image, masks [K, H, W] float in [0, 1] or bool at the image size,
                boxes_xyxy [K, 4] pixels, labels [K] in 1..C, scores [K].
            targets: per image, an ``InstanceTarget`` (or its dataset dict): masks [G, H, W],
                boxes_xyxy [G, 4] pixel edges, labels [G], optional crowd [H, W].
            image_ids: a unique int per image; across processes too, so the engine passes dataset
                indices. Default: a counter strided by the process rank (rank, rank + world, ...),
                unique across processes, and the dataset index under an unshuffled, unpadded split.

        Raises:
            InputError: mismatched lengths or sizes, a repeated image id, or a label without a
                category id.
        """
        if len(predictions) != len(targets) or (image_ids is not None and len(image_ids) != len(targets)):
            got = "" if image_ids is None else f", {len(image_ids)} image_ids"
            raise InputError(f"CocoEvaluator.update got {len(predictions)} predictions and {len(targets)} "
                             f"targets{got}; expected one of each per image")
        if image_ids is None:
            rank, world = (dist.get_rank(), dist.get_world_size()) if _distributed() else (0, 1)
            image_ids = [rank + world * (self._updated + k) for k in range(len(targets))]
        for k, (prediction, target, image_id) in enumerate(zip(predictions, targets, image_ids)):
            if isinstance(image_id, bool) or not isinstance(image_id, (int, np.integer)):
                raise InputError(f"CocoEvaluator.update: image_ids[{k}] = {image_id!r} is not an int")
            if int(image_id) in self._seen:
                raise InputError(f"CocoEvaluator.update: image id {image_id} (image_ids[{k}]) was already recorded; "
                                 "every image needs its own id (pass dataset indices)")
            self._records.append(self._record(prediction, InstanceTarget.from_dict(target), int(image_id), k))
            self._seen.add(int(image_id))
            self._updated += 1

    def _record(self, prediction: InstancePrediction, target: InstanceTarget, image_id: int, k: int) -> dict:
        """The plain-Python record of one image: category ids, COCO boxes, scores and RLE counts."""
        if not isinstance(prediction, InstancePrediction):
            raise InputError(f"CocoEvaluator.update: predictions[{k}] is a {type(prediction).__name__}; "
                             "expected an InstancePrediction")
        size = list(target.image_size)
        if len(prediction) and list(prediction.masks.shape[-2:]) != size:
            raise InputError(f"CocoEvaluator.update: predictions[{k}].masks is {list(prediction.masks.shape)} but the "
                             f"image is {size[0]}x{size[1]}; paste the masks at the image size")
        order = prediction.scores.detach().cpu().argsort(descending=True, stable=True)[: self.max_dets]
        gt_categories = self._category_ids(target.labels, f"targets[{k}].labels")
        dt_categories = self._category_ids(prediction.labels.detach().cpu()[order], f"predictions[{k}].labels")
        dt_rles = None
        if "segm" in self.iou_types:
            masks = prediction.masks.detach()
            if len(order) < len(masks) or not torch.equal(order, torch.arange(len(order))):  # models sort already
                masks = masks[order.to(masks.device)]
            dt_rles = encode_masks(masks if masks.dtype == torch.bool else masks >= self.mask_threshold)
        # Ground truth masks are encoded for bbox alone too: COCO's area is the mask's, and an RLE's
        # area costs far less than counting the pixels of the dense mask (benchmarks/bench_coco_eval.py).
        gt_rles = [{"size": size, "counts": counts} for counts in encode_masks(target.masks)]
        crowd = None
        if target.crowd is not None:
            rle = {"size": size, "counts": encode_masks(target.crowd[None])[0]}
            if mask_api.area(rle) > 0:
                crowd = {"area": int(mask_api.area(rle)), "box": mask_api.toBbox(rle).tolist(), "rle": rle["counts"]}
        return {
            "image_id": image_id, "size": size, "crowd": crowd,
            "gt_categories": gt_categories, "gt_boxes": _xywh(target.boxes_xyxy),
            "gt_areas": mask_api.area(gt_rles).tolist() if gt_rles else [],
            "gt_rles": [rle["counts"] for rle in gt_rles],
            "dt_categories": dt_categories, "dt_boxes": _xywh(prediction.boxes_xyxy.detach().cpu()[order]),
            "dt_scores": prediction.scores.detach().cpu()[order].tolist(), "dt_rles": dt_rles,
        }

    def _category_ids(self, labels: Tensor, where: str) -> list[int]:
        """Map contiguous labels to category ids, naming any label without one."""
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise InputError(f"CocoEvaluator.update: {where} has dtype {labels.dtype}; expected int64 class ids")
        values = labels.tolist()
        bad = sorted({v for v in values if not 1 <= v < len(self.category_ids)})
        if bad:
            raise InputError(f"CocoEvaluator.update: {where} holds label {', '.join(map(str, bad))} which has no "
                             f"category id: labels are 1..{len(self.category_ids) - 1} (0 is the background). "
                             "Check the model's num_classes against the dataset's classes")
        return [self.category_ids[v] for v in values]

    def gather(self) -> None:
        """Merge every process's records into each one (a no-op outside torch.distributed).

        Only plain Python objects travel (all_gather_object fails to unpickle tensors in torch 2.14).
        An image id already gathered from a lower rank is kept once: DistributedSampler pads the
        last batch by repeating a few dataset indices on other ranks.
        """
        if not _distributed():
            return
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self._records)
        self._records, self._seen = [], set()
        for records in gathered:
            for record in records:
                if record["image_id"] not in self._seen:
                    self._records.append(record)
                    self._seen.add(record["image_id"])

    def coco_inputs(self, iou_type: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The in-memory COCO ground truth dataset and results list that ``compute`` evaluates.

        Both are fresh plain dicts (COCO's loaders add fields to them), with images in id order;
        segm results carry no box so that their area is the mask's, as detectron2 does.
        """
        images, annotations, results = [], [], []
        for record in sorted(self._records, key=lambda r: r["image_id"]):
            image_id, size = record["image_id"], record["size"]
            images.append({"id": image_id, "height": size[0], "width": size[1]})
            for category, box, area, rle in zip(record["gt_categories"], record["gt_boxes"], record["gt_areas"],
                                                 record["gt_rles"]):
                annotations.append({"image_id": image_id, "category_id": category, "bbox": box, "area": area,
                                    "iscrowd": 0, **_segmentation(size, rle)})
            crowd = record["crowd"]
            for category in sorted(set(record["dt_categories"])) if crowd else ():
                annotations.append({"image_id": image_id, "category_id": category, "bbox": crowd["box"],
                                    "area": crowd["area"], "iscrowd": 1, **_segmentation(size, crowd["rle"])})
            results.extend(self._results(record, boxes=iou_type == "bbox", masks=iou_type == "segm"))
        for ann_id, ann in enumerate(annotations, start=1):  # id 0 would read as "unmatched" in COCOeval
            ann["id"] = ann_id
        categories = [{"id": i, "name": name} for i, name in zip(self.category_ids[1:], self.classes[1:])]
        return {"images": images, "annotations": annotations, "categories": categories}, results

    def _results(self, record: dict[str, Any], *, boxes: bool, masks: bool) -> list[dict[str, Any]]:
        rles = record["dt_rles"] or [None] * len(record["dt_scores"])
        return [{"image_id": record["image_id"], "category_id": category, "score": score,
                 **({"bbox": box} if boxes else {}), **(_segmentation(record["size"], rle) if masks else {})}
                for category, box, score, rle in zip(record["dt_categories"], record["dt_boxes"],
                                                     record["dt_scores"], rles)]

    def results(self) -> list[dict[str, Any]]:
        """COCO results-format detections (for a results JSON): image_id, category_id (the dataset's
        id), bbox [x, y, w, h], score and, with "segm", the RLE segmentation."""
        records = sorted(self._records, key=lambda r: r["image_id"])
        return [res for r in records for res in self._results(r, boxes=True, masks="segm" in self.iou_types)]

    def compute(self) -> dict[str, Any]:
        """Run COCOeval for each IoU type on the records held (call ``gather`` first under DDP).

        Returns:
            for type in iou_types, ``<type>_ap, _ap50, _ap75, _aps, _apm, _apl, _ar100`` (AR at
            max_dets: ``_ar<max_dets>``) as fractions 0..1, nan where COCOeval has no ground truth
            to average (e.g. no small objects, or none at all); ``stats``: {type: the 12 values of
            COCOeval.stats, -1 as nan}; ``per_class``: {type: {class name: AP@[.5:.95], nan without
            GT}}; ``num_images``, ``num_detections``; ``table``: COCO's 12-line summary per type.
        """
        out: dict[str, Any] = {"num_images": len(self._records),
                               "num_detections": sum(len(r["dt_scores"]) for r in self._records)}
        stats, per_class, tables = {}, {}, []
        for iou_type in self.iou_types:
            stats[iou_type], per_class[iou_type], table = self._evaluate(iou_type)
            for key, i in _STAT_KEYS.items():
                out[f"{iou_type}_{key}{self.max_dets if key == 'ar' else ''}"] = stats[iou_type][i]
            if self.all_recalls:  # stats 6, 7, 8 are AR at maxDets[0], [1], [2]
                for i, dets in enumerate(self.max_dets_list):
                    out[f"{iou_type}_ar{dets}"] = stats[iou_type][6 + i]
            tables.append(f"IoU metric: {iou_type}\n{table}")
        out.update(stats=stats, per_class=per_class, table="\n".join(tables))
        return out

    def _evaluate(self, iou_type: str) -> tuple[list[float], dict[str, float], str]:
        """(12 stats, per-class AP, summary text) of one IoU type; nan when there is no ground truth."""
        gt, dts = self.coco_inputs(iou_type)
        names = dict(zip(self.category_ids[1:], self.classes[1:]))
        if not any(ann["iscrowd"] == 0 for ann in gt["annotations"]):
            return [math.nan] * 12, {name: math.nan for name in names.values()}, "no ground truth: AP is undefined"
        lines: list[str] = []
        with contextlib.redirect_stdout(io.StringIO()):  # COCO's loaders and C++ core may print
            coco_gt = COCO(gt)
            evaluator = COCOeval_faster(coco_gt, _results_dataset(gt, dts), iou_type, print_function=lambda *_: None)
            evaluator.params.maxDets = list(self.max_dets_list)
            evaluator.params.useCats = 0 if self.class_agnostic else 1
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.print_function = lines.append
            evaluator.summarize()
        stats = [math.nan if s < 0 else float(s) for s in evaluator.stats[:12]]
        precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K] over all areas, max_dets
        per_class = {}
        for k, category in enumerate(evaluator.params.catIds if not self.class_agnostic else ()):
            valid = precision[:, :, k][precision[:, :, k] > -1]
            per_class[names[category]] = float(valid.mean()) if valid.size else math.nan
        return stats, per_class, "\n".join(lines[:12])


def _results_dataset(gt: dict[str, Any], results: list[dict[str, Any]]) -> COCO:
    """What ``COCO.loadRes`` makes of ``results`` (ids, iscrowd 0, a box's area or a mask's area and
    box), with one call to the C++ mask API for all masks instead of two per detection."""
    if results and "segmentation" in results[0]:
        rles = [r["segmentation"] for r in results]
        extra = zip(mask_api.area(rles).tolist(), mask_api.toBbox(rles).tolist())
    else:
        extra = ((r["bbox"][2] * r["bbox"][3], r["bbox"]) for r in results)
    annotations = [{**r, "id": ann_id, "iscrowd": 0, "area": area, "bbox": box}
                   for ann_id, (r, (area, box)) in enumerate(zip(results, extra), start=1)]
    return COCO({"images": gt["images"], "categories": gt["categories"], "annotations": annotations})


def _max_dets_list(max_dets: int | Sequence[int]) -> tuple[int, ...]:
    """COCOeval's maxDets: (1, 10, max_dets) for an int, else the three given counts (checked)."""
    if isinstance(max_dets, (int, np.integer)) and not isinstance(max_dets, bool):
        return (1, 10, int(max_dets))
    dets = tuple(max_dets) if isinstance(max_dets, Sequence) and not isinstance(max_dets, str) else ()
    if len(dets) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dets) or (
        list(dets) != sorted(set(dets))
    ):
        raise ConfigError(f"CocoEvaluator max_dets must be a positive int or three increasing ints, got {max_dets!r}")
    return dets


def _check_config(classes: Sequence[str], ids: list[int], iou_types: Sequence[str], mask_threshold: float,
                  max_dets: int) -> None:
    """Raise ConfigError naming the first bad CocoEvaluator argument."""
    if isinstance(classes, str) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"CocoEvaluator classes must name labels 0..C (0 = background), got {classes!r}")
    if len(ids) != len(classes) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ConfigError(f"CocoEvaluator category_ids must hold one int per class ({len(classes)}), got {ids!r}")
    if len(set(ids[1:])) != len(ids) - 1:
        raise ConfigError(f"CocoEvaluator category_ids {ids[1:]!r} repeat an id; each label needs its own")
    types = [] if isinstance(iou_types, str) else list(iou_types)
    if not types or not set(types) <= set(IOU_TYPES) or len(set(types)) != len(types):
        raise ConfigError(f"CocoEvaluator iou_types {iou_types!r}: expected distinct values of {IOU_TYPES}")
    if not 0 < mask_threshold <= 1:
        raise ConfigError(f"CocoEvaluator mask_threshold {mask_threshold!r} must be in (0, 1]")
    if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
        raise ConfigError(f"CocoEvaluator max_dets must be a positive int, got {max_dets!r}")


def _segmentation(size: list[int], rle: str | None) -> dict[str, Any]:
    return {} if rle is None else {"segmentation": {"size": list(size), "counts": rle}}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()
