"""Sliding-window inference with blended seams, and test-time augmentation (flip, multi-scale), for semantic models.

How an image is read (what ``--tile``, ``--overlap``, ``--scale`` and ``--tta`` mean):

- Windows are laid out in the image's own pixels. One covers ``tile / scale`` pixels (``scale`` 1.0, the
  default: the model sees native pixels; 0.5: a 512 tile covers 1024 pixels, for a checkpoint trained on
  images halved) and is resized to ``tile`` pixels for the model; its logits are resized back. With tiles
  the checkpoint's ``input_size`` (the size whole images were resized to in training) is not used.
- Windows start ``(1 - overlap) * window`` apart and the last one of each row and column is aligned to the
  image border, as mmseg's slide mode does (open-mmlab/mmsegmentation: ``EncoderDecoder.slide_inference``),
  so every pixel is covered and no window is padded. Where the image is smaller than a window, the window
  shrinks to the image (mmseg too); the model pads to its input multiple itself.
- Each window's class probabilities are weighted by a separable Gaussian (sigma = window / 6: 1 at the
  centre, 0.011 at an edge, never zero) and the sums are divided by the summed weights, so seams blend
  and the image border, covered by one window edge only, still gets its prediction. mmseg averages
  logits with equal weights; probabilities are averaged here so one running sum serves windows, flips
  and scales alike, and a pixel is decided mostly by the windows that see it far from their edges.
- TTA as mmseg's ``TestTimeAug`` + ``SegTTAModel``: the mean of softmax probabilities over the ratios
  (default ``TTA_SCALES``) times {identity, horizontal flip}. Without tiles the whole image is resized
  to ratio x base, base being the checkpoint's ``input_size`` (else the image size). With tiles every
  ratio uses the same window grid and feeds each window at ratio x tile pixels.
- Rows come out in bands of one window row (``iter_band_probs``): only the ``[C, window, W]`` sums of
  the band being finished are held, so memory depends on the image width, not its height.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seglab.errors import ConfigError
from seglab.layers.upsample import resize_input, resize_to

TTA_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # mmseg configs/_base_/datasets/*.py: img_ratios of tta_pipeline
BLEND_SIGMA = 1 / 6  # of the window side: the weight at a window edge is exp(-4.5) = 0.011


@dataclass(frozen=True)
class InferenceOptions:
    """How a semantic model reads an image: whole or by tiles, with or without TTA (see the module docstring).

    Args:
        tile: (H, W) model pixels per window, or None for the whole image.
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        scale: model pixels per image pixel inside windows (> 0; tiles only).
        flip: TTA: also predict the horizontally mirrored image and mirror the result back.
        scales: TTA ratios of the model's input size; (1.0,) without multi-scale.
        batch_size: windows per forward pass.

    Raises:
        ConfigError: an option out of range, naming it as the Python keyword and the CLI flag.
    """

    tile: tuple[int, int] | None = None
    overlap: float = 0.25
    scale: float = 1.0
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.tile is not None and (len(self.tile) != 2 or min(self.tile) <= 0):
            raise ConfigError(f"tile (--tile) must be a positive number of pixels, got {self.tile}")
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"overlap (--overlap) must be in [0, 1): the fraction of a tile shared with its "
                              f"neighbour, e.g. 0.25; got {self.overlap}")
        if not self.scale > 0:
            raise ConfigError(f"scale (--scale) must be > 0 (model pixels per image pixel), got {self.scale}")
        if self.scale != 1.0 and self.tile is None:
            raise ConfigError("scale (--scale) sets the model pixels per image pixel inside tiles; add tile= (--tile)")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"tta_scales (--tta-scales) must be positive ratios such as 0.75,1,1.25; "
                              f"got {list(self.scales)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")


def inference_options(*, tile: int | Sequence[int] | None = None, overlap: float | None = None,
                      scale: float | None = None, tta: bool = False, tta_scales: Sequence[float] | str | None = None,
                      batch_size: int = 4) -> InferenceOptions | None:
    """Options from a user's settings (``Predictor`` keywords, CLI flags), or None for the default path.

    Args:
        tile: window side in model pixels (or (H, W)); None reads the whole image.
        overlap: default 0.25; scale: default 1.0. Both apply to tiles only (ConfigError without ``tile``).
        tta: flip and multi-scale test-time augmentation (``tta_scales``, default ``TTA_SCALES``).
        tta_scales: ratios (or "0.75,1,1.25"); giving them turns ``tta`` on. ``tta_scales=[1]`` flips only.
        batch_size: as in ``InferenceOptions``.
    """
    if tile is None and (overlap is not None or scale is not None):
        flag = "overlap (--overlap)" if overlap is not None else "scale (--scale)"
        raise ConfigError(f"{flag} applies to sliding-window inference; add tile= (--tile), e.g. --tile 512")
    if isinstance(tta_scales, str):
        tta_scales = parse_scales(tta_scales)
    tta = tta or tta_scales is not None
    tile_hw = None if tile is None else ((int(tile), int(tile)) if isinstance(tile, int) else tuple(int(t) for t in tile))
    overlap, scale = 0.25 if overlap is None else overlap, 1.0 if scale is None else scale
    options = InferenceOptions(tile=tile_hw, overlap=float(overlap), scale=float(scale), flip=tta,
                               scales=tuple(float(s) for s in (tta_scales or TTA_SCALES)) if tta else (1.0,),
                               batch_size=int(batch_size))
    return None if tile_hw is None and not tta else options


def parse_scales(text: str) -> tuple[float, ...]:
    """"0.75,1,1.25" -> (0.75, 1.0, 1.25); ConfigError naming --tta-scales on anything else."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--tta-scales takes comma-separated ratios such as 0.75,1,1.25; got {text!r}") from None


