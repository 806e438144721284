"""DeepMask: a class-agnostic mask and an objectness score for every patch of the image.

Pinheiro, Collobert, Dollar, "Learning to Segment Object Candidates", NIPS 2015 (arXiv 1506.06204).
Changes from its ancestors: where box proposals (Selective Search, EdgeBoxes) group low-level cues,
it learns a segmentation proposal per sliding window with a ConvNet; where OverFeat-style sliding
detectors score boxes, its mask branch regresses the object's mask. Fig. 1, top-down:

- trunk: VGG-A (``vgg11``) without its last max-pool and fully connected layers: 8 convs,
  512 x 14 x 14 for a 224-px patch, stride 16 (sec. 3.1);
- mask branch: 1x1 conv 512 + ReLU, linear 512 * 14 * 14 -> 512 (low-rank, no non-linearity),
  linear 512 -> 56 * 56, upsampled bilinearly to the patch (sec. 3.1; ``seglab.heads.deepmask``);
- score branch: 2x2 max-pool, fully connected 512 + ReLU, 1024 + ReLU, 1 (sec. 3.1);
- loss: eq. 1, the per-pixel logistic loss of positives' masks (mean over the mask) plus lambda = 1/32
  times the objectness logistic loss, summed over the batch (sec. 3.1; ``seglab.losses.DeepMaskLoss``);
- training patches: canonical positives and negatives (sec. 3.1, 3.2), cut by the dataset wrapper
  ``seglab.data.patches.PatchSampler``; the model labels each patch it is given with the same rule
  (``seglab.boxes.centred_windows``), so it also trains on any image, resized to one patch;
- inference: the network slides densely over the image at stride 16 and scales 2^-2 .. 2^1 in
  steps of 2^(1/2) (sec. 3.3); each window's mask is pasted into the image; proposals are ranked
  by objectness (AR@10/100/1000, sec. 4).

``backbone="resnet50"`` is the updated DeepMask of the authors' code (facebookresearch/deepmask
``DeepMask.lua``, described in the SharpMask paper, arXiv 1603.08695 sec. 3.3): ResNet-50 cut after
res4 (1024 ch, stride 16), a window of 160 px with 16 px of context on each side (192-px crops,
10 x 10 cells after cropping one cell), a shared 1x1 conv 1024 -> 128 + ReLU + linear -> 512 feeding
both heads, the mask at 56 x 56 compared at 112 x 112, and a score MLP with dropout .5 (512 -> 1024 -> 1).

Deviations (also in the ModelSpec's ``export_note`` and the builder's docstring):
- the trunk keeps its zero padding and batch norm where it has some (the code folds ResNet's BN and
  pads symmetrically); ImageNet weights are optional (``pretrained_backbone``), random otherwise;
- the ResNet variant trains both heads on every batch with eq. 1 (the code alternates mask and
  score batches, ``hfreq`` 0.5); the paper's VGG score branch has no dropout (none is stated);
- inference details the paper leaves open: each scale's image is padded by half a window on every
  side, so objects at the border get centred windows; windows are ranked over all scales and the
  best ``top_k`` (1000) kept; masks are pasted bilinearly from 56 x 56 (``paste_window_masks``),
  boxes come from the binarised (>= 0.5) pasted masks, proposals with an empty mask are dropped;
  optional NMS on those boxes (``nms_threshold``, off by default as in the paper). Labels are all 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from seglab.backbones import build_backbone
from seglab.boxes import masks_to_boxes
from seglab.boxes.centred_windows import label_centred_windows, paste_window_masks
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError, InputError
from seglab.heads.deepmask import LowRankEmbedding, MaskPredictor, ScoreBranch
from seglab.layers.normalize import Normalize
from seglab.losses.binary import DeepMaskLoss
from seglab.models.instance.inputs import DETECTIONS_EXPORT_NOTE, as_image_list, as_targets, resize_target
from seglab.models.instance.proposals import ImageProposals
from seglab.registry import ModelSpec, register_model
from seglab.structures import InstancePrediction, InstanceTarget

STRIDE = 16  # the trunk's stride (sec. 3.1)
LEVEL = {"vgg": "c5", "resnet": "c4"}  # conv5_2 of VGG-A without pool5; res4 of ResNet (the code)
SCALE_EXPONENTS = (-2.0, 1.0)  # test scales 2^-2 .. 2^1 (sec. 3.3) ...
SCALE_STEP = 0.5  # ... in steps of 2^(1/2)


@dataclass
class ProposalSettings:
    """Full-image inference (sec. 3.3; choices declared in the module docstring)."""

    scale_exponents: tuple[float, float] = SCALE_EXPONENTS
    scale_step: float = SCALE_STEP
    top_k: int = 1000  # AR@1000 (sec. 4)
    nms_threshold: float | None = None

    @property
    def scales(self) -> list[float]:
        low, high = self.scale_exponents
        count = int(round((high - low) / self.scale_step)) + 1
        return [2.0 ** (low + i * self.scale_step) for i in range(count)]


@dataclass
class ScaleLevel:
    """The windows of one test scale: embeddings [W, dim], objectness logits [W], windows [W, 4] XYXY in
    input-image pixels, cells [W, 2] (row, column of the window's first cell), and the trunk's outputs."""

    embeddings: Tensor
    logits: Tensor
    windows: Tensor
    cells: Tensor
    taps: dict[str, Tensor]


class DeepMask(nn.Module):
    """Trunk -> (mask, objectness) of a window (fig. 1); trains on patches, proposes over the image pyramid.

    Args:
        trunk: images -> {level: stride-16 features}; level: its key.
        embedding: ``LowRankEmbedding`` (the paper's mask branch start; the code's shared head).
        mask_predictor: ``MaskPredictor``; score_branch: ``ScoreBranch``.
        score_input: "features" (the paper: the score branch reads the trunk) or "embedding" (the code).
        num_classes: K + 1 of the training data: targets carry labels 1..K, which DeepMask ignores.
        patch_size: the window side (224); context: pixels of context on each side (0; 16 in the code).
        mask_size: side at which masks enter the loss (the window: 224 in the paper; 112 in the code).
        loss: ``DeepMaskLoss`` (eq. 1); settings: inference.
    """

    def __init__(self, *, trunk: nn.Module, level: str, embedding: LowRankEmbedding, mask_predictor: MaskPredictor,
                 score_branch: ScoreBranch, score_input: str, num_classes: int, patch_size: int, context: int = 0,
                 mask_size: int, loss: DeepMaskLoss | None = None, settings: ProposalSettings | None = None) -> None:
        super().__init__()
        self.normalize, self.trunk, self.level = Normalize(), trunk, level
        self.embedding, self.mask_predictor, self.score_branch = embedding, mask_predictor, score_branch
        self.score_input, self.patch_size, self.context, self.mask_size = score_input, patch_size, context, mask_size
        self.loss, self.settings = loss or DeepMaskLoss(), settings or ProposalSettings()
        self.num_classes = num_classes  # of the targets (labels 1..K are accepted); proposals are all label 1

    @property
    def input_size(self) -> int:
        return self.patch_size + 2 * self.context

    def forward(self, images: Any, targets: Any = None) -> list[InstancePrediction] | dict[str, Tensor]:
        name = type(self).__name__
        images = as_image_list(images, model=name)
        if self.training:
            batch, targets = self.patches(images, targets, name)
            masks, scores = self.heads(self.trunk(batch))
            return self.losses(masks, scores, targets)
        return [self.propose(image) for image in images]

    def patches(self, images: list[Tensor], targets: Any, name: str) -> tuple[Tensor, list[InstanceTarget]]:
        """Check targets; normalise and resize every image (and target) to one square input window."""
        if targets is None:
            raise InputError(f"{name} is in training mode: pass targets, or call model.eval() to predict")
        checked = as_targets(targets, images, model=name, num_classes=self.num_classes)
        side = (self.input_size, self.input_size)
        batch = [F.interpolate(self.normalize(image[None]), size=side, mode="bilinear", align_corners=False)
                 if tuple(image.shape[-2:]) != side else self.normalize(image[None]) for image in images]
        return torch.cat(batch), [resize_target(t, side) for t in checked]

    def window(self, features: Tensor, stride: int) -> Tensor:
        """A trunk map of patches [N, C, S / stride, S / stride] without its context cells (the window's part)."""
        crop = self.context // stride
        return features[..., crop : features.shape[-2] - crop, crop : features.shape[-1] - crop]

    def heads(self, taps: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Trunk outputs of patches -> (mask logits [N, mask_size, mask_size], objectness logits [N])."""
        features = self.window(taps[self.level], STRIDE)
        embedding = self.embedding(features)
        masks = self.mask_predictor(embedding)[:, None]
        masks = F.interpolate(masks, size=(self.mask_size,) * 2, mode="bilinear", align_corners=False)[:, 0]
        scores = self.score_branch(features if self.score_input == "features" else embedding[..., None, None])
        return masks, scores

    def labels(self, targets: Sequence[InstanceTarget], device: torch.device) -> tuple[Tensor, Tensor]:
        """Each window's label (1 positive, 0 negative, -1 neither, sec. 3.1) and its mask target [N, m, m]."""
        c = float(self.context)
        window = torch.tensor([[c, c, c + self.patch_size, c + self.patch_size]], device=device)
        labels, masks = [], []
        for target in targets:
            matched, positive, negative = label_centred_windows(target.boxes_xyxy, window)
            labels.append(1 if bool(positive[0]) else 0 if bool(negative[0]) else -1)
            masks.append(binary_mask_targets(target.masks, matched, window, self.mask_size) if bool(positive[0])
                         else window.new_zeros(1, self.mask_size, self.mask_size))
        return torch.tensor(labels, device=device), torch.cat(masks)

    def losses(self, masks: Tensor, scores: Tensor, targets: Sequence[InstanceTarget]) -> dict[str, Tensor]:
        """Eq. 1 over the windows that are positive or negative (sec. 3.1); zero terms keep every gradient."""
        labels, mask_targets = self.labels(targets, masks.device)
        valid = labels >= 0
        terms = self.loss(masks[valid], mask_targets[valid], scores[valid], labels[valid].to(scores.dtype))
        return {"loss_mask": terms["loss_mask"] + masks.sum() * 0.0,
                "loss_score": terms["loss_score"] + scores.sum() * 0.0}

    def cost_forward(self, images: Tensor) -> None:
        """The dense computation of one inference at every scale (trunk, embedding, score), for counting FLOPs."""
        for scale in self.settings.scales:
            self.candidates(images[0], scale)

    def pyramid_level(self, image: Tensor, scale: float) -> tuple[Tensor, int]:
        """One scale: the normalised image resized by ``scale`` and padded by half a window (and to 16 px)."""
        height, width = (max(1, round(s * scale)) for s in image.shape[-2:])
        x = F.interpolate(self.normalize(image[None]), size=(height, width), mode="bilinear", align_corners=False)
        pad = self.input_size // 2
        bottom = pad + (-(height + 2 * pad) % STRIDE)
        right = pad + (-(width + 2 * pad) % STRIDE)
        return F.pad(x, (pad, right, pad, bottom)), pad

    def candidates(self, image: Tensor, scale: float) -> ScaleLevel:
        """Every window of one scale, densely (sec. 3.3): its embedding, objectness and place in the image."""
        x, pad = self.pyramid_level(image, scale)
        taps = self.trunk(x)
        crop = self.context // STRIDE  # window cells start after the context cells (the rest is an index shift)
        features = taps[self.level][..., crop:, crop:]
        embedding = self.embedding.dense(features)
        scores = self.score_branch.dense(features if self.score_input == "features" else embedding)
        h, w = min(embedding.shape[-2], scores.shape[-2]), min(embedding.shape[-1], scores.shape[-1])
        rows, cols = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
        cells = torch.stack([rows.flatten(), cols.flatten()], 1)
        x1, y1 = ((cells[:, 1] + crop) * STRIDE - pad).float(), ((cells[:, 0] + crop) * STRIDE - pad).float()
        windows = torch.stack([x1, y1, x1 + self.patch_size, y1 + self.patch_size], 1) / scale
        return ScaleLevel(embeddings=embedding[0, :, :h, :w].flatten(1).T, logits=scores[0, :h, :w].flatten(),
                          windows=windows, cells=cells, taps=taps)

    def window_masks(self, levels: Sequence[ScaleLevel], chosen: Tensor) -> Tensor:
        """Mask probabilities [D, o, o] of the chosen windows (indices into the levels' concatenation)."""
        return self.mask_predictor(torch.cat([level.embeddings for level in levels])[chosen]).sigmoid()

    @torch.no_grad()
    def proposals(self, images: Any, *, top_k: int | None = None) -> list[ImageProposals]:
        """The proposal protocol (``seglab.models.instance.proposals``): ranked mask proposals per image,
        the best ``top_k`` (at most ``settings.top_k``) windows' masks."""
        out = []
        for image in as_image_list(images, model=type(self).__name__):
            p = self.propose(image, top_k=top_k)
            out.append(ImageProposals(p.boxes_xyxy, p.scores, p.masks))
        return out

    def propose(self, image: Tensor, *, top_k: int | None = None) -> InstancePrediction:
        """Ranked class-agnostic proposals of one image [3, H, W] (sec. 3.3): the best ``top_k`` windows
        (``settings.top_k`` at most)."""
        s = self.settings
        levels = [self.candidates(image, scale) for scale in s.scales]
        logits, windows = torch.cat([lv.logits for lv in levels]), torch.cat([lv.windows for lv in levels])
        order = logits.argsort(descending=True, stable=True)[: min(s.top_k, top_k or s.top_k)]
        masks = paste_window_masks(self.window_masks(levels, order), windows[order], tuple(image.shape[-2:]))
        boxes, scores = masks_to_boxes(masks >= 0.5), logits[order].sigmoid()
        keep = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).nonzero().flatten()
        if s.nms_threshold is not None:
            keep = keep[nms(boxes[keep], scores[keep], s.nms_threshold)]
        return InstancePrediction(masks=masks[keep], boxes_xyxy=boxes[keep], scores=scores[keep],
                                  labels=torch.ones(len(keep), dtype=torch.int64, device=image.device))


@dataclass(frozen=True)
class Variant:
    """The settings that differ between the paper's DeepMask (VGG) and the authors' code (ResNet)."""

    patch_size: int
    context: int
    embedding_channels: int
    mask_size: int
    score_input: str
    score_pool: bool
    score_hidden: tuple[int, ...]
    dropout: float


VARIANTS = {
    # sec. 3.1: 224-px patches, 1x1 conv 512, mask compared at the patch size, score 2x2 pool -> 512 -> 1024 -> 1
    "vgg": Variant(224, 0, 512, 224, "features", True, (512, 1024), 0.0),
    # DeepMask.lua / train.lua: iSz 160 + 16 px context, 1x1 conv 128 shared, gSz 112, dropout .5, 1024 -> 1
    "resnet": Variant(160, 16, 128, 112, "embedding", False, (1024,), 0.5),
}


def build_trunk(backbone: str, pretrained_backbone: str | Path | None) -> tuple[nn.Module, str]:
    """The stride-16 trunk and its level: VGG without pool5 (sec. 3.1) or ResNet cut after res4 (the code)."""
    family = "vgg" if backbone.startswith("vgg") else "resnet" if backbone.startswith("resnet") else None
    if family is None:
        raise ConfigError(f"deepmask: backbone {backbone!r}; expected a VGG (vgg11: the paper's VGG-A) or a ResNet "
                          "(resnet50: the authors' code; resnet18 for CPU)")
    trunk = build_backbone(backbone, output_stride=STRIDE, pretrained=pretrained_backbone)
    if family == "resnet":
        del trunk.layer4  # cut after res4 (DeepMask.lua removes the last stage and the classifier)
        trunk.layer4 = nn.Identity()
    return trunk, LEVEL[family]


def deepmask(
    *, num_classes: int, backbone: str = "vgg11", patch_size: int | None = None, context: int | None = None,
    embedding_channels: int | None = None, embedding_dim: int = 512, mask_out: int = 56,
    mask_size: int | None = None, score_hidden: Sequence[int] | None = None, dropout: float | None = None,
    score_weight: float = 1.0 / 32, scale_exponents: Sequence[float] = SCALE_EXPONENTS,
    scale_step: float = SCALE_STEP, top_k: int = 1000, nms_threshold: float | None = None,
    pretrained_backbone: str | Path | None = None,
) -> DeepMask:
    """Build DeepMask (see the module docstring for the paper's settings and the deviations).

    Args:
        num_classes: K + 1 of the training data (its labels are accepted and ignored: proposals are class-agnostic).
        backbone: "vgg11" (VGG-A, the paper) or a ResNet cut after res4 ("resnet50": the authors' code;
            "resnet18" for CPU); the other arguments default to that variant's values when None.
        patch_size: the window side, a multiple of 16 (224 paper, 160 code); context: pixels on each
            side, a multiple of 16 (0 paper, 16 code).
        embedding_channels: the 1x1 conv (512 paper, 128 code); embedding_dim: the low-rank width (512).
        mask_out: the mask predictor's side (56, sec. 3.1); mask_size: side of the loss's masks
            (the patch, 224, in the paper; 112 in the code).
        score_hidden: the score MLP's widths ((512, 1024) paper, (1024,) code); dropout: (0 paper, .5 code).
        score_weight: lambda of eq. 1 (1/32, sec. 3.1).
        scale_exponents, scale_step: test scales 2^a .. 2^b in steps of 2^step ((-2, 1), 0.5: sec. 3.3).
        top_k: proposals kept per image (1000, for AR@1000); nms_threshold: optional box NMS (None).
        pretrained_backbone: a local file of torchvision ImageNet weights (the paper starts from ImageNet).
    """
    trunk, level = build_trunk(backbone, pretrained_backbone)
    v = VARIANTS["vgg" if backbone.startswith("vgg") else "resnet"]
    patch_size = v.patch_size if patch_size is None else int(patch_size)
    context = v.context if context is None else int(context)
    if patch_size < STRIDE or patch_size % STRIDE or context < 0 or context % STRIDE:
        raise ConfigError(f"deepmask: patch_size {patch_size} and context {context} must be multiples of {STRIDE} "
                          f"(the trunk's stride), patch_size >= {STRIDE}")
    low, high = (float(e) for e in scale_exponents)
    if high < low or scale_step <= 0 or top_k < 1:
        raise ConfigError(f"deepmask: scale_exponents {tuple(scale_exponents)}, scale_step {scale_step}, "
                          f"top_k {top_k}: "
                          "expected low <= high, a positive step and top_k >= 1")
    fsize, channels = patch_size // STRIDE, trunk.feature_specs[level].channels
    if v.score_pool and fsize % 2:
        raise ConfigError(f"deepmask: patch_size {patch_size} gives {fsize} x {fsize} cells; the score branch's 2x2 "
                          "max-pool needs an even count (a multiple of 32)")
    embedding_channels = v.embedding_channels if embedding_channels is None else embedding_channels
    hidden = v.score_hidden if score_hidden is None else tuple(int(h) for h in score_hidden)
    by_features = v.score_input == "features"
    return DeepMask(
        trunk=trunk, level=level,
        embedding=LowRankEmbedding(channels, fsize=fsize, channels=embedding_channels, dim=embedding_dim),
        mask_predictor=MaskPredictor(embedding_dim, out_size=mask_out),
        score_branch=ScoreBranch(channels if by_features else embedding_dim, fsize=fsize if by_features else 1,
                                 pool=v.score_pool, hidden=hidden, dropout=v.dropout if dropout is None else dropout),
        score_input=v.score_input, num_classes=num_classes, patch_size=patch_size, context=context,
        mask_size=(v.mask_size * patch_size // v.patch_size) if mask_size is None else int(mask_size),
        loss=DeepMaskLoss(score_weight=score_weight),
        settings=ProposalSettings(scale_exponents=(low, high), scale_step=float(scale_step), top_k=int(top_k),
                                  nms_threshold=nms_threshold),
    )


# Parameters of the paper's configuration (VGG-A trunk, 224-px patches):
#   VGG-A's 8 convs: 3*64, 64*128, 128*256, 256*256, 256*512, 3 x 512*512 (3x3, with biases)    9,220,480
#   mask branch: 1x1 512*512 + 512; low-rank 512*14*14*512 + 512; 512*56*56 + 3136
#                262,656 + 51,380,736 + 1,608,768                                           53,252,160
#   score branch: 512*7*7*512 + 512; 512*1024 + 1024; 1024 + 1   12,845,568 + 525,312 + 1,025  13,371,905
#   total                                                                                   75,844,545
DEEPMASK_SPEC = ModelSpec(
    task="instance", paper="Learning to Segment Object Candidates", arxiv="1506.06204", year=2015,
    survey_row="DeepMask", input_multiple=STRIDE, exportable=False, loss_terms=("loss_mask", "loss_score"),
    export_note=DETECTIONS_EXPORT_NOTE, outputs="proposals",
    test_kwargs={"backbone": "resnet18", "patch_size": 64, "context": 0, "embedding_channels": 8,
                 "embedding_dim": 16, "mask_out": 14, "score_hidden": (16,), "scale_exponents": (0.0, 0.0),
                 "top_k": 20},
    reference_params=75_844_545, reference_kwargs={"num_classes": 2},
)
register_model(DEEPMASK_SPEC, name="deepmask_vgg11")(deepmask)
