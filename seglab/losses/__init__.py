"""Loss functions; models call them and return named, weighted terms."""

from seglab.losses.cross_entropy import PixelCrossEntropy

__all__ = ["PixelCrossEntropy"]