def check_tile_fits(options: InferenceOptions | None, model: nn.Module, *, name: str) -> None:
    """Refuse tiles smaller than the model's input multiple or minimum size (ConfigError naming ``name``)."""
    if options is None or options.tile is None:
        return
    smallest = max(int(getattr(model, "input_multiple", 1)), int(getattr(model, "min_size", 1)))
    if min(options.tile) < smallest:
        raise ConfigError(f"tile (--tile) {min(options.tile)} is smaller than {name}'s input multiple / minimum "
                          f"size {smallest}; use --tile {max(smallest, 64)} or more (a multiple of {smallest})")


def blend_weights(height: int, width: int, *, device: torch.device | str = "cpu") -> Tensor:
    """[height, width] separable Gaussian window weights: 1 at the centre, exp(-4.5) at the edges, never 0."""

    def ramp(n: int) -> Tensor:
        t = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (t / (BLEND_SIGMA * n)) ** 2)

    return ramp(height)[:, None] * ramp(width)[None, :]


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` pixels over ``length`` pixels, the last aligned to the end."""
    stride = max(1, round(window * (1 - overlap)))
    count = max(length - window + stride - 1, 0) // stride + 1
    return [min(i * stride, length - window) for i in range(count)]


def window_shape(height: int, width: int, options: InferenceOptions) -> tuple[int, int]:
    """Image pixels (h, w) covered by one window: ``tile / scale``, at most the image."""
    assert options.tile is not None
    return (max(1, min(height, round(options.tile[0] / options.scale))),
            max(1, min(width, round(options.tile[1] / options.scale))))


def _scaled(size: Sequence[int], factor: float) -> tuple[int, int]:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


@torch.no_grad()
def augmented_probs(model: nn.Module, images: Tensor, *, sizes: Sequence[tuple[int, int]], flip: bool) -> Tensor:
    """Mean softmax probabilities [N, C, H, W] of ``images`` [N, 3, H, W] fed to ``model`` at each of ``sizes``
    (antialiased resize, logits resized back), and mirrored left-right too when ``flip``."""
    total, count = None, 0
    for size in sizes:
        x = resize_input(images, size)
        for mirrored in (False, True) if flip else (False,):
            logits = model(x.flip(-1) if mirrored else x).logits
            probs = resize_to(logits.flip(-1) if mirrored else logits, images.shape[-2:]).softmax(1)
            total = probs if total is None else total.add_(probs)
            count += 1
    return total / count


def _window_row(model: nn.Module, band: Tensor, starts: list[int], width: int,
                options: InferenceOptions) -> Iterator[tuple[int, Tensor]]:
    """(x0, probs [C, h, width]) for each window of a band [3, h, W], ``batch_size`` windows per pass."""
    sizes = [_scaled((band.shape[-2], width), options.scale * r) for r in options.scales]  # model input sizes
    for i in range(0, len(starts), options.batch_size):
        chunk = starts[i:i + options.batch_size]
        windows = torch.stack([band[:, :, x0:x0 + width] for x0 in chunk])
        if windows.dtype == torch.uint8:  # as prepare_image: a band is held as bytes, windows become floats
            windows = windows.float().div_(255)
        yield from zip(chunk, augmented_probs(model, windows, sizes=sizes, flip=options.flip))


@torch.no_grad()
def iter_band_probs(model: nn.Module, *, height: int, width: int, read_rows: Callable[[int, int], Tensor],
                    options: InferenceOptions) -> Iterator[tuple[int, Tensor]]:
    """Blended class probabilities by bands of rows, top to bottom.

    Args:
        height, width: the image size in pixels.
        read_rows: ``read_rows(y0, y1)`` -> the image rows y0..y1-1 as the model takes them: float
            [3, y1 - y0, width] (see ``prepare_image``), or uint8 (windows are then divided by 255 one
            batch at a time, a quarter of the memory of a float band), on the model's device.
        options: with ``tile`` set.

    Yields:
        (y0, probs): probs [C, rows, width] for image rows y0..y0+rows-1, each row once, in order. It is a
        view of the running sums, valid until the next item is asked for: use or copy it before.
    """
    wh, ww = window_shape(height, width, options)
    ys, xs = window_starts(height, wh, options.overlap), window_starts(width, ww, options.overlap)
    sums = weights = weight = None
    for k, y0 in enumerate(ys):
        band = read_rows(y0, y0 + wh)
        if weight is None:
            weight = blend_weights(wh, ww, device=band.device)
        for x0, probs in _window_row(model, band, xs, ww, options):
            if sums is None:  # [C, wh, W]: one window row, the only probabilities held
                sums = probs.new_zeros((probs.shape[0], wh, width))
                weights = probs.new_zeros((wh, width))
            sums[:, :, x0:x0 + ww].addcmul_(probs, weight)
            weights[:, x0:x0 + ww].add_(weight)
        del band
        done = ys[k + 1] - y0 if k + 1 < len(ys) else wh  # rows no later window touches
        yield y0, sums[:, :done].div_(weights[:done])
        keep = wh - done  # rows shared with the next window row move to the top of the buffers
        for channel in sums:  # one class at a time: the copy needs 1/C of the buffer, not all of it
            channel[:keep] = channel[done:].clone()
        weights[:keep] = weights[done:].clone()
        sums[:, keep:], weights[keep:] = 0, 0


@torch.no_grad()
def predict_probs(model: nn.Module, image: Tensor, *, options: InferenceOptions,
                  input_size: Sequence[int] | None = None) -> Tensor:
    """Class probabilities [C, H, W] of one prepared image [3, H, W] (float, on the model's device).

    Without tiles: the whole image at ``input_size`` (else its own size) times each TTA ratio. With
    tiles: blended windows (``iter_band_probs``); ``input_size`` is not used.
    """
    height, width = image.shape[-2:]
    if options.tile is None:
        sizes = [_scaled(input_size or (height, width), r) for r in options.scales]
        return augmented_probs(model, image[None], sizes=sizes, flip=options.flip)[0]
    probs = None
    for y0, rows in iter_band_probs(model, height=height, width=width, read_rows=lambda a, b: image[:, a:b],
                                    options=options):
        if probs is None:
            probs = image.new_empty((rows.shape[0], height, width))
        probs[:, y0:y0 + rows.shape[1]] = rows
    return probs


@torch.no_grad()
def predict_labels(model: nn.Module, image: Tensor, *, options: InferenceOptions,
                   input_size: Sequence[int] | None = None) -> Tensor:
    """Class ids [H, W] int64 of one prepared image [3, H, W]; with tiles the [C, H, W] probabilities are
    never held at once (one band of rows at a time)."""
    if options.tile is None:
        return predict_probs(model, image, options=options, input_size=input_size).argmax(0)
    height, width = image.shape[-2:]
    labels = torch.empty((height, width), dtype=torch.int64, device=image.device)
    for y0, rows in iter_band_probs(model, height=height, width=width, read_rows=lambda a, b: image[:, a:b],
                                    options=options):
        labels[y0:y0 + rows.shape[1]] = rows.argmax(0)
    return labels


@torch.no_grad()
def predict_log_probs(model: nn.Module, images: Tensor, *, options: InferenceOptions,
                      input_size: Sequence[int] | None = None) -> Tensor:
    """Logits [N, C, H, W] for a batch [N, 3, H, W] (``seglab eval``): the log of ``predict_probs`` per image."""
    probs = torch.stack([predict_probs(model, image, options=options, input_size=input_size) for image in images])
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
