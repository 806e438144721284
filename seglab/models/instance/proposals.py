"""One proposal protocol: any proposer (RPN, DeepMask, SharpMask, jittered ground truth) feeds any
second stage that classifies proposals (SDS, the MultiPath network).

A *proposer* is a module with ``proposals(images) -> list[ImageProposals]``: for each input image
[3, H, W] (floats in [0, 1], any size), boxes in that image's pixels, scores sorted high to low,
and, where the proposer segments, soft masks at the image's size. Models that implement it:
``DeepMask`` and ``SharpMask`` (ranked mask proposals, sec. 3.3 of each paper) and every
``TwoStageSegmenter`` (its RPN's boxes: Mask R-CNN, PANet, ...). ``jittered_ground_truth`` is the
stand-in the SDS and MultiPath papers' training implies (MCG / DeepMask proposals overlapping the
ground truth): tests use it, and the second stages train on it beside the proposer's own proposals.

A host model keeps its proposer in a ``ProposerSlot``: frozen (no gradient, eval mode however the
host is switched), built from a ``seglab train`` checkpoint directory or from a ``{"model", "kwargs",
"num_classes"}`` spec (random init, for tests), and recorded as that spec so the host's checkpoint
rebuilds without the proposer's directory (``rebuild_kwargs``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from seglab.boxes import masks_to_boxes
from seglab.errors import ConfigError, InputError
from seglab.structures import InstanceTarget


@dataclass
class ImageProposals:
    """The proposals of one image, in its own pixels.

    boxes: [P, 4] float XYXY; scores: [P] float, sorted high to low; masks: [P, H, W] float in [0, 1]
    (the proposer's segments) or None (box proposals: ``region_masks`` fills the boxes).
    """

    boxes: Tensor
    scores: Tensor
    masks: Tensor | None = None

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[-1] != 4 or self.scores.shape != self.boxes.shape[:1]:
            raise ValueError(f"ImageProposals: boxes [P, 4] and scores [P], got {tuple(self.boxes.shape)} and "
                             f"{tuple(self.scores.shape)}")
        if self.masks is not None and (self.masks.ndim != 3 or len(self.masks) != len(self.boxes)):
            raise ValueError(f"ImageProposals: masks [P, H, W] for {len(self.boxes)} boxes, got "
                             f"{tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return len(self.boxes)

    def top(self, count: int) -> ImageProposals:
        """The ``count`` best proposals."""
        return ImageProposals(self.boxes[:count], self.scores[:count],
                              None if self.masks is None else self.masks[:count])


@runtime_checkable
class Proposer(Protocol):
    """The protocol: ``proposals(images, top_k=)`` -> one ``ImageProposals`` per image, at most ``top_k``
    each when given (a proposer may then do less work: DeepMask refines only those), eval mode, no targets."""

    def proposals(self, images: Sequence[Tensor], *, top_k: int | None = None) -> list[ImageProposals]: ...


def checked_proposals(proposals: Any, images: Sequence[Tensor], *, model: str) -> list[ImageProposals] | None:
    """``proposals=`` as a second stage takes it: None, or one ``ImageProposals`` per image whose masks (if
    any) have that image's size; else InputError naming the model and the item."""
    if proposals is None:
        return None
    if not isinstance(proposals, (list, tuple)) or len(proposals) != len(images) or not all(
            isinstance(p, ImageProposals) for p in proposals):
        raise InputError(f"{model}: proposals must be a list of one ImageProposals per image ({len(images)} "
                         f"images), got {type(proposals).__name__}")
    for i, (p, image) in enumerate(zip(proposals, images)):
        if p.masks is not None and tuple(p.masks.shape[-2:]) != tuple(image.shape[-2:]):
            raise InputError(f"{model}: proposals[{i}].masks are {tuple(p.masks.shape[-2:])}; expected the "
                             f"image's size {tuple(image.shape[-2:])}")
    return list(proposals)


def region_masks(proposals: ImageProposals, size: tuple[int, int]) -> Tensor:
    """[P, H, W] float region of each proposal: its mask, or its box filled (box proposers)."""
    if proposals.masks is not None:
        return proposals.masks.float()
    height, width = size
    ys = torch.arange(height, device=proposals.boxes.device, dtype=torch.float32)[None, :, None] + 0.5
    xs = torch.arange(width, device=proposals.boxes.device, dtype=torch.float32)[None, None, :] + 0.5
    b = proposals.boxes.float()[:, :, None, None]
    inside = (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])
    return inside.float()


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """[A, B] IoU of binary (or >= 0.5 soft) masks a [A, H, W] and b [B, H, W] (0 where both are empty)."""
    a, b = (a >= 0.5).flatten(1).float(), (b >= 0.5).flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def jittered_ground_truth(target: InstanceTarget, *, copies: int = 4, max_shift: float = 0.15,
                          generator: torch.Generator | None = None) -> ImageProposals:
    """Proposals made from the ground truth: each object once as it is, then ``copies`` - 1 times shifted.

    A shifted copy moves the object's mask by a random whole-pixel offset of up to ``max_shift`` of its
    box side in x and y (the mask, not only the box: a region proposal that is off the object), and
    takes its box from the moved mask. Scores are 1 for the exact copies, then 1 - the relative shift.
    """
    masks = target.masks.to(torch.uint8)
    if copies < 1 or not 0 <= max_shift < 1:
        raise ConfigError(f"jittered_ground_truth: copies {copies} >= 1 and max_shift {max_shift} in [0, 1)")
    out_masks, out_scores = [masks], [torch.ones(len(masks))]
    sides = (target.boxes_xyxy[:, 2:] - target.boxes_xyxy[:, :2]).cpu()  # [K, 2] width, height
    for _ in range(copies - 1):
        fractions = (torch.rand(len(masks), 2, generator=generator) * 2 - 1) * max_shift
        shifts = (fractions * sides).round().to(torch.int64)
        out_masks.append(torch.stack([_shifted(m, int(dx), int(dy)) for m, (dx, dy) in zip(masks, shifts.tolist())])
                         if len(masks) else masks)
        out_scores.append(1 - fractions.abs().amax(1))
    all_masks = torch.cat(out_masks)
    scores = torch.cat(out_scores).to(target.boxes_xyxy.device)
    boxes = masks_to_boxes(all_masks)
    keep = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).nonzero().flatten()
    order = keep[scores[keep].argsort(descending=True, stable=True)]
    return ImageProposals(boxes[order].float(), scores[order].float(), all_masks[order].float())


