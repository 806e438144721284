"""Semantic segmentation models; importing this package registers every model module in it."""

import importlib
import pkgutil

from seglab.models.semantic.segmenter import SegmenterBase, SemanticSegmenter

# One file per model: every module here registers its builders on import (segmenter.py holds
# the shared base classes and registers nothing).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SegmenterBase", "SemanticSegmenter"]
