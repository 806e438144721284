"""Time panoptic quality on one 1024x2048 image: PanopticQuality.update against panopticapi's approach.

The maps are Cityscapes-like (19 classes, things 11..18): ~20 stuff regions (a Voronoi partition
into the 11 stuff classes), ~60 thing instances (ellipses, some crowd), void at the bottom (ego
vehicle) and in a few blobs. The prediction is the ground truth shifted by a few pixels, with some
instances dropped, relabelled or merged, and 0.5% of the pixels set to a random stuff class.

The reference follows cocodataset/panopticapi ``panopticapi/evaluation.py`` (``pq_compute_single_core``),
re-written here: RGB-coded segment ids (id = R + 256 G + 256^2 B, void = 0), pred areas and the gt x
pred intersections each from one ``np.unique(..., return_counts=True)`` with OFFSET = 256^3, then
Python loops over the segment pairs. Ground-truth areas and segment categories are given, as
panopticapi reads them from its JSON; decoding PNGs is left out of both timings. Both must give the
same per-class TP, FP, FN (and IoU sums to 1e-9). Prints the medians and their ratio; not a test.

    python benchmarks/bench_panoptic_quality.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from seglab.metrics import PanopticQuality

NUM_CLASSES, THINGS, VOID = 19, tuple(range(11, 19)), 255
OFFSET = 256 * 256 * 256  # panopticapi: gt_id * OFFSET + pred_id keys the intersections


def ground_truth(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance_ids) [H, W] int64: Voronoi stuff, 60 ellipse instances (6 crowd), void."""
    seeds = rng.uniform((0, 0), (height, width), size=(20, 2))
    rows, cols = np.ogrid[:height, :width]
    semantic, best = np.zeros((height, width), dtype=np.int64), np.full((height, width), np.inf)
    for (y, x), cls in zip(seeds, rng.integers(0, 11, size=20)):
        distance = (rows - y) ** 2 + (cols - x) ** 2
        semantic[distance < best], best = cls, np.minimum(best, distance)
    instances = np.zeros((height, width), dtype=np.int64)
    for k in range(1, 61):
        y, x = rng.uniform((height * 0.3, 0), (height, width))
        ry, rx = rng.uniform(8, 120, size=2)
        inside = ((rows - y) / ry) ** 2 + ((cols - x) / rx) ** 2 <= 1
        semantic[inside] = rng.choice(THINGS)
        instances[inside] = 0 if k <= 6 else k  # the first six become crowd regions
    for _ in range(5):
        y, x = rng.uniform((0, 0), (height, width))
        semantic[((rows - y) / 20) ** 2 + ((cols - x) / 40) ** 2 <= 1] = VOID
    semantic[int(height * 0.9):] = VOID  # ego vehicle
    instances[semantic == VOID] = 0
    return semantic, instances


