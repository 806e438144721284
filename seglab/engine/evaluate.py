"""Evaluation on a loader: confusion-matrix metrics (semantic), COCO AP (instance), reduced over processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from seglab.inference.sliding_window import InferenceOptions, predict_log_probs
from seglab.layers.upsample import resize_input, resize_to
from seglab.metrics.confusion import ConfusionMatrix


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, *, input_size: tuple[int, int] | None = None,
                   inference: InferenceOptions | None = None) -> Tensor:
    """Logits [N, C, H, W] at the resolution of ``images``.

    Args:
        images: [N, 3, H, W] float in [0, 1].
        input_size: when set (reduced-resolution recipes), the model sees images resized to this
            (H, W) as in training (``resize_input``: antialiased) and its logits are resized back, so
            metrics are computed on the original labels. The exported ONNX graph does the same.
        inference: sliding windows and/or TTA (``seglab eval --tile/--tta``); the logits are then the log
            of the blended probabilities (``sliding_window.predict_log_probs``). None: the path above.
    """
    if inference is not None:
        return predict_log_probs(model, images, options=inference, input_size=input_size)
    size = images.shape[-2:]
    if input_size is not None:
        images = resize_input(images, input_size)
    return resize_to(model(images).logits, size)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int,
    device: torch.device,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
    inference: InferenceOptions | None = None,
) -> dict:
    """mIoU, pixel accuracy, per-class IoU... of ``model`` over ``loader`` (see ConfusionMatrix.compute), and
    ``confusion``: the [C, C] pixel counts as nested lists (row = ground-truth class, column = predicted).

    ``inference``: tiles and/or TTA, as in ``predict_logits``. The model is put in eval mode and restored
    to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, device=device)
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        confusion.update(predict_logits(model, images, input_size=input_size, inference=inference), targets)
        if progress is not None:
            progress(images.shape[0])
    confusion.all_reduce()
    model.train(was_training)
    # the matrix itself too (rows: ground truth, columns: prediction), for `eval --save-confusion` and reports
    return {**confusion.compute(), "confusion": confusion.matrix.cpu().tolist()}


@torch.no_grad()
def evaluate_instances(
    model: nn.Module,
    loader: Iterable[tuple[list[Tensor], list[Any]]],
    *,
    classes: Sequence[str],
    category_ids: Sequence[int] | None = None,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    keep_results: bool = False,
    proposals: bool = False,
) -> dict[str, Any]:
    """COCO box and mask AP of an instance model over ``loader`` (see ``seglab.metrics.coco.CocoEvaluator``).

    ``proposals``: the model outputs class-agnostic proposals (``ModelSpec.outputs``); categories are
    ignored and recall is measured at 10, 100 and 1000 proposals (``segm_ar1000``, ...), as DeepMask
    and SharpMask report it.

    Images are numbered by their dataset index (the loader's ``Subset`` indices under DDP), so ranks
    never share an id; results are gathered on every rank before computing. The model is put in
    eval mode and restored to its previous mode afterwards.

    Returns:
        the evaluator's metrics (``segm_ap``, ``bbox_ap``, ...); with ``keep_results`` also
        ``results``: every detection in COCO results format (the dataset's category ids).
    """
    from seglab.metrics.coco import CocoEvaluator

    was_training = model.training
    model.eval()
    evaluator = (CocoEvaluator(classes=classes, category_ids=category_ids, class_agnostic=True,
                               max_dets=PROPOSAL_MAX_DETS) if proposals
                 else CocoEvaluator(classes=classes, category_ids=category_ids))
    indices = list(getattr(getattr(loader, "dataset", None), "indices", []) or [])
    seen = 0
    for images, targets in loader:
        images = [image.to(device) for image in images]
        predictions = [p.to("cpu") for p in model(images)]
        ids = [indices[seen + k] if indices else seen + k for k in range(len(images))]
        evaluator.update(predictions, [t.to("cpu") for t in targets], image_ids=ids)
        seen += len(images)
        if progress is not None:
            progress(len(images))
    evaluator.gather()
    model.train(was_training)
    metrics = evaluator.compute()
    return {**metrics, "results": evaluator.results()} if keep_results else metrics


PROPOSAL_MAX_DETS = (10, 100, 1000)  # AR@10, AR@100, AR@1000 (DeepMask sec. 4, SharpMask sec. 4)


@torch.no_grad()
def evaluate_panoptic(
    model: nn.Module,
    loader: Iterable[tuple[list[Tensor], list[Any]]],
    *,
    classes: Sequence[str],
    thing_classes: Sequence[int],
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Panoptic quality of a panoptic model over ``loader`` (see ``seglab.metrics.panoptic.PanopticQuality``).

    Statistics are summed over processes before computing. The model is put in eval mode and
    restored to its previous mode afterwards.
    """
    from seglab.metrics.panoptic import PanopticQuality

    was_training = model.training
    model.eval()
    quality = PanopticQuality(classes, thing_classes)
    for images, targets in loader:
        predictions = [p.to("cpu") for p in model([image.to(device) for image in images])]
        quality.update(predictions, [t.to("cpu") for t in targets])
        if progress is not None:
            progress(len(images))
    quality.all_reduce()
    model.train(was_training)
    return quality.compute()
