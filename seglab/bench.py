"""The model comparison behind `seglab bench`: cost, CPU latency and a score after a CPU budget per model.

For every registered model of a task (semantic by default, ``task="instance"`` or ``"panoptic"``),
one row:

- ``params_M`` and ``gflops``: the paper configuration (default builder arguments), 21 classes,
  one 360x480 image, counted on the meta device (``seglab.models.cost``);
- ``latency_s``: the median eval-mode forward of that configuration on one random 360x480 image
  (batch 1) on the CPU with the given number of threads, after one warm-up run; semantic models run
  with the inference fast paths of ``seglab predict`` (``precision``: ``auto`` by default, see
  ``seglab.inference.fast``), instance and panoptic models in fp32 as built;
- ``miou`` / ``pixel_acc`` on CamVid val after training the model's CPU variant
  (``<model>_camvid_cpu`` recipe) under the one budget those recipes share
  (``recipes/_camvid_cpu_budget.yaml``), with ``cpu_params_M`` the variant's size and ``train_s``
  its wall time; for instance models ``mask_ap`` / ``box_ap`` (COCO AP@[.5:.95]), ``mask_ar100`` and
  ``box_ar100`` (and, for proposal models, class-agnostic ``mask_ar10`` / ``mask_ar1000``),
  for panoptic models ``pq`` / ``sq`` / ``rq`` (with the things / stuff PQ), on synthetic val after
  the ``<model>_synthetic_cpu`` recipe (all 400 steps of 4 images at 96x128: one budget per task).

Training results are kept in ``<out>/<model>/bench.json`` with the recipe they came from, and reused
while the recipe is unchanged, so an interrupted bench continues where it stopped and the table
can be rebuilt from the result files.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from seglab.formatting import json_safe
from seglab.inference.fast import fast_model
from seglab.inference.fast_instance import fast_instance_model
from seglab.models.cost import COST_SIZE, model_cost
from seglab.recipes import load_recipe, model_kwargs, recipes_for
from seglab.registry import create_model, list_models, model_spec

CPU_SUFFIX = {"semantic": "_camvid_cpu", "instance": "_synthetic_cpu", "panoptic": "_synthetic_cpu"}
CPU_CLASSES = {"semantic": 11, "instance": 4, "panoptic": 4}  # CamVid's classes; synthetic shapes + background
SCORES = {"semantic": ("miou", "pixel_acc"),
          "instance": ("mask_ap", "box_ap", "mask_ar10", "mask_ar100", "mask_ar1000", "box_ar100"),
          "panoptic": ("pq", "sq", "rq", "pq_things", "pq_stuff")}  # columns per task
BUDGET_RECIPE = "_camvid_cpu_budget"
COST_CLASSES = 21  # PASCAL VOC's 20 classes + background, as `seglab models` reports
RESULT_FILE = "bench.json"

__all__ = ["BenchRow", "cpu_recipe_for", "measure_latency", "run_bench", "train_row"]


@dataclass
class BenchRow:
    """One model's figures; ``None`` where a measurement was not requested or not possible."""

    model: str
    params_M: float
    gflops: float | None
    latency_s: float | None = None
    cpu_recipe: str | None = None
    cpu_params_M: float | None = None
    train_s: float | None = None
    miou: float | None = None
    pixel_acc: float | None = None
    mask_ap: float | None = None
    box_ap: float | None = None
    mask_ar10: float | None = None  # proposal models (DeepMask, SharpMask): recall at 10 / 1000 proposals
    mask_ar100: float | None = None
    mask_ar1000: float | None = None
    box_ar100: float | None = None
    pq: float | None = None
    sq: float | None = None
    rq: float | None = None
    pq_things: float | None = None
    pq_stuff: float | None = None


def cpu_recipe_for(model: str) -> str | None:
    """The shipped CPU recipe (``*_camvid_cpu``, or ``*_synthetic_cpu`` for instance and panoptic models), or None."""
    if model not in list_models():
        return None
    suffix = CPU_SUFFIX[model_spec(model).task]
    return next((name for name in recipes_for(model) if name.endswith(suffix)), None)


