"""The survey's augmentations, usable by name from a recipe's ``data.augment`` list.

Each entry moves the image and its targets together through ``torchvision.transforms.v2``'s
dispatch on tv_tensors: semantic masks (``Mask`` int64 [H, W]) and instance masks (``Mask`` uint8
[K, H, W]) are resampled with NEAREST, boxes follow every geometric step, and pixels a crop, rotation
or deformation brings in from outside are filled with 0 in the image, ``ignore_index`` (255) in
semantic and panoptic masks and 0 in instance masks. Photometric entries touch the image only.
An instance chain ends with ``instance_steps()``: boxes recomputed from the masks (never looser
than them), clamped, and instances left without pixels removed with their masks and labels.

All randomness is drawn from torch's global RNG (never numpy or ``random``), so
``seglab.engine.sampling.SeededTransforms`` reproduces every sample exactly.

Names (survey rows in brackets): ``hflip``, ``vflip`` (FC-DenseNet), ``random_resize``,
``rotate``, ``gaussian_blur`` (PSPNet), ``random_crop``, ``elastic`` (U-Net), ``scale_jitter``
(InstanceFCN, TensorMask), ``local_contrast_norm`` (SegNet), ``color_jitter``. A recipe lists them in
order, each a mapping with ``name`` and its parameters::

    augment:
      - {name: random_resize, scale_range: [0.5, 2.0]}
      - {name: rotate, degrees: 10}
      - {name: random_crop, size: [473, 473]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from seglab.boxes.ops import masks_to_boxes
from seglab.data.base import IGNORE_INDEX
from seglab.data.masks import CrowdMask
from seglab.errors import ConfigError, closest

TASKS = ("semantic", "instance", "panoptic")

__all__ = [
    "PREPROCESSING",
    "TASKS",
    "BoxesFromMasks",
    "ElasticGrid",
    "LocalContrastNorm",
    "RandomScale",
    "SanitizeInstances",
    "build_augmentation",
    "check_augmentation",
    "instance_steps",
    "list_augmentations",
    "local_contrast_norm",
]


# ----------------------------------------------------------------------------- transforms


class RandomScale(v2.Transform):
    """Resize by a random factor drawn uniformly from ``scale_range`` (aspect ratio kept).

    Args:
        scale_range: (low, high) factor relative to the input size.
    """

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 0 < low <= high:
            raise ConfigError(f"scale_range must satisfy 0 < low <= high, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs, type(self).__name__)
        low, high = self.scale_range
        factor = low + (high - low) * float(torch.rand(()))
        return dict(size=[max(1, round(height * factor)), max(1, round(width * factor))])

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"], antialias=True)


class ElasticGrid(v2.ElasticTransform):
    """U-Net's elastic deformation: random displacements on a coarse grid, bicubic-interpolated.

    "We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid.
    The displacements are sampled from a Gaussian distribution with 10 pixels standard deviation.
    Per-pixel displacements are then computed using bicubic interpolation." (Ronneberger et al.,
    U-Net, arXiv 1505.04597, sec. 3.1). The grid nodes sit on the image corners, edge midpoints and
    centre (``align_corners=True``); each output pixel samples the input at its position plus the
    displacement (image bilinear, masks NEAREST, outside pixels filled).

    ``v2.ElasticTransform`` cannot be made to match: it draws an independent displacement per pixel
    and smooths it with a Gaussian (Simard et al. 2003), so its field has no coarse grid and its
    amplitude is ``alpha`` scaled by the blur rather than a per-node standard deviation in pixels.
    This class keeps v2's elastic kernels (dispatch, fill, interpolation) and replaces only the field.

    Args:
        grid: nodes per side of the coarse grid (3 in the paper).
        sigma: standard deviation of each node's displacement, in pixels (10 in the paper).
        interpolation: image interpolation (masks always use NEAREST).
        fill: value for pixels sampled from outside, per tv_tensor type as in v2.
    """

    def __init__(
        self,
        *,
        grid: int = 3,
        sigma: float = 10.0,
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        fill: Any = 0,
    ) -> None:
        super().__init__(alpha=0.0, sigma=0.0, interpolation=interpolation, fill=fill)
        if int(grid) < 2 or float(sigma) < 0:
            raise ConfigError(f"ElasticGrid needs grid >= 2 and sigma >= 0, got grid={grid}, sigma={sigma}")
        self.grid = int(grid)
        self.pixel_sigma = float(sigma)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs, type(self).__name__)
        return dict(displacement=self.displacement_field(height, width))

    def displacement_field(self, height: int, width: int) -> Tensor:
        """Draw one field: [1, H, W, 2] (dx, dy) in v2's normalised units (2 / size per pixel)."""
        nodes = torch.randn(1, 2, self.grid, self.grid) * self.pixel_sigma  # pixels, (dx, dy)
        dense = F.interpolate(nodes, size=(height, width), mode="bicubic", align_corners=True)
        to_normalised = torch.tensor([2.0 / width, 2.0 / height]).view(1, 2, 1, 1)
        return (dense * to_normalised).permute(0, 2, 3, 1).contiguous()


