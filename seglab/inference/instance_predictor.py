"""Find instances in image files with a trained checkpoint; write overlays and COCO results JSON.

The results file follows the COCO results format (https://cocodataset.org/#format-results): one
entry per detection, ``bbox`` as [x, y, width, height] in pixels and ``segmentation`` as compressed
RLE, so ``pycocotools``' ``COCO.loadRes`` and seglab's mask AP can read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor, nn

from seglab.engine.device import resolve_device
from seglab.data import list_images, read_image
from seglab.data.render import draw_instances
from seglab.engine.checkpoint import load_model
from seglab.inference.fast import fast_runner
from seglab.errors import ConfigError, InputError
from seglab.inference.predictor import as_image, prepare_image, preprocessing
from seglab.metrics.coco import encode_masks
from seglab.registry import list_models, model_spec
from seglab.structures import InstancePrediction

RESULTS_FILE = "results.json"
MASK_THRESHOLD = 0.5  # soft masks -> binary, as in Mask R-CNN sec. 3
DRAW_THRESHOLD = 0.5  # detections drawn in overlays score at least this (results.json keeps all)
PROPOSALS_DRAWN = 10  # proposal models draw their 10 best (AR@10, DeepMask sec. 4)


@dataclass
class PredictedInstances:
    """Where the instances of one input image were written."""

    image: Path
    overlay: Path  # the image with the detections scoring >= score_threshold drawn over it
    results: Path  # the COCO results JSON shared by all images of the call (every detection)
    detections: int  # how many detections of this image results.json holds


class InstancePredictor:
    """A checkpoint of an instance model ready to find instances in images.

    Args:
        checkpoint: a directory written by `seglab train` (model.safetensors + config.json).
        device: "cpu", "cuda", ...
        score_threshold: the lowest score drawn in overlays; results.json keeps every detection.
        top: draw at most this many detections, best first (None: all above the threshold).
        precision, fast: the inference fast paths (``seglab.inference.fast_instance``) for a model that names its
            ``autocast_stages`` (Mask R-CNN): "auto" runs them in bf16 where the CPU has AVX512-BF16 or AMX (and on
            CUDA); other models, and ``fast=False``, run in fp32 as loaded.

    Class-agnostic proposal models (``ModelSpec.outputs == "proposals"``: DeepMask, SharpMask) draw
    their ``top`` proposals (10 unless given) whatever their score, labelled "object".
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu", score_threshold: float | None = None,
                 top: int | None = None, precision: str = "auto", fast: bool = True) -> None:
        model, config = load_model(checkpoint, device=device)
        self._setup(model, config, device=device, score_threshold=score_threshold, top=top, precision=precision,
                    fast=fast)

    @classmethod
    def from_model(cls, model: nn.Module, config: dict[str, Any], *, device: str = "cpu",
                   score_threshold: float | None = None, top: int | None = None, precision: str = "auto",
                   fast: bool = True) -> InstancePredictor:
        """A predictor around a built model; ``config`` as in a checkpoint's config.json (classes, ...)."""
        predictor = cls.__new__(cls)
        predictor._setup(model, config, device=device, score_threshold=score_threshold, top=top,
                         precision=precision, fast=fast)
        return predictor

    def _setup(self, model: nn.Module, config: dict[str, Any], *, device: str, score_threshold: float | None,
               top: int | None, precision: str = "auto", fast: bool = True) -> None:
        name = config.get("model")
        self.proposals = name in list_models(task="instance") and model_spec(name).outputs == "proposals"
        if score_threshold is None:
            score_threshold = 0.0 if self.proposals else DRAW_THRESHOLD
        if not 0.0 <= score_threshold <= 1.0:
            raise ConfigError(f"score_threshold is {score_threshold}; expected a score in [0, 1]")
        if top is not None and top < 1:
            raise ConfigError(f"top is {top}; expected at least 1 detection to draw")
        self.top = top if top is not None or not self.proposals else PROPOSALS_DRAWN
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.score_threshold = score_threshold
        self.preprocess = preprocessing(config)
        self.runner, self.fast_paths = fast_runner(self.model, config, device=self.device, precision=precision,
                                                   enabled=fast, task="instance")

    @property
    def classes(self) -> list[str]:
        """Class names, index = label (0 = background); proposals are all label 1, "object"."""
        if self.proposals:
            return ["background", "object"]
        return list(self.config.get("classes") or [str(i) for i in range(self.config["num_classes"])])

    @torch.no_grad()
    def predict(self, image: Tensor | np.ndarray | Any) -> InstancePrediction:
        """The instances of one image [3, H, W] (uint8, or float in [0, 1]), on the CPU.

        Returns:
            InstancePrediction with soft masks [K, H, W], boxes in image pixels, scores high to low.
        """
        image = as_image(image)  # a file path, PIL image or [H, W, 3] array too
        if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
            got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise InputError(f"InstancePredictor.predict: image is {got}; expected one [3, H, W] tensor "
                             "(uint8, or float in [0, 1]); drop the batch dimension with images[0]")
        prediction = self.runner([prepare_image(image, self.preprocess).to(self.device)])[0]
        return prediction.to("cpu")

    def predict_files(self, source: str | Path, out_dir: str | Path) -> list[PredictedInstances]:
        """Find instances in an image file or every image in a folder.

        Writes ``<stem>_overlay.png`` per image and one ``results.json`` (COCO results format, every
        detection of every image; ``image_id`` = the image's index in ``source``) in ``out_dir``.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results_path = out_dir / RESULTS_FILE
        written, results = [], []
        for index, path in enumerate(list_images(source)):
            image = read_image(path)
            prediction = self.predict(image)
            binary = prediction.binary_masks(MASK_THRESHOLD)
            rles = [{"size": list(binary.shape[-2:]), "counts": counts} for counts in encode_masks(binary)]
            masks = binary.numpy()
            boxes, labels = prediction.boxes_xyxy.double().numpy(), prediction.labels.tolist()
            scores = prediction.scores.tolist()
            keep = [i for i, score in enumerate(scores) if score >= self.score_threshold][: self.top]
            drawn = draw_instances(image.permute(1, 2, 0).numpy(), masks[keep], boxes[keep],
                                   [labels[i] for i in keep], classes=self.classes, scores=[scores[i] for i in keep])
            overlay_path = out_dir / f"{path.stem}_overlay.png"
            PILImage.fromarray(drawn).save(overlay_path)
            results += [self._detection(index, path.name, rles[i], boxes[i], labels[i], scores[i])
                        for i in range(len(labels))]
            written.append(PredictedInstances(path, overlay_path, results_path, len(labels)))
        results_path.write_text(json.dumps(results))
        return written

    def _detection(self, image_id: int, file_name: str, rle: dict[str, Any], box: np.ndarray, label: int,
                   score: float) -> dict[str, Any]:
        """One COCO results entry."""
        x1, y1, x2, y2 = (float(v) for v in box)
        return {
            "image_id": image_id,
            "file_name": file_name,
            "category_id": self.category_id(label),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "score": round(score, 5),
            "segmentation": rle,
        }

    def category_id(self, label: int) -> int:
        """The dataset's category id of a label: ``config["category_ids"][label]``, else the label."""
        ids = self.config.get("category_ids")
        if ids is None:
            return label
        if isinstance(ids, Mapping):  # a JSON object is keyed by the label as text
            value = ids.get(str(label), ids.get(label))
        else:  # a list indexed by label
            value = ids[label] if 0 <= label < len(ids) else None
        if value is None:
            raise ConfigError(f"config category_ids has no entry for label {label}; it needs one per class "
                              f"(index = label, {len(ids)} given)")
        return int(value)