def measure_latency(model: str, *, size: tuple[int, int] = COST_SIZE, repeats: int = 3,
                    num_classes: int = COST_CLASSES, precision: str = "auto") -> float:
    """Median seconds of one eval forward of ``model`` (default arguments) on one ``size`` image; a semantic
    model through ``fast_model``, an instance model through ``fast_instance_model`` (only one that names its
    ``autocast_stages`` changes) at ``precision`` (``"off"``: the model as built, fp32 contiguous).

    A second stage built without a proposer (SDS, MultiPath: ``proposer`` None) is timed on its fixed
    load, ``cost_forward`` (SDS 2000 regions, MultiPath 400 proposals; the proposer not included).
    """
    torch.manual_seed(0)
    net = create_model(model, num_classes=num_classes).eval()
    forward = net.cost_forward if getattr(net, "proposer", True) is None else net
    images = torch.rand(1, 3, *size)
    task = model_spec(model).task
    if task == "semantic" and precision != "off":
        forward = fast_model(net, device="cpu", precision=precision, example=images)
    elif task == "instance" and precision != "off" and forward is net:  # Mask R-CNN; others stay as built
        forward = fast_instance_model(net, device="cpu", precision=precision, example=images[0])[0]
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            start = time.perf_counter()
            forward(images)
            if i:  # the first run warms up allocators and kernels
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_row(recipe_name: str, *, out_dir: Path, overrides: list[str] | None = None, force: bool = False,
              console: Any = None, progress: bool = True) -> dict[str, Any]:
    """Train ``recipe_name`` (with ``overrides``) into ``out_dir`` and return its result record.

    The record (``out_dir/bench.json``) holds the validated recipe, the final val metrics, steps,
    seconds, torch version and thread count. An existing record for the same recipe is returned
    without training unless ``force``.
    """
    from seglab.engine.train import train  # the engine is only needed when training

    recipe = load_recipe(recipe_name, overrides=overrides)
    record_path = out_dir / RESULT_FILE
    config = recipe.model_dump(mode="json")
    if record_path.is_file() and not force:
        record = json.loads(record_path.read_text())
        if record.get("recipe") == config:
            return record
    if out_dir.exists():  # a stale or interrupted run: start over rather than resume a different recipe
        for path in sorted(out_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    result = train(recipe, out_dir=out_dir, device="cpu", console=console, progress=progress)
    record = {
        "recipe_name": recipe_name,
        "recipe": config,
        "steps": result.steps,
        "seconds": result.seconds,
        "miou": result.metrics.get("miou"),
        "pixel_acc": result.metrics.get("pixel_acc"),
        "per_class_iou": result.metrics.get("per_class_iou"),
        "mask_ap": result.metrics.get("segm_ap"),
        "box_ap": result.metrics.get("bbox_ap"),
        "mask_ar100": result.metrics.get("segm_ar100"),
        "mask_ar10": result.metrics.get("segm_ar10"),  # proposal models only (class-agnostic recall)
        "mask_ar1000": result.metrics.get("segm_ar1000"),
        "box_ar100": result.metrics.get("bbox_ar100"),
        # the survey's Table 8 columns: mask AP at IoU .50:.95, .50 and .75
        "ap": result.metrics.get("segm_ap"),
        "ap50": result.metrics.get("segm_ap50"),
        "ap75": result.metrics.get("segm_ap75"),
        **{k: result.metrics.get(k) for k in SCORES["panoptic"]},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    record_path.write_text(json.dumps(json_safe(record), indent=2) + "\n")
    return record


def run_bench(
    models: Iterable[str] | None = None,
    *,
    latency: bool = True,
    train: bool = False,
    out_dir: str | Path = "runs/bench",
    overrides: list[str] | None = None,
    repeats: int = 3,
    force: bool = False,
    console: Any = None,
    progress: bool = True,
    on_row: Callable[[BenchRow], None] | None = None,
    task: str = "semantic",
    precision: str = "auto",
) -> list[BenchRow]:
    """Measure ``models`` (default: every model of ``task``) and return one row each.

    Args:
        latency: time the paper configuration on the CPU (threads as set by the caller).
        train: train each model's ``*_camvid_cpu`` recipe (results cached under ``out_dir``).
        overrides: ``key=value`` recipe overrides applied to every training run (e.g. a shorter
            ``schedule.steps`` for a smoke run); they become part of the cached record.
        on_row: called with each row as soon as it is complete (progress output).
        precision: the inference fast paths of semantic models' latency (``measure_latency``).
    """
    rows = []
    for name in list(models) if models is not None else list_models(task=task):
        params, gflops = model_cost(name, num_classes=COST_CLASSES)
        row = BenchRow(model=name, params_M=params / 1e6, gflops=gflops)
        if latency:
            row.latency_s = measure_latency(name, repeats=repeats, precision=precision)
        row.cpu_recipe = cpu_recipe_for(name)
        if row.cpu_recipe is not None:
            recipe = load_recipe(row.cpu_recipe, overrides=overrides)
            with torch.device("meta"):
                variant = create_model(name, num_classes=CPU_CLASSES[model_spec(name).task], **model_kwargs(recipe))
            row.cpu_params_M = sum(p.numel() for p in variant.parameters()) / 1e6
            if train:
                record = train_row(row.cpu_recipe, out_dir=Path(out_dir) / name, overrides=overrides,
                                   force=force, console=console, progress=progress)
                row.train_s = record["seconds"]
                for score in SCORES[model_spec(name).task]:
                    setattr(row, score, record.get(score))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def rows_as_dicts(rows: list[BenchRow]) -> list[dict[str, Any]]:
    """Rows as plain dicts (for JSON / CSV / Markdown output), with the score columns of their task."""
    other = {task: [s for t, scores in SCORES.items() if t != task for s in scores] for task in SCORES}
    out = []
    for row in rows:
        task = model_spec(row.model).task if row.model in list_models() else "semantic"
        out.append({k: v for k, v in asdict(row).items() if k not in other.get(task, [])})
    return out