def local_contrast_norm(image: Tensor, *, kernel_size: int = 9, sigma: float = 2.0, eps: float = 1e-4) -> Tensor:
    """Local contrast normalisation (Jarrett et al. 2009, sec. 2), as SegNet applies to its RGB input.

    Subtractive step: remove the Gaussian-weighted mean over a ``kernel_size`` window and all
    channels. Divisive step: divide by ``max(local std, mean local std of the image)``, the local
    std being the Gaussian-weighted RMS of the centred values over the window and channels.

    Args:
        image: [..., C, H, W] float (any range; the result does not depend on it).
        kernel_size: odd window side in pixels (9 in Jarrett et al.).
        sigma: Gaussian standard deviation in pixels.
        eps: floor of the divisor relative to the image's largest magnitude, so flat images give 0
            rather than NaN or amplified rounding noise.

    Returns:
        [..., C, H, W] float32, locally zero-mean and about unit local std (unbounded).
    """
    shape = image.shape
    x = image.reshape(-1, *shape[-3:]).float()
    coords = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    rows, cols = g.view(1, 1, kernel_size, 1), g.view(1, 1, 1, kernel_size)  # separable window
    pad = [kernel_size // 2] * 4

    def weighted_mean(values: Tensor) -> Tensor:  # [N, C, H, W] -> [N, 1, H, W]
        padded = F.pad(values.mean(dim=1, keepdim=True), pad, mode="replicate")
        return F.conv2d(F.conv2d(padded, rows), cols)

    centred = x - weighted_mean(x)
    local_std = weighted_mean(centred**2).sqrt()
    floor = eps * x.abs().amax(dim=(-3, -2, -1), keepdim=True).clamp_min(1e-12)  # relative: float rounding
    divisor = torch.maximum(local_std, local_std.mean(dim=(-2, -1), keepdim=True)).clamp_min(floor)
    return (centred / divisor).reshape(shape)


class LocalContrastNorm(v2.Transform):
    """SegNet's local contrast normalisation of the RGB input (image only; masks and boxes pass).

    LCN yields unbounded floats; to stay in seglab's uint8 image pipeline (``collate`` divides by
    255) the result is clipped to ``[-clip, clip]`` and mapped linearly onto 1..255 (``128 + 127 *
    value / clip``), so a pixel at its local mean becomes 128 whatever the image. The fixed mapping
    (not a per-image min-max stretch) keeps equal LCN values equal across images. Float inputs map
    onto [0, 1] (``0.5 + 0.5 * value / clip``). Being deterministic, place it before steps that pad
    (crop, rotate) so padding stays 0; ``eval_transforms`` applies it at evaluation too.

    Args:
        kernel_size: odd window side in pixels.
        sigma: Gaussian standard deviation of the window, in pixels.
        clip: LCN values beyond +-clip saturate.
    """

    def __init__(self, *, kernel_size: int = 9, sigma: float = 2.0, clip: float = 3.0) -> None:
        super().__init__()
        self.kernel_size, self.sigma, self.clip = int(kernel_size), float(sigma), float(clip)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image):
            return inpt  # masks, boxes: photometric step
        normalised = local_contrast_norm(inpt, kernel_size=self.kernel_size, sigma=self.sigma)
        signed = normalised.clamp(-self.clip, self.clip) / self.clip  # [-1, 1]
        if inpt.dtype == torch.uint8:  # 0 -> 128 exactly, so rounding noise cannot flip it to 127
            out = (128 + 127 * signed).round().to(torch.uint8)
        else:
            out = (0.5 + 0.5 * signed).to(inpt.dtype)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


