"""Sample pictures for a report: the checkpoint's predictions on a few validation images.

Semantic runs show image | ground truth | prediction with a legend of the classes in either; instance
and panoptic runs show the predictor's own overlays (``predict_files``), as ``seglab predict`` writes
them. The images come from the run's dataset (its validation split) when it is on disk, else from
``val_images/`` in the run folder (``seglab demo`` writes it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from seglab.errors import SeglabError
from seglab.report.run_folder import RunRecord


MIN_WIDTH = 720  # narrower sample strips are enlarged (nearest neighbour) to at least this width


@dataclass
class Sample:
    title: str
    picture: np.ndarray  # [H, W, 3] uint8


def draw_samples(run: RunRecord, *, count: int, data_root: Path | None, device: str) -> tuple[list[Sample], str]:
    """Up to ``count`` sample pictures and a line saying where they came from (or why there are none)."""
    if count <= 0:
        return [], "no samples requested (--samples 0)"
    from seglab.api import Predictor  # noqa: PLC0415 - torch loads only when samples are drawn

    predictor = Predictor(run.checkpoint, device=device)
    task = run.config.get("task", "semantic")
    data, why = _validation_data(run, data_root)
    if data is not None:
        items = [data[i] for i in range(min(count, len(data)))]
        images = [image for image, _ in items]
        if task == "semantic":
            return [_semantic(predictor, image, target, data, i) for i, (image, target) in enumerate(items)], why
        return _from_files(predictor, images), why
    folder = run.folder / "val_images"
    files = sorted(folder.glob("*.png"))[:count] if folder.is_dir() else []
    if not files:
        return [], f"no samples: {why}, and the run folder has no val_images/"
    from seglab.data import read_image  # noqa: PLC0415

    images = [read_image(f) for f in files]
    if task == "semantic":
        return [_semantic(predictor, image, None, None, i) for i, image in enumerate(images)], \
            f"{why}; predictions on {folder} (no ground truth there)"
    return _from_files(predictor, images), f"{why}; predictions on {folder}"


def _validation_data(run: RunRecord, data_root: Path | None) -> tuple[Any, str]:
    from seglab.data import build_dataset  # noqa: PLC0415
    from seglab.engine.tasks import dataset_kwargs  # noqa: PLC0415

    name = run.config.get("dataset")
    data_config = (run.config.get("recipe") or {}).get("data") or {}
    split = data_config.get("val_split") or "val"
    if not name:
        return None, "the checkpoint does not name its dataset"
    try:
        kwargs = dataset_kwargs(run.config.get("task", "semantic"), name, dict(data_config.get("kwargs") or {}))
        data = build_dataset(name, split=split, root=data_root, **kwargs)
    except (SeglabError, OSError) as exc:
        return None, f"dataset {name}/{split} is not readable here ({str(exc).splitlines()[0][:160]})"
    return data, f"the first images of {name}/{split}"


def _semantic(predictor: Any, image: Any, target: Any, data: Any, index: int) -> Sample:
    from seglab.data.base import IGNORE_INDEX  # noqa: PLC0415
    from seglab.data.colours import with_legend  # noqa: PLC0415
    from seglab.data.render import colourize, overlay  # noqa: PLC0415

    rgb = image.permute(1, 2, 0).numpy()
    predicted = predictor.predict(image).numpy()
    colours = predictor.palette
    panels = [rgb]
    present = set(np.unique(predicted).tolist())
    ignored = False
    if target is not None:
        truth = target.numpy().astype(np.int64)
        panels.append(colourize(truth, colours))
        present |= {int(v) for v in np.unique(truth) if v != IGNORE_INDEX}
        ignored = bool((truth == IGNORE_INDEX).any())
    panels.append(overlay(rgb, predicted, colours))
    strip = np.concatenate(panels, axis=1)
    zoom = max(1, MIN_WIDTH // strip.shape[1])  # small images (synthetic, 96 px) drawn bigger, pixels kept sharp
    strip = strip.repeat(zoom, axis=0).repeat(zoom, axis=1)
    title = f"validation image {index}: image | " + ("ground truth | " if target is not None else "") + "prediction"
    return Sample(title, with_legend(strip, predictor.classes, colours, present=sorted(present), ignored=ignored))


def _from_files(predictor: Any, images: list[Any]) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="seglab-report-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, image in enumerate(images):
            PILImage.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"sample_{i:03d}.png")
        written = predictor.predict_files(folder, Path(tmp) / "out")
        return [Sample(f"validation image {i}: prediction", np.asarray(PILImage.open(w.overlay).convert("RGB")))
                for i, w in enumerate(written)]
