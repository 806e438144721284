"""The contract every registered panoptic model keeps, run over the whole registry.

Built with ``ModelSpec.test_kwargs`` and fed synthetic panoptic shapes (class 0 stuff, 1-3 things):
predictions at the input size for odd sizes and lists, a finite gradient for every trainable
parameter and the declared loss terms, eval determinism, an image without things, bad input naming
the field, a safetensors round trip, and a clear ONNX refusal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import seglab
from seglab.data import build_dataset, collate_panoptic
from seglab.engine.checkpoint import load_model, save_weights
from seglab.errors import ConfigError, InputError
from seglab.inference.onnx_export import export_onnx
from seglab.structures import PanopticPrediction, PanopticTarget

PANOPTIC = seglab.list_models(task="panoptic")
NUM_CLASSES, THINGS = 4, [1, 2, 3]


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model(name, num_classes=NUM_CLASSES, thing_classes=THINGS,
                               **seglab.model_spec(name).test_kwargs)


def samples(n: int = 2, size: tuple[int, int] = (64, 96)) -> tuple[list[torch.Tensor], list[PanopticTarget]]:
    data = build_dataset("synthetic", split="train", task="panoptic", num_images=n, size=size)
    return collate_panoptic([data[i] for i in range(n)])


def check_prediction(prediction: PanopticPrediction, height: int, width: int) -> None:
    assert isinstance(prediction, PanopticPrediction)
    assert prediction.semantic.shape == (height, width) and prediction.semantic.dtype == torch.int64
    values = set(prediction.semantic.unique().tolist())
    assert values <= {0, 1, 2, 3, 255}, values
    things = torch.isin(prediction.semantic, torch.tensor(THINGS))
    assert bool((prediction.instance_ids[~things] == 0).all()), "stuff and void carry instance id 0"
    assert bool((prediction.instance_ids[things] > 0).all()), "every thing pixel belongs to an instance"


def test_the_registry_has_panoptic_fpn_and_the_fusion_of_any_two_models() -> None:
    assert {"panoptic_fpn_resnet50", "semantic_instance_fusion"} <= set(PANOPTIC)


@pytest.mark.parametrize("name", PANOPTIC)
def test_predictions_at_input_resolution_for_odd_sizes_and_lists(name: str) -> None:
    model = build(name).eval()
    images = [torch.rand(3, 37, 45), torch.rand(3, 64, 33)]
    with torch.no_grad():
        predictions = model(images)
        batched = model(torch.rand(2, 3, 40, 52))
    assert len(predictions) == 2 and len(batched) == 2
    for prediction, image in zip(predictions, images):
        check_prediction(prediction, *image.shape[-2:])
    for prediction in batched:
        check_prediction(prediction, 40, 52)


@pytest.mark.parametrize("name", PANOPTIC)
def test_every_trainable_parameter_gets_a_finite_gradient(name: str) -> None:
    model = build(name).train()
    images, targets = samples()
    losses = model(images, targets)
    assert tuple(losses) == seglab.model_spec(name).loss_terms, "declare the loss terms in the ModelSpec"
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    without = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not without, f"{name}: parameters without a finite gradient: {without}"


@pytest.mark.parametrize("name", PANOPTIC)
def test_eval_is_deterministic_and_an_image_without_things_trains(name: str) -> None:
    model = build(name).eval()
    images, targets = samples()
    with torch.no_grad():
        first, second = model(images), model(images)
    for a, b in zip(first, second):
        assert torch.equal(a.semantic, b.semantic) and torch.equal(a.instance_ids, b.instance_ids)
    stuff_only = PanopticTarget(semantic=torch.zeros_like(targets[0].semantic),
                                instance_ids=torch.zeros_like(targets[0].instance_ids))
    losses = model.train()(images, [stuff_only, targets[1]])
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()


@pytest.mark.parametrize("name", PANOPTIC)
def test_bad_input_raises_input_error_naming_the_field(name: str) -> None:
    model = build(name).train()
    images, targets = samples()
    t = targets[0]
    cases = {
        "semantic holds classes": dict(semantic=torch.full_like(t.semantic, NUM_CLASSES), instance_ids=t.instance_ids),
        "instance_ids": dict(semantic=t.semantic, instance_ids=t.instance_ids[:-1]),
        "labels must be at the image size": PanopticTarget(t.semantic[:-1], t.instance_ids[:-1]),
        "semantic and instance_ids": {"masks": t.semantic},
    }
    for words, target in cases.items():
        with pytest.raises(InputError) as info:
            model(images[:1], [target])
        assert words in str(info.value) and "targets[0]" in str(info.value), (words, str(info.value))
    with pytest.raises(InputError, match="targets"):
        model(images, targets[:1])
    with pytest.raises(InputError, match="images"):
        model.eval()([images[0][0]])


def test_thing_classes_are_checked() -> None:
    with pytest.raises(ConfigError, match="thing_classes"):
        seglab.create_model("panoptic_fpn_resnet50", num_classes=4, thing_classes=[5])
    with pytest.raises(ConfigError, match="unknown argument 'fpn_chanels'"):
        seglab.create_model("panoptic_fpn_resnet50", num_classes=4, fpn_chanels=8)
    with pytest.raises(ConfigError, match="instance model"):
        seglab.create_model("semantic_instance_fusion", num_classes=4, semantic="mask_rcnn_resnet50_fpn")


@pytest.mark.parametrize("name", PANOPTIC)
def test_safetensors_round_trip(name: str, tmp_path: Path) -> None:
    model = build(name).eval()
    save_weights(model, tmp_path, {"model": name, "num_classes": NUM_CLASSES,
                                   "model_kwargs": {**seglab.model_spec(name).test_kwargs, **model.rebuild_kwargs}})
    loaded, _ = load_model(tmp_path)
    images, _ = samples()
    with torch.no_grad():
        for a, b in zip(model(images), loaded(images)):
            assert torch.equal(a.semantic, b.semantic) and torch.equal(a.instance_ids, b.instance_ids)


@pytest.mark.parametrize("name", PANOPTIC)
def test_onnx_a_clear_refusal_and_spec_metadata(name: str, tmp_path: Path) -> None:
    spec = seglab.model_spec(name)
    assert spec.task == "panoptic" and spec.paper and spec.arxiv and spec.survey_row
    assert not spec.exportable and spec.export_note
    with pytest.raises(ConfigError, match="cannot be exported") as info:
        export_onnx(build(name).eval(), tmp_path / "m.onnx")
    assert spec.export_note in str(info.value)
    from seglab.recipes import load_recipe, recipes_for

    cpu = [r for r in recipes_for(name) if r.endswith("_synthetic_cpu")]
    assert cpu and load_recipe(cpu[0]).data.dataset == "synthetic", f"{name} has no *_synthetic_cpu recipe"