class BoxesFromMasks(v2.Transform):
    """Replace instance boxes by the tight boxes of their masks (``seglab.boxes.masks_to_boxes``).

    v2 moves a box by its corners: a crop clips it to the crop window, even where the part of the
    object left inside is smaller (a triangle cut off below its apex keeps the apex's y1), and a
    rotation or deformation maps its corners, which gives a loose box. The masks are exact, so every
    instance chain recomputes the boxes from them after its geometric steps (pixel edges: x2 = last
    column + 1). A mask left empty gets the zero box, which ``SanitizeInstances`` then removes with
    its mask and label. Inputs without exactly one [K, H, W] ``Mask`` and one ``BoundingBoxes`` of
    K boxes pass unchanged (the [H, W] ``CrowdMask`` is not an instance mask).
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask) and x.ndim == 3]
        boxes = [x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)]
        if len(masks) != 1 or len(boxes) != 1 or masks[0].shape[0] != boxes[0].shape[0]:
            return dict(boxes=None)
        xyxy = masks_to_boxes(masks[0].as_subclass(Tensor))
        tight = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=tuple(masks[0].shape[-2:]))
        return dict(boxes=TF.convert_bounding_box_format(tight, new_format=boxes[0].format))

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["boxes"] is None or not isinstance(inpt, tv_tensors.BoundingBoxes):
            return inpt
        return tv_tensors.wrap(params["boxes"].as_subclass(Tensor).to(inpt.dtype), like=inpt)


# ----------------------------------------------------------------------------- parameters


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Flip(_Params):
    p: float = Field(0.5, ge=0, le=1)  # probability of flipping


def _positive_range(value: tuple[float, float], field: str) -> tuple[float, float]:
    if not 0 < value[0] <= value[1]:
        raise ValueError(f"{field} must satisfy 0 < low <= high, got {list(value)}")
    return value


def _odd_kernel(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {value}")
    return value


class _RandomResize(_Params):
    scale_range: tuple[float, float] = (0.5, 2.0)  # PSPNet, DeepLab: factors 0.5-2

    @field_validator("scale_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _positive_range(value, "scale_range")


class _RandomCrop(_Params):
    size: int | tuple[int, int]  # (H, W), or one int for a square; e.g. 473 (PSPNet)

    @field_validator("size")
    @classmethod
    def _positive(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        if min((value, value) if isinstance(value, int) else value) < 1:
            raise ValueError(f"size must be positive, got {value}")
        return value


class _Rotate(_Params):
    degrees: float = Field(10.0, gt=0, le=180)  # angle drawn from [-degrees, degrees] (PSPNet: 10)
    p: float = Field(1.0, ge=0, le=1)


class _GaussianBlur(_Params):
    kernel_size: int = Field(5, ge=1)  # odd
    sigma: tuple[float, float] = (0.1, 2.0)  # drawn uniformly from this range, in pixels
    p: float = Field(0.5, ge=0, le=1)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        return _odd_kernel(value)

    @field_validator("sigma")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _positive_range(value, "sigma")


class _Elastic(_Params):
    grid: int = Field(3, ge=2)  # U-Net: 3 x 3 coarse grid
    sigma: float = Field(10.0, ge=0)  # U-Net: 10 px standard deviation per node
    p: float = Field(1.0, ge=0, le=1)


class _ScaleJitter(_Params):
    short_side: tuple[int, int] = (640, 800)  # shorter side drawn from this range (TensorMask)
    max_size: int | None = Field(1333, ge=1)  # cap of the longer side (Detectron's default)

    @field_validator("short_side")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        return tuple(int(v) for v in _positive_range(value, "short_side"))  # type: ignore[return-value]


class _LocalContrastNorm(_Params):
    kernel_size: int = Field(9, ge=1)  # Jarrett et al. 2009: 9 x 9 Gaussian window
    sigma: float = Field(2.0, gt=0)
    clip: float = Field(3.0, gt=0)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        return _odd_kernel(value)


class _ColorJitter(_Params):
    brightness: float = Field(0.4, ge=0)  # factor drawn from [1 - b, 1 + b]
    contrast: float = Field(0.4, ge=0)
    saturation: float = Field(0.4, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)
    p: float = Field(1.0, ge=0, le=1)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Fills:
    """Fill of pixels brought in from outside: image 0, masks ignore (semantic) or 0 (instance)."""

    mask: int

    def as_dict(self) -> dict[Any, int]:
        return {tv_tensors.Image: 0, tv_tensors.Mask: self.mask, "others": 0}


@dataclass(frozen=True)
class _Augmentation:
    params: type[_Params]
    build: Callable[[Any, _Fills], Any]
    summary: str


_BILINEAR = InterpolationMode.BILINEAR
_AUGMENTATIONS: dict[str, _Augmentation] = {
    "hflip": _Augmentation(_Flip, lambda a, f: v2.RandomHorizontalFlip(p=a.p), "random horizontal mirror"),
    "vflip": _Augmentation(_Flip, lambda a, f: v2.RandomVerticalFlip(p=a.p), "random vertical flip"),
    "random_resize": _Augmentation(
        _RandomResize, lambda a, f: RandomScale(a.scale_range), "resize by a factor in scale_range"
    ),
    "random_crop": _Augmentation(
        _RandomCrop,
        lambda a, f: v2.RandomCrop(a.size, pad_if_needed=True, fill=f.as_dict()),
        "random crop of size, padding smaller inputs with the fill",
    ),
    "rotate": _Augmentation(
        _Rotate,
        lambda a, f: v2.RandomRotation(a.degrees, interpolation=_BILINEAR, fill=f.as_dict()),
        "rotate by an angle in [-degrees, degrees], corners filled",
    ),
    "gaussian_blur": _Augmentation(
        _GaussianBlur, lambda a, f: v2.GaussianBlur(a.kernel_size, a.sigma), "Gaussian blur (image only)"
    ),
    "elastic": _Augmentation(
        _Elastic,
        lambda a, f: ElasticGrid(grid=a.grid, sigma=a.sigma, fill=f.as_dict()),
        "U-Net elastic deformation on a coarse grid",
    ),
    "scale_jitter": _Augmentation(
        _ScaleJitter,
        lambda a, f: v2.RandomShortestSize(
            list(range(a.short_side[0], a.short_side[1] + 1)), max_size=a.max_size, antialias=True
        ),
        "resize the shorter side to a size drawn from short_side",
    ),
    "local_contrast_norm": _Augmentation(
        _LocalContrastNorm,
        lambda a, f: LocalContrastNorm(kernel_size=a.kernel_size, sigma=a.sigma, clip=a.clip),
        "SegNet's local contrast normalisation (image only)",
    ),
    "color_jitter": _Augmentation(
        _ColorJitter,
        lambda a, f: v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue),
        "brightness, contrast, saturation, hue jitter (image only)",
    ),
}
_FLIPS = ("hflip", "vflip")  # their p is the flip's own; other p wrap the step in RandomApply
# Deterministic input normalisation, not augmentation: evaluation must apply it too (SegNet's LCN).
PREPROCESSING = ("local_contrast_norm",)


def list_augmentations() -> list[str]:
    """Names accepted in ``data.augment``, sorted."""
    return sorted(_AUGMENTATIONS)


def check_augmentation(specs: Any, *, field: str = "data.augment") -> list[tuple[str, Any]]:
    """Validate a ``data.augment`` list without building it.

    Args:
        specs: a list of mappings, each with ``name`` and that augmentation's parameters.
        field: dotted name used in error messages.

    Returns:
        ``(name, params)`` per entry, parameters validated and with defaults filled in.

    Raises:
        ConfigError: naming ``<field>[i]`` and the bad key, e.g. ``data.augment[1].degrees``.
    """
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise ConfigError(f"{field}: expected a list of mappings such as [{{name: hflip}}], got {specs!r}")
    return [_check_one(spec, f"{field}[{i}]") for i, spec in enumerate(specs)]


def _check_one(spec: Any, where: str) -> tuple[str, Any]:
    valid = ", ".join(list_augmentations())
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping such as {{name: hflip}}, got {spec!r}")
    if "name" not in spec:
        raise ConfigError(f"{where}: missing 'name'; valid names: {valid}")
    name = spec["name"]
    if name not in _AUGMENTATIONS:
        hint = closest(str(name), _AUGMENTATIONS)
        hint = hint + " " if hint else ""
        raise ConfigError(f"{where}.name: unknown augmentation {name!r}; {hint}valid names: {valid}")
    params_type = _AUGMENTATIONS[name].params
    try:
        params = params_type.model_validate({k: v for k, v in spec.items() if k != "name"})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where, name, params_type)) from None
    return name, params


def _describe(error: ValidationError, where: str, name: str, params_type: type[_Params]) -> str:
    first = error.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    fields = ", ".join(params_type.model_fields) or "(none)"
    if first["type"] == "extra_forbidden":
        hint = closest(key, params_type.model_fields)
        return f"{where}.{key}: unknown parameter of {name!r}; {hint + ' ' if hint else ''}valid parameters: {fields}"
    if first["type"] == "missing":
        return f"{where}.{key}: required parameter of {name!r} is missing"
    if first["type"] == "value_error":  # our own validators already quote the value
        return f"{where}.{key}: {first['msg'].removeprefix('Value error, ')}"
    return f"{where}.{key}: {first['msg']} (got {first['input']!r})"


class SanitizeInstances(v2.SanitizeBoundingBoxes):
    """``v2.SanitizeBoundingBoxes`` (drop degenerate boxes with their labels and instance masks)
    that leaves the [H, W] ``CrowdMask`` alone: torchvision filters every Mask along its first
    dimension, which would cut rows out of the crowd mask whenever there are H instances."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, CrowdMask):
            return inpt
        return super().transform(inpt, params)


