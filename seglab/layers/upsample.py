"""Upsampling: learnable bilinear-initialised deconvolution (FCN) and resizing to a size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """[channels, channels, k, k] weight that makes a ConvTranspose2d upsample bilinearly per channel.

    FCN sec. 3.3: in-network upsampling layers are initialised to bilinear interpolation.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    coords = torch.arange(kernel_size, dtype=torch.float32)
    filt_1d = 1 - (coords - center).abs() / factor
    filt = filt_1d[:, None] * filt_1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


class BilinearDeconv(nn.ConvTranspose2d):
    """Learnable ``factor``x upsampling initialised to bilinear interpolation (output = factor * input)."""

    def __init__(self, channels: int, *, factor: int) -> None:
        super().__init__(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, 2 * factor))


def resize_input(images: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Resize float images [N, 3, H, W] to ``size`` as training does: bilinear with antialiasing.

    The training transforms resize uint8 images with torchvision's ``Resize(antialias=True)``; this is
    the same kernel on floats, so evaluation, prediction and the exported ONNX graph (which calls it)
    feed the model what training fed it (up to uint8 rounding). No-op when the size already matches.
    """
    if not torch.compiler.is_compiling() and tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def resize_to(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinearly resize ``x`` [N, C, h, w] to ``size`` (H, W); a no-op when sizes already match."""
    # While exporting, sizes are symbolic: interpolating to the same size is exact (identity), and
    # comparing would make the exporter guard on a data-dependent expression.
    if not torch.compiler.is_compiling() and tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
