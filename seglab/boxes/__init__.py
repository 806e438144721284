"""Box utilities of the detection models: one place for boxes, anchors, matching and RoI masks.

Each module holds a few free functions (and one small module for anchors) on public
``torchvision.ops``: ``coder`` (box deltas), ``matcher`` (IoU thresholds, low-quality matches),
``sampler`` (balanced positive/negative sampling), ``anchors`` (sizes x ratios per level),
``ops`` (masks_to_boxes, RoIs with their image index, crowd coverage), ``roi_masks`` (mask targets, pasting masks into images).
"""

from seglab.boxes.anchors import AnchorGenerator, cell_anchors
from seglab.boxes.coder import BoxCoder, decode_boxes, encode_boxes
from seglab.boxes.matcher import BELOW_LOW, BETWEEN, match_boxes
from seglab.boxes.ops import boxes_inside_crowd, ignore_crowd_negatives, masks_to_boxes, rois_with_index
from seglab.boxes.roi_masks import mask_targets, paste_masks
from seglab.boxes.sampler import sample_balanced

__all__ = [
    "BELOW_LOW",
    "BETWEEN",
    "AnchorGenerator",
    "BoxCoder",
    "boxes_inside_crowd",
    "cell_anchors",
    "decode_boxes",
    "encode_boxes",
    "ignore_crowd_negatives",
    "mask_targets",
    "masks_to_boxes",
    "match_boxes",
    "paste_masks",
    "rois_with_index",
    "sample_balanced",
]
