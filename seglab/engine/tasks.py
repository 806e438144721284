"""What differs between tasks, in one small adapter each: data, device transfer, evaluation, best metric.

The training loop, ``seglab eval``, ``seglab predict`` and ``seglab bench`` ask the adapter of the
model's task (``model_spec(name).task``, a plain dict lookup) and never branch on the task
themselves. Adding a task means adding an adapter here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seglab.data import collate_instance, collate_panoptic, collate_semantic, eval_transforms, train_transforms
from seglab.data.datasets import dataset_tasks
from seglab.errors import ConfigError
from seglab.registry import model_spec

Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class _Task:
    """What every task shares: the recipe's augmentation chain, and evaluation at the labels' resolution."""

    name: str
    best_metric: str  # the metric (higher is better) that selects the best/ checkpoint

    def train_transforms(self, data: Any) -> Callable[..., Any]:
        return train_transforms(base_size=data.resize, crop_size=data.crop_size, scale_range=data.scale_range,
                                hflip=data.hflip, augment=data.augment, task=self.name)

    def eval_transforms(self, data: Any) -> Callable[..., Any]:
        # Labels stay at their own resolution: semantic models see inputs resized in evaluate(), instance
        # models resize inside and map boxes and masks back to the input. Only input normalisation applies.
        return eval_transforms(augment=data.augment)

    def model_kwargs(self, dataset: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Builder arguments the task takes from the training data (none but panoptic's thing classes)."""
        return {}


@dataclass(frozen=True)
class SemanticTask(_Task):
    """Per-pixel classes: stacked batches, confusion-matrix metrics, best checkpoint by mIoU."""

    name: str = "semantic"
    best_metric: str = "miou"

    def collate(self, batch: list[Any]) -> tuple[Tensor, Tensor]:
        return collate_semantic(batch)

    def to_device(self, images: Any, targets: Any, device: torch.device) -> tuple[Any, Any]:
        return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)

    def evaluate(self, model: nn.Module, loader: Iterable[Any], *, dataset: Any, device: torch.device,
                 input_size: tuple[int, int] | None = None, progress: Progress = None,
                 keep_results: bool = False, inference: Any = None) -> dict[str, Any]:
        """Confusion-matrix metrics; ``inference``: tiles and/or TTA (``sliding_window.InferenceOptions``)."""
        from seglab.engine.evaluate import evaluate

        return evaluate(model, loader, num_classes=dataset.num_classes, device=device, input_size=input_size,
                        progress=progress, inference=inference)

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val mIoU {metrics['miou']:.4f}, pixel acc {metrics['pixel_acc']:.4f}"


@dataclass(frozen=True)
class InstanceTask(_Task):
    """Instances: lists of images and InstanceTargets, COCO box and mask AP, best checkpoint by mask AP."""

    name: str = "instance"
    best_metric: str = "segm_ap"

    def collate(self, batch: list[Any]) -> tuple[list[Tensor], list[Any]]:
        return collate_instance(batch)

    def to_device(self, images: Any, targets: Any, device: torch.device) -> tuple[Any, Any]:
        return _lists_to_device(images, targets, device)

    def evaluate(self, model: nn.Module, loader: Iterable[Any], *, dataset: Any, device: torch.device,
                 input_size: tuple[int, int] | None = None, progress: Progress = None,
                 keep_results: bool = False) -> dict[str, Any]:
        """COCO AP; ``keep_results`` adds every detection ("results", COCO results format)."""
        from seglab.engine.evaluate import evaluate_instances

        return evaluate_instances(model, loader, classes=dataset.classes,
                                  category_ids=getattr(dataset, "category_ids", None), device=device,
                                  progress=progress, keep_results=keep_results)

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"val mask AP {metrics['segm_ap']:.4f}, box AP {metrics['bbox_ap']:.4f}"


@dataclass(frozen=True)
class ProposalTask(InstanceTask):
    """Class-agnostic proposals (``ModelSpec.outputs == "proposals"``: DeepMask, SharpMask): instance data,
    categories ignored, recall at 10 / 100 / 1000 proposals; best checkpoint by mask AR@100."""

    best_metric: str = "segm_ar100"

    def evaluate(self, model: nn.Module, loader: Iterable[Any], *, dataset: Any, device: torch.device,
                 input_size: tuple[int, int] | None = None, progress: Progress = None,
                 keep_results: bool = False) -> dict[str, Any]:
        from seglab.engine.evaluate import evaluate_instances

        return evaluate_instances(model, loader, classes=dataset.classes,
                                  category_ids=getattr(dataset, "category_ids", None), device=device,
                                  progress=progress, keep_results=keep_results, proposals=True)

    def summary(self, metrics: dict[str, Any]) -> str:
        return (f"val mask AR@10/100/1000 {metrics['segm_ar10']:.4f} / {metrics['segm_ar100']:.4f} / "
                f"{metrics['segm_ar1000']:.4f}, box AR {metrics['bbox_ar10']:.4f} / {metrics['bbox_ar100']:.4f} / "
                f"{metrics['bbox_ar1000']:.4f}")


