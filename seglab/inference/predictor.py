"""Predict label maps for image files with a trained checkpoint; write index PNGs and overlays."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor, nn

from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.engine.device import resolve_device
from seglab.data import eval_transforms, list_images, read_image
from seglab.data.colours import class_colours, with_legend, write_label_png
from seglab.data.render import overlay
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import predict_logits
from seglab.errors import ConfigError, InputError
from seglab.inference.fast import fast_runner
from seglab.inference.large_image import LARGE_IMAGE_PIXELS, image_size, is_large_image, predict_large_image
from seglab.inference.sliding_window import check_tile_fits, inference_options, predict_labels


@dataclass
class PredictedFile:
    """Where the prediction of one input image was written."""

    image: Path
    labels: Path  # palette-mode PNG: pixel value = class id, shown in the class colours
    overlay: Path | None  # the image blended with the class colours, a legend of the classes present below;
    # None for a large image (is_large_image), whose labels are a TIFF written by bands


def preprocessing(config: dict[str, Any]) -> Any:
    """The input normalisation a checkpoint was trained with (e.g. SegNet's LCN), or None.

    Of the recipe's ``data.augment`` list (recorded in config.json) only the deterministic input
    normalisation applies at inference; random augmentations do not.
    """
    augment = ((config.get("recipe") or {}).get("data") or {}).get("augment")
    transform = eval_transforms(augment=augment)
    return None if isinstance(transform, v2.Identity) else transform


def as_image(image: Tensor | np.ndarray | PILImage.Image | str | Path) -> Tensor:
    """One input image as a [3, H, W] tensor: a file path (read as ``seglab predict`` reads it), a PIL image,
    an [H, W, 3] (or [H, W]) uint8 array, or a [3, H, W] tensor, returned as it is.

    Raises:
        InputError: any other type or shape (the message says what came).
    """
    if isinstance(image, Tensor):
        return image
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, PILImage.Image):
        image = np.array(image.convert("RGB"))  # a writable copy
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 3:
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        raise InputError(f"an image array must be [H, W, 3] or [H, W]; got shape {list(image.shape)}")
    raise InputError(f"cannot predict on a {type(image).__name__}; pass a file path, a PIL image, an [H, W, 3] "
                     "array or a [3, H, W] tensor")


def prepare_image(image: Tensor, preprocess: Any) -> Tensor:
    """One image as the model saw it in training: float [3, H, W] in [0, 1], normalised as trained.

    Args:
        image: [3, H, W] uint8, or float in [0, 1].
        preprocess: the checkpoint's input normalisation (``preprocessing(config)``, e.g. SegNet's
            LCN, which works on uint8 images), or None.
    """
    if preprocess is not None:  # trained on normalised uint8 inputs (e.g. LCN)
        if image.dtype != torch.uint8:
            image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
        image = preprocess(tv_tensors.Image(image))
    image = image.as_subclass(Tensor)
    return image.float() / 255 if image.dtype == torch.uint8 else image.float()


class Predictor:
    """A checkpoint ready to segment images.

    Args:
        checkpoint: a directory written by `seglab train` (model.safetensors + config.json).
        device: "cpu", "cuda", ...
        tile: sliding-window inference with windows of this many model pixels (``--tile``); None (default)
            feeds the whole image at the checkpoint's input size. See ``seglab.inference.sliding_window``.
        overlap: fraction of a window shared with its neighbour, in [0, 1) (``--overlap``; default 0.25).
        scale: model pixels per image pixel inside windows (``--scale``; default 1.0, the image's own
            pixels; e.g. 0.5 for a model trained on images halved).
        tta: flip and multi-scale test-time augmentation (``--tta``), as mmseg: ratios ``tta_scales``
            (default 0.5 ... 1.75; giving them turns ``tta`` on).
        batch_size: windows per forward pass.
        precision: ``auto`` (default: bf16 autocast on CUDA and on CPUs with AVX512-BF16 or AMX, fp32
            elsewhere), ``fp32``, ``bf16`` or ``fp16`` (GPUs); see ``seglab.inference.fast``.
        compile: run the model through ``torch.compile`` (slow first call, faster after).
        fast: False runs the model exactly as loaded (no batch-norm folding, no channels_last, fp32).

    ``fast_paths`` says what the predictor runs with (``fast_paths.describe()``).
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu", **options: Any) -> None:
        model, config = load_model(checkpoint, device=device)
        self._setup(model, config, device=device, **options)

    @classmethod
    def from_model(cls, model: nn.Module, config: dict[str, Any], *, device: str = "cpu", **options: Any) -> Predictor:
        """A predictor around a built model; ``config`` as in a checkpoint's config.json (classes, input_size...);
        ``options`` as for ``Predictor``."""
        predictor = cls.__new__(cls)
        predictor._setup(model, config, device=device, **options)
        return predictor

    def _setup(self, model: nn.Module, config: dict[str, Any], *, device: str,
               tile: int | tuple[int, int] | None = None, overlap: float | None = None, scale: float | None = None,
               tta: bool = False, tta_scales: tuple[float, ...] | str | None = None, batch_size: int = 4,
               precision: str = "auto", compile: bool = False, fast: bool = True) -> None:  # noqa: A002
        self.device = resolve_device(device)
        self.model, self.config = model.to(self.device).eval(), config
        self.input_size = tuple(self.config["input_size"]) if self.config.get("input_size") else None
        self.preprocess = preprocessing(self.config)
        self.palette = class_colours(self.config.get("palette"), self.config["num_classes"])
        self.inference = inference_options(tile=tile, overlap=overlap, scale=scale, tta=tta, tta_scales=tta_scales,
                                           batch_size=batch_size)  # tiles, TTA; None: the whole image as trained
        check_tile_fits(self.inference, self.model, name=str(self.config.get("model", type(model).__name__)))
        self.runner, self.fast_paths = fast_runner(self.model, self.config, device=self.device, precision=precision,
                                                   compile=compile, enabled=fast)

    @torch.no_grad()
    def predict(self, image: Tensor | np.ndarray | PILImage.Image | str | Path) -> Tensor:
        """Class ids [H, W] int64 for one image: a file, a PIL image, an [H, W, 3] array or a [3, H, W] tensor."""
        x = prepare_image(as_image(image), self.preprocess)
        if self.inference is not None:  # tiles and/or TTA (seglab.inference.sliding_window)
            return predict_labels(self.runner, x.to(self.device), options=self.inference,
                                  input_size=self.input_size).cpu()
        logits = predict_logits(self.runner, x[None].to(self.device), input_size=self.input_size)
        return logits.argmax(1)[0].cpu()

    def predict_large_file(self, path: str | Path, out_dir: str | Path) -> PredictedFile:
        """Segment a large image file (TIFF, ``.npy``, ...: ``is_large_image``) by bands of tiles, in bounded
        memory, and write ``<stem>.tif``: a palette TIFF whose pixel values are class ids. No overlay.

        Raises:
            ConfigError: no ``tile`` was given (a large image is only read by tiles).
            InputError: the file cannot be read by region (names it and how to convert it).
        """
        path, out_dir = Path(path), Path(out_dir)
        if self.inference is None or self.inference.tile is None:
            size = image_size(path)
            what = f"{size[1]} x {size[0]} pixels" if size else "too large to decode whole"
            raise ConfigError(f"{str(path)!r} is {what} (images over {LARGE_IMAGE_PIXELS // 10**6} Mpixel and .npy "
                              "arrays are read by bands): predict it by tiles, e.g. --tile 512 (Python: tile=512)")
        out_dir.mkdir(parents=True, exist_ok=True)
        label_path = out_dir / f"{path.stem}.tif"

        def prepare(rows: np.ndarray) -> Tensor:  # [h, W, 3] uint8 -> [3, h, W] as the model takes it
            band = torch.from_numpy(rows).permute(2, 0, 1)
            if self.preprocess is None:  # bytes: iter_band_probs divides by 255 per window (memory)
                return band.to(self.device)
            return prepare_image(band, self.preprocess).to(self.device)

        predict_large_image(self.runner, path, label_path, options=self.inference, prepare=prepare,
                            palette=self.palette)
        return PredictedFile(path, label_path, None)

    def predict_files(self, source: str | Path, out_dir: str | Path, *, alpha: float = 0.5) -> list[PredictedFile]:
        """Segment an image file or every image in a folder; write ``<stem>.png`` and ``<stem>_overlay.png``.

        ``<stem>.png`` is a palette-mode PNG whose pixel values are class ids (``np.array(Image.open(p))``
        returns them) and which a viewer shows in the class colours; the overlay has a legend strip below.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in list_images(source):
            if is_large_image(path):  # read and written by bands: <stem>.tif, no overlay
                written.append(self.predict_large_file(path, out_dir))
                continue
            image = read_image(path)
            labels = self.predict(image).numpy().astype(np.uint8)
            label_path = out_dir / f"{path.stem}.png"
            overlay_path = out_dir / f"{path.stem}_overlay.png"
            write_label_png(labels, label_path, self.palette)
            blended = overlay(image.permute(1, 2, 0).numpy(), labels, self.palette, alpha)
            PILImage.fromarray(with_legend(blended, self.classes, self.palette, present=np.unique(labels))).save(overlay_path)
            written.append(PredictedFile(path, label_path, overlay_path))
        return written

    @property
    def classes(self) -> list[str]:
        return list(self.config.get("classes") or [str(i) for i in range(self.config["num_classes"])])

    def describe(self) -> dict[str, Any]:
        return {k: self.config.get(k) for k in ("model", "num_classes", "dataset", "input_size", "step")}


# The options only a semantic predictor takes (sliding windows, TTA, fast paths): seglab.Predictor refuses
# them for instance and panoptic models.
SEMANTIC_OPTIONS = frozenset(inspect.signature(Predictor._setup).parameters) - {"self", "model", "config", "device"}
