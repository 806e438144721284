"""Predict label maps for image files with a trained checkpoint; write index PNGs and overlays."""

from __future__ import annotations

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
from seglab.data.base import default_palette
from seglab.data.render import overlay
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import predict_logits
from seglab.errors import InputError


@dataclass
class PredictedFile:
    """Where the prediction of one input image was written."""

    image: Path
    labels: Path  # single-channel PNG, pixel value = class id
    overlay: Path  # the image blended with the class colours


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
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu") -> None:
        model, config = load_model(checkpoint, device=device)
        self._setup(model, config, device=device)

    @classmethod
    def from_model(cls, model: nn.Module, config: dict[str, Any], *, device: str = "cpu") -> Predictor:
        """A predictor around a built model; ``config`` as in a checkpoint's config.json (classes, input_size...)."""
        predictor = cls.__new__(cls)
        predictor._setup(model, config, device=device)
        return predictor

    def _setup(self, model: nn.Module, config: dict[str, Any], *, device: str) -> None:
        self.device = resolve_device(device)
        self.model, self.config = model.to(self.device).eval(), config
        self.input_size = tuple(self.config["input_size"]) if self.config.get("input_size") else None
        self.preprocess = preprocessing(self.config)
        palette = self.config.get("palette") or default_palette(self.config["num_classes"])
        self.palette = np.array(palette, dtype=np.uint8)

    @torch.no_grad()
    def predict(self, image: Tensor | np.ndarray | PILImage.Image | str | Path) -> Tensor:
        """Class ids [H, W] int64 for one image: a file, a PIL image, an [H, W, 3] array or a [3, H, W] tensor."""
        x = prepare_image(as_image(image), self.preprocess)
        logits = predict_logits(self.model, x[None].to(self.device), input_size=self.input_size)
        return logits.argmax(1)[0].cpu()

    def predict_files(self, source: str | Path, out_dir: str | Path, *, alpha: float = 0.5) -> list[PredictedFile]:
        """Segment an image file or every image in a folder; write ``<stem>.png`` and ``<stem>_overlay.png``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in list_images(source):
            image = read_image(path)
            labels = self.predict(image).numpy().astype(np.uint8)
            label_path = out_dir / f"{path.stem}.png"
            overlay_path = out_dir / f"{path.stem}_overlay.png"
            PILImage.fromarray(labels, mode="L").save(label_path)
            PILImage.fromarray(overlay(image.permute(1, 2, 0).numpy(), labels, self.palette, alpha)).save(overlay_path)
            written.append(PredictedFile(path, label_path, overlay_path))
        return written

    @property
    def classes(self) -> list[str]:
        return list(self.config.get("classes") or [str(i) for i in range(self.config["num_classes"])])

    def describe(self) -> dict[str, Any]:
        return {k: self.config.get(k) for k in ("model", "num_classes", "dataset", "input_size", "step")}