def prediction(rng: np.random.Generator, semantic: np.ndarray, instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth shifted, with instances dropped, relabelled and merged, and 0.5% stuff noise."""
    semantic, instances = np.roll(semantic, (3, -4), axis=(0, 1)), np.roll(instances, (3, -4), axis=(0, 1))
    semantic = np.where(semantic == VOID, 0, semantic)  # a model predicts something everywhere
    ids = rng.permutation(np.unique(instances[instances > 0]))
    for k in ids[:5]:  # dropped: road instead
        semantic[instances == k], instances[instances == k] = 0, 0
    for k in ids[5:10]:  # relabelled
        semantic[instances == k] = rng.choice(THINGS)
    for a, b in (ids[10:12], ids[12:14]):  # merged (b takes a's class and id)
        semantic[instances == b], instances[instances == b] = semantic[instances == a][0], a
    noise = rng.random(semantic.shape) < 0.005
    semantic[noise], instances[noise] = rng.integers(0, 11, size=int(noise.sum())), 0  # stuff noise
    return semantic, instances


def to_panopticapi(semantic: np.ndarray, instances: np.ndarray, *, gt: bool) -> tuple[np.ndarray, dict[int, dict]]:
    """RGB-coded ids [H, W, 3] uint8 and ``{id: {"category_id", "iscrowd", "area"}}`` (areas for the gt)."""
    thing = np.isin(semantic, THINGS)
    key = np.where(semantic == VOID, -1, semantic * 1000 + np.where(thing, instances, 0))
    keys, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(key.shape)
    ids = np.arange(1, len(keys) + 1) * 7919 % (OFFSET - 1) + 1  # scattered ids, as colours give
    ids[keys == -1] = 0
    id_map = ids[inverse]
    rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
    areas = np.bincount(inverse.reshape(-1), minlength=len(keys))
    segments = {int(i): {"category_id": int(k // 1000), "iscrowd": int(gt and k // 1000 in THINGS and k % 1000 == 0),
                         **({"area": int(a)} if gt else {})} for i, k, a in zip(ids, keys, areas) if k != -1}
    return rgb, segments


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def reference_stats(gt_rgb: np.ndarray, pred_rgb: np.ndarray, gt_segments: dict, pred_segments: dict) -> np.ndarray:
    """panopticapi-style per-image statistics: [C, 4] float64 rows (tp, fp, fn, iou_sum)."""
    gt_ids, pred_ids = rgb_to_id(gt_rgb), rgb_to_id(pred_rgb)
    pred_area = dict(zip(*(a.tolist() for a in np.unique(pred_ids, return_counts=True))))
    joint = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
    keys, counts = np.unique(joint, return_counts=True)
    inter = {(k // OFFSET, k % OFFSET): n for k, n in zip(keys.tolist(), counts.tolist())}
    stats = np.zeros((NUM_CLASSES, 4))
    crowd_of = {s["category_id"]: i for i, s in gt_segments.items() if s["iscrowd"]}
    gt_matched, pred_matched = set(), set()
    for (g, p), n in inter.items():
        if g == 0 or p == 0 or gt_segments[g]["iscrowd"]:
            continue
        category = gt_segments[g]["category_id"]
        if category != pred_segments[p]["category_id"]:
            continue
        union = pred_area[p] + gt_segments[g]["area"] - n - inter.get((0, p), 0)
        if n / union > 0.5:
            stats[category] += (1, 0, 0, n / union)
            gt_matched.add(g)
            pred_matched.add(p)
    for g, segment in gt_segments.items():
        if g not in gt_matched and not segment["iscrowd"]:
            stats[segment["category_id"], 2] += 1
    for p, segment in pred_segments.items():
        if p in pred_matched:
            continue
        ignored = inter.get((0, p), 0) + inter.get((crowd_of.get(segment["category_id"], -1), p), 0)
        if ignored / pred_area[p] <= 0.5:
            stats[segment["category_id"], 1] += 1
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each; median shown")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gt = ground_truth(rng, *args.size)
    pred = prediction(rng, *gt)
    (gt_rgb, gt_segments), (pred_rgb, pred_segments) = to_panopticapi(*gt, gt=True), to_panopticapi(*pred, gt=False)
    target = {"semantic": torch.from_numpy(gt[0]), "instance_ids": torch.from_numpy(gt[1])}
    predicted = {"semantic": torch.from_numpy(pred[0]), "instance_ids": torch.from_numpy(pred[1])}

    ours, theirs = [], []
    for _ in range(args.repeats):
        metric = PanopticQuality([str(c) for c in range(NUM_CLASSES)], THINGS)
        start = time.perf_counter()
        metric.update([predicted], [target])
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = reference_stats(gt_rgb, pred_rgb, gt_segments, pred_segments)
        theirs.append(time.perf_counter() - start)
    counts = torch.stack([metric.tp, metric.fp, metric.fn], dim=1).numpy()
    assert (counts == reference[:, :3]).all(), (counts, reference[:, :3])
    assert np.allclose(metric.iou_sum.numpy(), reference[:, 3], rtol=0, atol=1e-9)
    scores = metric.compute()

    fast, slow = statistics.median(ours), statistics.median(theirs)
    crowds = sum(s["iscrowd"] for s in gt_segments.values())
    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.size[0]}x{args.size[1]}: {len(gt_segments)} gt segments ({crowds} crowd), "
          f"{len(pred_segments)} predicted; median of {args.repeats} runs")
    print(f"  TP {int(metric.tp.sum())}, FP {int(metric.fp.sum())}, FN {int(metric.fn.sum())}; PQ {scores['pq']:.4f} "
          f"(things {scores['pq_things']:.4f}, stuff {scores['pq_stuff']:.4f}); same per-class statistics: yes")
    print(f"  {'PanopticQuality.update':<34} {fast * 1e3:9.1f} ms")
    print(f"  {'panopticapi approach (np.unique)':<34} {slow * 1e3:9.1f} ms")
    print(f"  speed-up {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
