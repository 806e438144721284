"""Any semantic model plus any instance model, merged into panoptic output by the Panoptic FPN heuristic.

Kirillov, He, Girshick, Rother, Dollar, "Panoptic Segmentation" (arXiv 1801.00868), sec. 7: the
first panoptic baselines combine the outputs of two independent networks, a semantic one (PSPNet)
for stuff and an instance one (Mask R-CNN) for things, with a non-maximum-suppression-like
heuristic; ``seglab.models.panoptic.fusion`` is that heuristic as the authors released it for
Panoptic FPN. So every registered semantic and instance model of seglab gives panoptic output.

The semantic model predicts all C classes of the dataset (its thing classes only steer which
pixels are stuff); the instance model predicts the thing classes as labels 1..T. Trained jointly
(``model(images, targets)`` returns both models' loss terms, the semantic ones prefixed
``loss_sem_``), or assembled from two trained models with ``SemanticInstanceFusion.from_models``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from seglab.errors import ConfigError
from seglab.models.instance.inputs import as_image_list
from seglab.models.panoptic.fusion import FusionSettings, PanopticClasses, fuse_panoptic
from seglab.models.panoptic.inputs import as_panoptic_targets, semantic_batch
from seglab.registry import ModelSpec, create_model, model_spec, register_model
from seglab.structures import PanopticPrediction


class SemanticInstanceFusion(nn.Module):
    """(semantic model, instance model) -> fusion.

    Args:
        semantic: a seglab semantic model with C classes ([N, 3, H, W] -> SemanticPrediction).
        instance: a seglab instance model with T + 1 classes (list of images -> InstancePrediction).
        classes: the dataset's classes and which are things.
        fusion: the merge thresholds.
    """

    def __init__(self, *, semantic: nn.Module, instance: nn.Module, classes: PanopticClasses,
                 fusion: FusionSettings | None = None) -> None:
        super().__init__()
        self.semantic, self.instance = semantic, instance
        self.classes, self.fusion = classes, fusion or FusionSettings()

    @classmethod
    def from_models(cls, semantic: nn.Module, instance: nn.Module, *, thing_classes: Iterable[int],
                    fusion: FusionSettings | None = None) -> SemanticInstanceFusion:
        """Assemble two built (e.g. separately trained) models; their class counts must fit ``thing_classes``."""
        num_classes = int(getattr(semantic, "num_classes", 0))
        classes = PanopticClasses(num_classes, thing_classes)
        labels = int(getattr(instance, "num_classes", 0))
        if labels != classes.num_instance_labels:
            raise ConfigError(f"the instance model has {labels} classes but {len(classes.things)} thing classes need "
                              f"{classes.num_instance_labels} (background + things, labels 1..T in thing_classes order)")
        return cls(semantic=semantic, instance=instance, classes=classes, fusion=fusion)

    def forward(self, images: Any, targets: Any = None) -> list[PanopticPrediction] | dict[str, Tensor]:
        name = type(self).__name__
        images = as_image_list(images, model=name)
        if targets is None:
            return [self._predict(image) for image in images]
        panoptic = as_panoptic_targets(targets, images, model=name, classes=self.classes)
        losses = self.instance(images, [self.classes.instance_target(t) for t in panoptic])
        sizes = [tuple(image.shape[-2:]) for image in images]
        padded = (max(h for h, _ in sizes), max(w for _, w in sizes))
        batch = images[0].new_zeros(len(images), 3, *padded)
        for i, image in enumerate(images):
            batch[i, :, : image.shape[-2], : image.shape[-1]] = image
        labels = semantic_batch([t.semantic for t in panoptic], sizes, padded)
        semantic_losses = self.semantic(batch, labels)
        return {**losses, **{f"loss_sem_{k.removeprefix('loss_')}": v for k, v in semantic_losses.items()}}

    def cost_forward(self, images: Tensor) -> None:
        """Both models' inference computation (the instance model's at its fixed load, ``cost_forward``)."""
        self.semantic(images)
        getattr(self.instance, "cost_forward", self.instance)(images)

    def _predict(self, image: Tensor) -> PanopticPrediction:
        instances = self.instance([image])[0]
        stuff = self.semantic(image[None]).logits[0].argmax(0)
        return fuse_panoptic(instances, stuff, self.classes, self.fusion)


def semantic_instance_fusion(
    *, num_classes: int, semantic: str = "pspnet_resnet50", instance: str = "mask_rcnn_resnet50_fpn",
    thing_classes: Sequence[int] | None = None, semantic_kwargs: dict[str, Any] | None = None,
    instance_kwargs: dict[str, Any] | None = None, instance_score_threshold: float = 0.5,
    overlap_threshold: float = 0.5, stuff_area_limit: int = 4096,
) -> SemanticInstanceFusion:
    """Build a panoptic model from two registered models.

    Args:
        num_classes: C, the dataset's classes.
        semantic, instance: registered model names (``seglab models --task semantic`` / ``--task instance``).
        thing_classes: the class ids that are things (the engine passes the dataset's); default 1..C-1.
        semantic_kwargs, instance_kwargs: their builder arguments (e.g. ``{"backbone": "resnet18"}``).
        instance_score_threshold, overlap_threshold, stuff_area_limit: the fusion (``FusionSettings``).
    """
    for role, name, task in (("semantic", semantic, "semantic"), ("instance", instance, "instance")):
        if model_spec(name).task != task:
            raise ConfigError(f"{role}={name!r} is a {model_spec(name).task} model; pick a {task} model "
                              f"(seglab models --task {task})")
    things = list(range(1, num_classes)) if thing_classes is None else [int(c) for c in thing_classes]
    classes = PanopticClasses(num_classes, things)
    model = SemanticInstanceFusion(
        semantic=create_model(semantic, num_classes=num_classes, **(semantic_kwargs or {})),
        instance=create_model(instance, num_classes=classes.num_instance_labels, **(instance_kwargs or {})),
        classes=classes, fusion=FusionSettings(instance_score_threshold, overlap_threshold, stuff_area_limit),
    )
    model.rebuild_kwargs = {"thing_classes": things, "instance_kwargs": {
        **(instance_kwargs or {}), **getattr(model.instance, "rebuild_kwargs", {})}}
    return model


register_model(
    ModelSpec(
        task="panoptic", paper="Panoptic Segmentation", arxiv="1801.00868", year=2019,
        survey_row="panoptic segmentation", exportable=False,
        export_note="its instance model has a data-dependent number of detections; use the PyTorch model",
        # the terms of its default pair's families: Mask R-CNN's, then the semantic model's prefixed loss_sem_
        loss_terms=("loss_rpn_objectness", "loss_rpn_box", "loss_cls", "loss_box_reg", "loss_mask", "loss_sem_ce"),
        test_kwargs={"semantic": "unet", "semantic_kwargs": {"base_channels": 8}, "instance": "mask_rcnn_resnet50_fpn",
                     "instance_kwargs": dict(model_spec("mask_rcnn_resnet50_fpn").test_kwargs), "stuff_area_limit": 16},
    ),
    name="semantic_instance_fusion",
)(semantic_instance_fusion)