def _shifted(mask: Tensor, dx: int, dy: int) -> Tensor:
    """``mask`` [H, W] moved by (dx, dy) pixels, zeros where it came from outside."""
    out = torch.zeros_like(mask)
    height, width = mask.shape
    ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
    xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def concat_proposals(parts: Sequence[ImageProposals], size: tuple[int, int]) -> ImageProposals:
    """One image's proposals from several sources, re-sorted by score (box-only parts get filled boxes)."""
    parts = [p for p in parts if len(p)] or list(parts[:1])
    boxes = torch.cat([p.boxes for p in parts])
    scores = torch.cat([p.scores for p in parts])
    masks = torch.cat([region_masks(p, size) for p in parts])
    order = scores.argsort(descending=True, stable=True)
    return ImageProposals(boxes[order], scores[order], masks[order])


class ProposerSlot(nn.Module):
    """A frozen proposer inside a second-stage model: no gradient, always in eval mode, no_grad proposals.

    Args:
        proposer: a module implementing ``Proposer`` (``build_proposer`` makes one).
        spec: how it was built (``{"model", "num_classes", "kwargs"}``), recorded in the host's checkpoint.
        top_k: proposals per image handed on (None: all the proposer gives).
    """

    def __init__(self, proposer: nn.Module, spec: Mapping[str, Any], *, top_k: int | None = None) -> None:
        super().__init__()
        if not isinstance(proposer, Proposer):
            raise ConfigError(f"{type(proposer).__name__} is not a proposer: it has no proposals(images) "
                              "(DeepMask, SharpMask and the two-stage models such as Mask R-CNN have)")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"proposals per image (top_k) is {top_k}; expected at least 1")
        self.proposer, self.spec, self.top_k = proposer.requires_grad_(False).eval(), dict(spec), top_k

    def train(self, mode: bool = True) -> ProposerSlot:
        super().train(mode)
        self.proposer.eval()
        return self

    @torch.no_grad()
    def forward(self, images: Sequence[Tensor]) -> list[ImageProposals]:
        return self.proposer.proposals(list(images), top_k=self.top_k)


def build_proposer(proposer: str | Path | Mapping[str, Any], *, top_k: int | None = None) -> ProposerSlot:
    """A ``ProposerSlot`` from a checkpoint directory of ``seglab train`` (its weights loaded) or a spec
    ``{"model": name, "num_classes": n, "kwargs": {...}}`` (random init; the host's checkpoint then
    supplies the weights); ``top_k``: proposals per image it hands on. On the meta device (parameter and
    FLOP counts) a directory gives the architecture its config.json records, without weights.

    Raises:
        ConfigError: a missing directory (with the command that makes one), an unknown model, a spec
            with other keys, or a model that does not propose.
    """
    from seglab.engine.checkpoint import load_model, read_config
    from seglab.registry import create_model

    if isinstance(proposer, (str, Path)):
        path = Path(proposer)
        if not path.exists():
            raise ConfigError(f"proposer {str(path)!r} does not exist: train a proposal model there first, e.g. "
                              f"`seglab train --recipe sharpmask_synthetic_cpu --out {path.parent}`")
        config = read_config(path)
        spec = {"model": config["model"], "num_classes": config["num_classes"],
                "kwargs": dict(config.get("model_kwargs") or {})}
        if torch.empty(0).device.type == "meta":  # counting parameters or FLOPs: no weights to load
            return build_proposer(spec, top_k=top_k)
        return ProposerSlot(load_model(path)[0], spec, top_k=top_k)
    if not isinstance(proposer, Mapping) or "model" not in proposer or set(proposer) - {"model", "num_classes",
                                                                                          "kwargs"}:
        raise ConfigError(f"proposer must be a checkpoint directory or {{model, num_classes, kwargs}}, got "
                          f"{proposer!r}")
    spec = {"model": str(proposer["model"]), "num_classes": int(proposer.get("num_classes", 2)),
            "kwargs": dict(proposer.get("kwargs") or {})}
    model = create_model(spec["model"], num_classes=spec["num_classes"], **spec["kwargs"])
    return ProposerSlot(model, spec, top_k=top_k)
