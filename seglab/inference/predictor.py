"""Predict label maps for image files with a trained checkpoint; write index PNGs and overlays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor

from torchvision import tv_tensors
from torchvision.transforms import v2

from seglab.engine.device import resolve_device
from seglab.data import eval_transforms, list_images, read_image
from seglab.data.base import default_palette
from seglab.data.render import overlay
from seglab.engine.checkpoint import load_model
from seglab.engine.evaluate import predict_logits


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
        self.model, self.config = load_model(checkpoint, device=device)
        self.device = resolve_device(device)
        self.input_size = tuple(self.config["input_size"]) if self.config.get("input_size") else None
        self.preprocess = preprocessing(self.config)
        palette = self.config.get("palette") or default_palette(self.config["num_classes"])
        self.palette = np.array(palette, dtype=np.uint8)

    @torch.no_grad()
    def predict(self, image: Tensor) -> Tensor:
        """Class ids [H, W] int64 for one image [3, H, W] (uint8, or float in [0, 1])."""
        x = prepare_image(image, self.preprocess)
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