def build_augmentation(
    specs: Sequence[Mapping[str, Any]],
    *,
    task: str = "semantic",
    ignore_index: int = IGNORE_INDEX,
    field: str = "data.augment",
) -> v2.Compose:
    """Build the joint augmentation pipeline a ``data.augment`` list describes, in its order.

    Args:
        specs: mappings with ``name`` (see ``list_augmentations()``) and parameters, e.g.
            ``[{"name": "random_resize", "scale_range": [0.5, 2.0]}, {"name": "rotate", "degrees": 10}]``.
        task: "semantic", "instance" or "panoptic". Instance masks are filled with 0, others with
            ``ignore_index``; for "instance", the chain ends with ``instance_steps()``: boxes
            recomputed from the masks, clamped, and instances left empty removed with their masks
            and labels (the crowd mask is moved, never filtered).
        ignore_index: fill of semantic (and panoptic) mask pixels brought in from outside.
        field: dotted name used in error messages.

    Returns:
        a ``v2.Compose`` called as ``(image, target) -> (image, target)``; image uint8 [3, H, W],
        target a ``Mask`` [H, W] or a dict of tv_tensors.

    Raises:
        ConfigError: unknown task or name (with the valid names), bad parameter (naming ``field[i].key``).
    """
    if task not in TASKS:
        raise ConfigError(f"build_augmentation: unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    fills = _Fills(mask=0 if task == "instance" else int(ignore_index))
    steps: list[Any] = []
    for name, params in check_augmentation(specs, field=field):
        step = _AUGMENTATIONS[name].build(params, fills)
        p = getattr(params, "p", 1.0)
        steps.append(v2.RandomApply([step], p=p) if name not in _FLIPS and p < 1 else step)
    if task == "instance":
        steps += instance_steps()
    return v2.Compose(steps or [v2.Identity()])


def instance_steps() -> list[v2.Transform]:
    """The steps that end every instance chain: ``BoxesFromMasks``, ``ClampBoundingBoxes``, ``SanitizeInstances``.

    So after any crop, resize, flip, rotation or deformation each box is tight on its mask, and the
    instances left without pixels are removed with their masks and labels; an image may end with
    K = 0 instances ([0, H, W] masks, [0, 4] boxes, [0] labels), which is a valid sample.
    """
    return [BoxesFromMasks(), v2.ClampBoundingBoxes(), SanitizeInstances()]


def query_size(flat_inputs: list[Any], who: str) -> tuple[int, int]:
    """(H, W) of the first image, mask or plain tensor among a transform's inputs."""
    for inpt in flat_inputs:
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) or (
            isinstance(inpt, Tensor) and not isinstance(inpt, tv_tensors.TVTensor) and inpt.dim() >= 2
        ):
            height, width = TF.get_size(inpt)
            return height, width
    raise ConfigError(f"{who} needs an image or mask among its inputs")

