"""DeepMask's training patches: a dataset wrapper that cuts canonical positives and negatives.

Pinheiro et al., "Learning to Segment Object Candidates" (arXiv 1506.06204), sec. 3.1 and 3.2: a
patch is positive when an object is centred in it, fully contained, and its longer side is 128 px
of the 224-px patch; positives are jittered by a shift of +-16 px, a scale of 2^(+-1/4) and a
horizontal flip; negatives have every object at least +-32 px or 2^(+-1) off that (the rule of
``seglab.boxes.centred_windows``, which the model applies to the patches it is given, so both agree).

Sampling as the authors' ``DataSampler.lua`` (facebookresearch/deepmask): a positive takes one
object of the image and places it canonically; a negative draws a window at a random place and
scale (the image scaled by 2^s, s in -3..2, sec. "scoreSampling") until the window is a negative
(100 tries), the image padded with grey (0.5) outside. Positives and negatives come with equal
probability (the code's ``scoreSampling``: uniform > .5). The window may carry ``context`` pixels
on each side (the code crops windows of iSz + 32 and labels the central iSz).

Deviations: one patch per image per epoch (the code draws images at random, ``maxload`` batches an
epoch); a positive's object is drawn uniformly among the image's instances (the code draws a
category first); an image without instances gives a negative; a positive whose resampled mask no
longer passes the rule (rounding at the jitter's edge) is redrawn with half the jitter; crowd
regions are not used. Randomness comes from torch's global RNG, which ``SeededTransforms`` seeds
per (seed, epoch, index), so runs resume exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.ops import roi_align

from seglab.boxes import masks_to_boxes
from seglab.boxes.centred_windows import CANONICAL_SCALE, CENTRE_JITTER, NEGATIVE_SCALE, SCALE_JITTER
from seglab.boxes.centred_windows import label_centred_windows
from seglab.boxes.roi_masks import binary_mask_targets
from seglab.errors import ConfigError

NEGATIVE_SCALES = (-3.0, 2.0)  # DataSampler.lua: the image scaled by 2^s, s in -3..2 (step .25), for negatives
NEGATIVE_TRIES = 100  # DataSampler.lua negSamplingBB
PAD_VALUE = 0.5  # DataSampler.lua: imgPad fill(.5)


class PatchSampler(torch.utils.data.Dataset):
    """Wrap an instance dataset: item i is one DeepMask patch of image i (positive or negative).

    Args:
        dataset: yields ``(image [3, H, W] uint8 or float, dict(masks, boxes, labels))``, e.g.
            ``build_dataset(..., task="instance")``.
        size: the window side in pixels (224 in the paper, iSz = 160 in the authors' code).
        context: extra pixels on each side of the window (0 in the paper, 16 in the code's 192 crops).
        positive_fraction: probability of a positive (0.5, the code).
        hflip: flip half of the patches horizontally (sec. 3.2).
        min_area: objects below this many pixels are never positives (100, the code's mask sampling).

    Items: ``(tv_tensors.Image float [3, S, S] in [0, 1], dict(masks [K, S, S] uint8, boxes [K, 4],
    labels [K]))`` with S = size + 2 context; K = 1 (the canonical object) for a positive, 0 for a negative.
    """

    def __init__(self, dataset: Any, *, size: int = 224, context: int = 0, positive_fraction: float = 0.5,
                 hflip: bool = True, min_area: int = 100) -> None:
        if size < 16 or context < 0:
            raise ConfigError(f"PatchSampler: size {size} and context {context}: expected size >= 16 and context >= 0")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ConfigError(f"PatchSampler: positive_fraction {positive_fraction} must be in [0, 1]")
        self.dataset, self.size, self.context = dataset, int(size), int(context)
        self.positive_fraction, self.hflip, self.min_area = float(positive_fraction), bool(hflip), int(min_area)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # classes, num_classes, name ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def window(self) -> Tensor:
        """[1, 4] the labelled window inside a patch (pixels of the patch)."""
        c = float(self.context)
        return torch.tensor([[c, c, c + self.size, c + self.size]])

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        image, target = self.dataset[index]
        image = image.as_subclass(Tensor)
        image = image.float() / 255 if not image.is_floating_point() else image.float()
        masks = target["masks"].as_subclass(Tensor).to(torch.uint8)
        boxes = masks_to_boxes(masks)
        labels = target["labels"].as_subclass(Tensor)
        eligible = ((masks.flatten(1).sum(1) >= self.min_area) & (boxes[:, 2] > boxes[:, 0])).nonzero().flatten()
        positive = len(eligible) > 0 and float(torch.rand(())) < self.positive_fraction
        if positive:
            j = int(eligible[torch.randint(len(eligible), ())])
            patch, patch_masks = self.positive(image, masks[j : j + 1], boxes[j])
            patch_labels = labels[j : j + 1]
        else:
            patch, patch_masks = self.negative(image, boxes)[0], masks.new_zeros(0, *self.patch_shape)
            patch_labels = labels[:0]
        if self.hflip and float(torch.rand(())) < 0.5:
            patch, patch_masks = patch.flip(-1), patch_masks.flip(-1)
        return tv_tensors.Image(patch), {
            "masks": tv_tensors.Mask(patch_masks),
            "boxes": tv_tensors.BoundingBoxes(masks_to_boxes(patch_masks), format="XYXY",
                                              canvas_size=self.patch_shape),
            "labels": patch_labels,
        }

    @property
    def patch_shape(self) -> tuple[int, int]:
        side = self.size + 2 * self.context
        return side, side

    def crop_box(self, centre_x: float, centre_y: float, window_side: float) -> Tensor:
        """[1, 4] the image region of a patch whose window (side in image pixels) is centred there."""
        half = window_side * (self.size + 2 * self.context) / self.size / 2
        return torch.tensor([[centre_x - half, centre_y - half, centre_x + half, centre_y + half]])

    def cut(self, image: Tensor, box: Tensor) -> Tensor:
        """The image inside ``box`` resampled to the patch (bilinear, grey outside the image)."""
        rois = torch.cat([torch.zeros(1, 1), box], 1)
        patch = roi_align(image[None] - PAD_VALUE, rois, self.patch_shape, sampling_ratio=2, aligned=True)
        return (patch[0] + PAD_VALUE).clamp(0, 1)

    def positive(self, image: Tensor, mask: Tensor, box: Tensor) -> tuple[Tensor, Tensor]:
        """A canonical positive of one object (mask [1, H, W], box [4]): shifted and scaled within the jitter."""
        longer = float(torch.maximum(box[2] - box[0], box[3] - box[1]))
        centre_x, centre_y = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
        for attempt in range(4):
            jitter = 0.5**attempt if attempt < 3 else 0.0
            scale = SCALE_JITTER ** (jitter * float(torch.empty(()).uniform_(-1, 1)))  # object side / canonical
            window_side = longer / (CANONICAL_SCALE * scale)
            shift = CENTRE_JITTER * jitter * window_side * torch.empty(2).uniform_(-1, 1)
            crop = self.crop_box(centre_x - float(shift[0]), centre_y - float(shift[1]), window_side)
            patch_mask = binary_mask_targets(mask, torch.zeros(1, dtype=torch.int64), crop, self.patch_shape[0])
            patch_mask = patch_mask.to(torch.uint8)
            if bool(label_centred_windows(masks_to_boxes(patch_mask), self.window)[1][0]):
                break
        return self.cut(image, crop), patch_mask

    def negative(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """A patch whose window no object is centred in at the canonical scale (tries random windows),
        and that window [1, 4] in image pixels."""
        height, width = image.shape[-2:]
        for _ in range(NEGATIVE_TRIES):
            window_side = self.size / 2 ** float(torch.empty(()).uniform_(*NEGATIVE_SCALES))
            x, y = float(torch.rand(())) * width, float(torch.rand(())) * height
            window = torch.tensor([[x - window_side / 2, y - window_side / 2, x + window_side / 2,
                                    y + window_side / 2]])
            if bool(label_centred_windows(boxes, window)[2][0]):
                return self.cut(image, self.crop_box(x, y, window_side)), window
        # every try landed near an object: a window too large for any object is a negative by scale
        longer = float(torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).max())
        side = math.ceil(NEGATIVE_SCALE * longer / CANONICAL_SCALE) + 1
        half = side / 2
        window = torch.tensor([[width / 2 - half, height / 2 - half, width / 2 + half, height / 2 + half]])
        return self.cut(image, self.crop_box(width / 2, height / 2, side)), window
