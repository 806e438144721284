"""Semantic segmentation models; importing registers them."""

from seglab.models.semantic import fcn, unet  # noqa: F401
from seglab.models.semantic.segmenter import SegmenterBase, SemanticSegmenter

__all__ = ["SegmenterBase", "SemanticSegmenter"]
