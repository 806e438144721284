"""Exact tests of ConfusionMatrix and metrics_from_confusion on hand-worked inputs."""

from __future__ import annotations

import datetime
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seglab.errors import ConfigError, InputError
from seglab.metrics import ConfusionMatrix, metrics_from_confusion

IGNORE = 255


def _random_batch(
    generator: torch.Generator, num_classes: int, shape: tuple[int, ...], ignore_frac: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (preds, targets) int64 label maps of ``shape`` with ~ignore_frac ignored targets."""
    targets = torch.randint(0, num_classes, shape, generator=generator)
    targets[torch.rand(shape, generator=generator) < ignore_frac] = IGNORE
    preds = torch.randint(0, num_classes, shape, generator=generator)
    return preds, targets


def _brute_force(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Reference [C, C] matrix with a Python loop over pixels (small inputs only)."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p in zip(targets.reshape(-1).tolist(), preds.reshape(-1).tolist()):
        if t != IGNORE:
            matrix[t, p] += 1
    return matrix


# ---------------------------------------------------------------- metrics_from_confusion, by hand


def test_metrics_from_hand_worked_3x3() -> None:
    # rows = ground truth, cols = prediction
    matrix = torch.tensor([
        [3, 1, 0],
        [1, 4, 1],
        [0, 2, 8],
    ])
    # TP = diag = (3, 4, 8), sum 15; GT row sums = (4, 6, 10), total 20; P col sums = (4, 7, 9)
    # union = GT + P - TP = (4+4-3, 6+7-4, 10+9-8) = (5, 9, 11)
    # IoU = (3/5, 4/9, 8/11) = (0.6, 0.4444, 0.7273)
    # acc = TP / GT = (3/4, 4/6, 8/10)
    # Dice = 2 TP / (GT + P) = (6/8, 8/13, 16/19)
    # pixel acc = 15 / 20 = 0.75
    # fwIoU = (4 * 3/5 + 6 * 4/9 + 10 * 8/11) / 20 = (2.4 + 2.6667 + 7.2727) / 20 = 0.61697
    scores = metrics_from_confusion(matrix)
    iou = [3 / 5, 4 / 9, 8 / 11]
    acc = [3 / 4, 4 / 6, 8 / 10]
    dice = [6 / 8, 8 / 13, 16 / 19]
    assert scores["per_class_iou"] == pytest.approx(iou, rel=1e-12)
    assert scores["per_class_acc"] == pytest.approx(acc, rel=1e-12)
    assert scores["miou"] == pytest.approx(sum(iou) / 3, rel=1e-12)
    assert scores["mean_acc"] == pytest.approx(sum(acc) / 3, rel=1e-12)
    assert scores["dice"] == pytest.approx(sum(dice) / 3, rel=1e-12)
    assert scores["pixel_acc"] == pytest.approx(0.75, rel=1e-12)
    assert scores["fwiou"] == pytest.approx((4 * 3 / 5 + 6 * 4 / 9 + 10 * 8 / 11) / 20, rel=1e-12)
    assert scores["miou"] == pytest.approx(0.590572, abs=1e-6)
    assert scores["fwiou"] == pytest.approx(0.616970, abs=1e-6)


def test_metrics_exclude_absent_class_and_keep_predicted_only_class() -> None:
    matrix = torch.tensor([
        [2, 0, 2, 0],
        [0, 0, 0, 0],  # class 1: absent from GT and predictions -> IoU nan, excluded
        [0, 0, 4, 0],
        [0, 0, 0, 0],  # class 3: predicted nowhere either -> nan
    ])
    # Add one pixel of GT 0 predicted as 3: class 3 is then only predicted (GT 0, union 1, IoU 0).
    matrix[0, 3] = 1
    # TP = (2, 0, 4, 0); GT = (5, 0, 4, 0); P = (2, 0, 6, 1); union = (5, 0, 6, 1)
    # IoU = (2/5, nan, 4/6, 0/1); mIoU over classes 0, 2, 3 = (0.4 + 0.6667 + 0) / 3
    # acc = (2/5, nan, 4/4, nan); mean acc over GT classes 0, 2 = (0.4 + 1) / 2 = 0.7
    # Dice = (4/7, nan, 8/10, 0); mean over 0, 2, 3
    # pixel acc = 6 / 9; fwIoU = (5 * 2/5 + 4 * 4/6) / 9
    scores = metrics_from_confusion(matrix)
    iou = scores["per_class_iou"]
    assert math.isnan(iou[1]) and iou[3] == 0.0
    assert [iou[0], iou[2]] == pytest.approx([2 / 5, 4 / 6], rel=1e-12)
    acc = scores["per_class_acc"]
    assert math.isnan(acc[1]) and math.isnan(acc[3])
    assert scores["miou"] == pytest.approx((2 / 5 + 4 / 6 + 0) / 3, rel=1e-12)
    assert scores["mean_acc"] == pytest.approx(0.7, rel=1e-12)
    assert scores["dice"] == pytest.approx((4 / 7 + 8 / 10 + 0) / 3, rel=1e-12)
    assert scores["pixel_acc"] == pytest.approx(6 / 9, rel=1e-12)
    assert scores["fwiou"] == pytest.approx((5 * 2 / 5 + 4 * 4 / 6) / 9, rel=1e-12)


def test_metrics_of_empty_matrix_are_nan() -> None:
    scores = metrics_from_confusion(torch.zeros(3, 3, dtype=torch.int64))
    for key in ("pixel_acc", "mean_acc", "miou", "fwiou", "dice"):
        assert math.isnan(scores[key]), key
    assert all(math.isnan(v) for v in scores["per_class_iou"] + scores["per_class_acc"])


def test_metrics_reject_non_square_matrix() -> None:
    with pytest.raises(InputError, match=r"\[3, 4\]"):
        metrics_from_confusion(torch.zeros(3, 4))


# ---------------------------------------------------------------- ConfusionMatrix.update


def test_update_counts_hand_worked_pixels_and_skips_ignore() -> None:
    targets = torch.tensor([[0, 1, 255], [2, 2, 1]])
    preds = torch.tensor([[0, 2, 1], [2, 0, 1]])
    # pixel (t, p): (0,0) (1,2) ignored (2,2) (2,0) (1,1); the ignored pixel's pred 1 is not counted
    cm = ConfusionMatrix(3)
    cm.update(preds, targets)
    assert cm.matrix.dtype == torch.int64
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]
    # TP = (1, 1, 1); GT = (1, 2, 2); P = (2, 1, 2); union = (2, 2, 3)
    scores = cm.compute()
    assert scores["per_class_iou"] == pytest.approx([1 / 2, 1 / 2, 1 / 3], rel=1e-12)
    assert scores["pixel_acc"] == pytest.approx(3 / 5, rel=1e-12)


def test_update_accumulates_and_reset_clears() -> None:
    generator = torch.Generator().manual_seed(0)
    cm = ConfusionMatrix(5)
    batches = [_random_batch(generator, 5, (2, 6, 7)) for _ in range(3)]
    for preds, targets in batches:
        cm.update(preds, targets)
    expected = sum(_brute_force(p, t, 5) for p, t in batches)
    assert torch.equal(cm.matrix, expected)
    cm.reset()
    assert cm.matrix.sum().item() == 0


@pytest.mark.parametrize("ignore_index", [255, -1, 0, 65535])
def test_update_matches_brute_force_for_any_ignore_index(ignore_index: int) -> None:
    # -1 exercises the negative-row offset, 65535 the masked path, 0 an ignore inside [0, C).
    generator = torch.Generator().manual_seed(1)
    preds, targets = _random_batch(generator, 4, (3, 9, 11))
    targets[targets == IGNORE] = ignore_index
    cm = ConfusionMatrix(4, ignore_index=ignore_index)
    cm.update(preds, targets)
    expected = _brute_force(preds, torch.where(targets == ignore_index, IGNORE, targets), 4)
    assert torch.equal(cm.matrix, expected)


def test_update_accepts_2d_and_narrow_dtypes() -> None:
    # 18 * 19 + 18 = 360 overflows uint8, so the index must be computed in a wider type.
    generator = torch.Generator().manual_seed(2)
    preds, targets = _random_batch(generator, 19, (13, 17))
    reference = ConfusionMatrix(19)
    reference.update(preds, targets)
    assert torch.equal(reference.matrix, _brute_force(preds, targets, 19))
    for dtype in (torch.uint8, torch.int16, torch.int32):
        cm = ConfusionMatrix(19)
        cm.update(preds.to(dtype), targets.to(dtype))
        assert torch.equal(cm.matrix, reference.matrix), dtype


def test_logits_equal_labels() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 9, 10, generator=generator)
    logits[0, :, 0, 0] = 1.0  # a tie: both paths must pick the first class
    _, targets = _random_batch(generator, 6, (2, 9, 10))
    from_logits, from_labels = ConfusionMatrix(6), ConfusionMatrix(6)
    from_logits.update(logits, targets)
    from_labels.update(logits.argmax(dim=1), targets)
    assert torch.equal(from_logits.matrix, from_labels.matrix)
    assert from_logits.matrix.sum().item() == (targets != IGNORE).sum().item()


def test_empty_input_counts_nothing() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(0, 4, 4, dtype=torch.int64), torch.zeros(0, 4, 4, dtype=torch.int64))
    assert cm.matrix.sum().item() == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_match_cpu() -> None:
    generator = torch.Generator().manual_seed(6)
    preds, targets = _random_batch(generator, 19, (2, 31, 37))
    logits = torch.randn(2, 19, 31, 37, generator=generator)
    on_cpu, on_cuda = ConfusionMatrix(19), ConfusionMatrix(19, device="cuda")
    for cm, device in ((on_cpu, "cpu"), (on_cuda, "cuda")):
        cm.update(preds.to(device), targets.to(device))
        cm.update(logits.to(device), targets.to(device))
    assert on_cuda.matrix.device.type == "cuda"
    assert torch.equal(on_cuda.matrix.cpu(), on_cpu.matrix)


# ---------------------------------------------------------------- errors


def test_shape_mismatch_names_both_shapes() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match=r"preds has shape \[2, 8, 8\] but targets has shape \[2, 8, 9\]"):
        cm.update(torch.zeros(2, 8, 8, dtype=torch.int64), torch.zeros(2, 8, 9, dtype=torch.int64))
    with pytest.raises(InputError, match=r"\[2, 4, 8, 8\].*\[2, 8, 8\].*num_classes = 3"):
        cm.update(torch.zeros(2, 4, 8, 8), torch.zeros(2, 8, 8, dtype=torch.int64))
    with pytest.raises(InputError, match=r"targets has shape \[8\]"):
        cm.update(torch.zeros(8, dtype=torch.int64), torch.zeros(8, dtype=torch.int64))


def test_target_out_of_range_names_values() -> None:
    cm = ConfusionMatrix(11)
    targets = torch.tensor([[12, 255], [3, 4]])
    with pytest.raises(InputError) as info:
        cm.update(torch.zeros(2, 2, dtype=torch.int64), targets)
    assert "targets contain label 12 but num_classes is 11 (ignore_index 255)" in str(info.value)

    targets = torch.tensor([[-3, 11], [3, 200]])
    with pytest.raises(InputError, match=r"targets contain labels -3, 11, 200 but num_classes is 11"):
        cm.update(torch.zeros(2, 2, dtype=torch.int64), targets)
    assert cm.matrix.sum().item() == 0  # nothing counted from a rejected batch


def test_target_out_of_range_on_masked_path() -> None:
    cm = ConfusionMatrix(11, ignore_index=65535)
    with pytest.raises(InputError, match=r"label 12 but num_classes is 11 \(ignore_index 65535\)"):
        cm.update(torch.zeros(2, 2, dtype=torch.int64), torch.tensor([[12, 65535], [3, 4]]))


def test_pred_out_of_range_names_values() -> None:
    cm = ConfusionMatrix(11)
    preds = torch.tensor([[11, 255], [0, -2]])
    with pytest.raises(InputError, match=r"preds contain labels -2, 11, 255 but num_classes is 11"):
        cm.update(preds, torch.zeros(2, 2, dtype=torch.int64))


def test_bad_dtypes_and_arguments() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="targets has dtype torch.float32"):
        cm.update(torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2))
    with pytest.raises(InputError, match="preds has dtype torch.bool"):
        cm.update(torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ConfigError, match="num_classes"):
        ConfusionMatrix(0)


# ---------------------------------------------------------------- agreement with torchmetrics


def test_agrees_with_torchmetrics_over_batches() -> None:
    classification = pytest.importorskip("torchmetrics.classification")
    num_classes = 7
    jaccard = classification.MulticlassJaccardIndex(num_classes, average=None, ignore_index=IGNORE)
    pixel_acc = classification.MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE)
    mean_acc = classification.MulticlassAccuracy(num_classes, average="macro", ignore_index=IGNORE)
    cm = ConfusionMatrix(num_classes)
    generator = torch.Generator().manual_seed(4)
    for _ in range(4):
        preds, targets = _random_batch(generator, num_classes, (2, 33, 47))
        cm.update(preds, targets)
        for metric in (jaccard, pixel_acc, mean_acc):
            metric.update(preds, targets)
    scores = cm.compute()
    expected_iou = jaccard.compute().double()
    assert scores["per_class_iou"] == pytest.approx(expected_iou.tolist(), abs=1e-6)
    assert scores["miou"] == pytest.approx(expected_iou.mean().item(), abs=1e-6)
    assert scores["pixel_acc"] == pytest.approx(pixel_acc.compute().item(), abs=1e-6)
    assert scores["mean_acc"] == pytest.approx(mean_acc.compute().item(), abs=1e-6)


# ---------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _halves() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The same data in every process: (preds, targets) of 4 images, split into 2 halves."""
    generator = torch.Generator().manual_seed(5)
    preds, targets = _random_batch(generator, 5, (4, 16, 16))
    return (preds[:2], targets[:2]), (preds[2:], targets[2:])


def _all_reduce_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        cm = ConfusionMatrix(5)
        cm.update(*_halves()[rank])
        cm.all_reduce()
        torch.save(cm.matrix, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_across_two_processes(tmp_path: Path) -> None:
    single = ConfusionMatrix(5)
    for preds, targets in _halves():
        single.update(preds, targets)
    single_matrix = single.matrix.clone()
    single.all_reduce()  # no process group here: a no-op
    assert torch.equal(single.matrix, single_matrix)

    world_size = 2
    mp.spawn(_all_reduce_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size)
    for rank in range(world_size):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), single_matrix), rank