@dataclass(frozen=True)
class PanopticTask(_Task):
    """Stuff and things: lists of images and PanopticTargets, panoptic quality, best checkpoint by PQ."""

    name: str = "panoptic"
    best_metric: str = "pq"

    def collate(self, batch: list[Any]) -> tuple[list[Tensor], list[Any]]:
        return collate_panoptic(batch)

    def to_device(self, images: Any, targets: Any, device: torch.device) -> tuple[Any, Any]:
        return _lists_to_device(images, targets, device)

    def model_kwargs(self, dataset: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The dataset's ``thing_classes`` (panoptic models split things from stuff), unless the recipe sets them."""
        if "thing_classes" in kwargs:
            return {}
        things = getattr(dataset, "thing_classes", None)
        if not things:
            raise ConfigError(f"{getattr(dataset, 'name', type(dataset).__name__)} does not say which classes are "
                              "things; set model.kwargs.thing_classes (class ids) in the recipe")
        return {"thing_classes": [int(c) for c in things]}

    def evaluate(self, model: nn.Module, loader: Iterable[Any], *, dataset: Any, device: torch.device,
                 input_size: tuple[int, int] | None = None, progress: Progress = None,
                 keep_results: bool = False) -> dict[str, Any]:
        """PQ, SQ, RQ for all classes, things and stuff, and per class (``seglab.metrics.panoptic``)."""
        from seglab.engine.evaluate import evaluate_panoptic

        # the model's own split (it may come from the recipe's thing_classes), else the dataset's
        things = getattr(getattr(model, "classes", None), "things", None) or getattr(dataset, "thing_classes", None)
        if not things:
            raise ConfigError("neither the model nor the dataset says which classes are things (thing_classes)")
        return evaluate_panoptic(model, loader, classes=dataset.classes, thing_classes=things, device=device,
                                 progress=progress)

    def summary(self, metrics: dict[str, Any]) -> str:
        return (f"val PQ {metrics['pq']:.4f} (SQ {metrics['sq']:.4f}, RQ {metrics['rq']:.4f}; things "
                f"{metrics['pq_things']:.4f}, stuff {metrics['pq_stuff']:.4f})")


def _lists_to_device(images: list[Tensor], targets: list[Any], device: torch.device) -> tuple[list[Tensor], list[Any]]:
    """Instance and panoptic batches: lists of images and of targets with a ``to(device)``."""
    return [image.to(device, non_blocking=True) for image in images], [t.to(device) for t in targets]


Task = SemanticTask | InstanceTask | PanopticTask
TASKS: dict[str, Task] = {"semantic": SemanticTask(), "instance": InstanceTask(), "panoptic": PanopticTask()}
PROPOSALS = ProposalTask()  # the instance adapter of models whose ModelSpec.outputs is "proposals"


def task_of(model: str) -> Task:
    """The adapter of a registered model's task (instance models that output proposals get ``PROPOSALS``)."""
    spec = model_spec(model)
    if spec.task not in TASKS:
        raise ConfigError(f"{model} is a {spec.task} model; seglab's engine does not train or evaluate {spec.task} "
                          "models yet")
    return PROPOSALS if spec.task == "instance" and spec.outputs == "proposals" else TASKS[spec.task]


def task_of_checkpoint(config: dict[str, Any]) -> Task:
    """The adapter of a checkpoint: its config.json's ``task``, or its model's for older checkpoints."""
    task = config.get("task") or model_spec(config["model"]).task
    if task not in TASKS:
        raise ConfigError(f"the checkpoint holds a {task} model ({config['model']}); seglab cannot evaluate or "
                          f"predict {task} models yet")
    if task == "instance" and model_spec(config["model"]).outputs == "proposals":
        return PROPOSALS
    return TASKS[task]


def dataset_kwargs(task: str, dataset: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The dataset options a task needs: ``task=`` for datasets with several views (COCO, Cityscapes, synthetic).

    Raises:
        ConfigError: the dataset has no view for this task (names the datasets that have one).
    """
    supported = dataset_tasks(dataset)
    if task not in supported:
        from seglab.data import list_datasets

        able = [name for name in list_datasets() if task in dataset_tasks(name)]
        raise ConfigError(f"dataset {dataset!r} has no {task} annotations; {task} models train on "
                          f"{', '.join(able)}")
    if len(supported) > 1 and "task" not in kwargs:
        return {**kwargs, "task": task}
    return dict(kwargs)

