"""Panoptic maps of image files with a trained checkpoint: coloured overlays and a COCO panoptic folder.

For each image ``<stem>_overlay.png`` (stuff in its class colour, each thing instance in a shade of
its class's with a 1-px outline, ``seglab.data.render.draw_panoptic``) and, for all images of the
call, the COCO panoptic format (https://cocodataset.org/#format-results): ``panoptic/<stem>.png``
(segment id = R + 256 G + 256^2 B) and ``panoptic.json`` (``segments_info`` per image), so other
tools (panopticapi's ``pq_compute``, detectron2) can score or read the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor, nn

from seglab.engine.device import resolve_device
from seglab.data import list_images, read_image
from seglab.data.base import IGNORE_INDEX
from seglab.data.colours import class_colours, with_legend
from seglab.data.panoptic_format import PanopticWriter
from seglab.data.render import draw_panoptic
from seglab.engine.checkpoint import load_model
from seglab.errors import ConfigError, InputError
from seglab.inference.predictor import as_image, prepare_image, preprocessing
from seglab.structures import PanopticPrediction


@dataclass
class PredictedPanoptic:
    """Where the panoptic map of one input image was written."""

    image: Path
    overlay: Path  # the image with stuff and outlined thing instances drawn over it, a class legend below
    panoptic: Path  # its COCO panoptic PNG (segment ids as RGB)
    segments: Path  # the panoptic.json shared by all images of the call
    instances: int  # thing instances found


class PanopticPredictor:
    """A checkpoint of a panoptic model ready to segment images.

    Args:
        checkpoint: a directory written by `seglab train` (model.safetensors + config.json).
        device: "cpu", "cuda", ...
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu") -> None:
        model, config = load_model(checkpoint, device=device)
        self._setup(model, config, device=device)

    @classmethod
    def from_model(cls, model: nn.Module, config: dict[str, Any], *, device: str = "cpu") -> PanopticPredictor:
        """A predictor around a built model; ``config`` as in a checkpoint's config.json (classes, thing_classes)."""
        predictor = cls.__new__(cls)
        predictor._setup(model, config, device=device)
        return predictor

    def _setup(self, model: nn.Module, config: dict[str, Any], *, device: str) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.preprocess = preprocessing(config)
        things = config.get("thing_classes") or (config.get("model_kwargs") or {}).get("thing_classes")
        classes = getattr(model, "classes", None)
        things = things or (classes.things if classes is not None else None)
        if not things:
            raise ConfigError("the checkpoint's config.json does not say which classes are things (thing_classes)")
        self.thing_classes = [int(c) for c in things]

    @property
    def classes(self) -> list[str]:
        """Class names, index = class id."""
        return list(self.config.get("classes") or [str(i) for i in range(self.config["num_classes"])])

    @torch.no_grad()
    def predict(self, image: Tensor | Any) -> PanopticPrediction:
        """The panoptic map of one image [3, H, W] (uint8, or float in [0, 1]), on the CPU (a file path, PIL image or
        [H, W, 3] array too)."""
        image = as_image(image)
        if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
            got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise InputError(f"PanopticPredictor.predict: image is {got}; expected one [3, H, W] tensor "
                             "(uint8, or float in [0, 1]); drop the batch dimension with images[0]")
        return self.model([prepare_image(image, self.preprocess).to(self.device)])[0].to("cpu")

    def predict_files(self, source: str | Path, out_dir: str | Path) -> list[PredictedPanoptic]:
        """Segment an image file or every image in a folder; write overlays and the COCO panoptic folder.

        ``image_id`` in panoptic.json is the image's index in ``source``; ``category_id`` the checkpoint's
        ``category_ids`` of the class (COCO's ids), else the class id + 1.
        """
        out_dir = Path(out_dir)
        colours = class_colours(self.config.get("palette"), len(self.classes))  # distinct, never the void white
        palette = [tuple(int(v) for v in c) for c in colours]
        category_ids = self.config.get("category_ids") or list(range(1, len(self.classes) + 1))  # COCO ids start at 1
        written = []
        writer = PanopticWriter(out_dir, classes=self.classes, thing_classes=self.thing_classes,
                                category_ids=category_ids, palette=palette)
        for index, path in enumerate(list_images(source)):
            image = read_image(path)
            prediction = self.predict(image)
            overlay = draw_panoptic(image.permute(1, 2, 0).numpy(), prediction.semantic, prediction.instance_ids,
                                    palette=palette, thing_classes=self.thing_classes)
            overlay_path = out_dir / f"{path.stem}_overlay.png"
            present = np.unique(prediction.semantic.numpy())
            PILImage.fromarray(with_legend(np.asarray(overlay), self.classes, colours,
                                           present=present[present != IGNORE_INDEX])).save(overlay_path)
            writer.add(index, path.stem, prediction.semantic, prediction.instance_ids)
            written.append(PredictedPanoptic(path, overlay_path, writer.png_dir / f"{path.stem}.png",
                                             out_dir / "panoptic.json", int(prediction.instance_ids.max())))
        writer.close()
        return written

