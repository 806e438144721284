"""The contract every registered model keeps (STYLE.md): run over the whole registry."""

from __future__ import annotations

import pytest
import torch

import seglab
from seglab.engine.checkpoint import load_model, save_weights
from seglab.errors import ConfigError, InputError
from seglab.inference.onnx_export import export_onnx
from seglab.structures import SemanticPrediction

SEMANTIC = seglab.list_models(task="semantic")
NUM_CLASSES = 3


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return seglab.create_model(name, num_classes=NUM_CLASSES, **seglab.model_spec(name).test_kwargs)


def batch(n: int = 2, h: int = 37, w: int = 45) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, h, w, generator=gen)
    targets = torch.randint(0, NUM_CLASSES, (n, h, w), generator=gen)
    targets[:, :3] = 255  # some ignored pixels
    return images, targets


@pytest.mark.parametrize("name", SEMANTIC)
def test_logits_at_input_resolution_for_odd_sizes(name: str) -> None:
    model = build(name).eval()
    for h, w in [(37, 45), (64, 33)]:
        out = model(torch.rand(1, 3, h, w))
        assert isinstance(out, SemanticPrediction)
        assert out.logits.shape == (1, NUM_CLASSES, h, w)
        assert out.labels.shape == (1, h, w)


@pytest.mark.parametrize("name", SEMANTIC)
def test_every_parameter_gets_a_finite_gradient(name: str) -> None:
    model = build(name).train()
    images, targets = batch()
    losses = model(images, targets)
    assert losses and all(k.startswith("loss_") for k in losses)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not without, f"{name}: parameters without a finite gradient: {without}"


@pytest.mark.parametrize("name", SEMANTIC)
def test_eval_is_deterministic(name: str) -> None:
    model = build(name).eval()
    images, _ = batch()
    torch.testing.assert_close(model(images).logits, model(images).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", SEMANTIC)
def test_bad_input_raises_input_error(name: str) -> None:
    model = build(name).eval()
    images, targets = batch()
    bad = {
        "3-D tensor": (images[0], None),
        "wrong channels": (images[:, :1], None),
        "integer images": ((images * 255).to(torch.uint8), None),
        "empty batch": (images[:0], None),
        "targets of another size": (images, targets[:, :-1]),
        "float targets": (images, targets.float()),
        "label beyond num_classes": (images, torch.full_like(targets, NUM_CLASSES)),
    }
    for case, (x, y) in bad.items():
        with pytest.raises(InputError) as info:
            model(x) if y is None else model.train()(x, y)
        assert name.split("_")[0][:3].lower() in str(info.value).lower() or "images" in str(info.value), case


@pytest.mark.parametrize("name", SEMANTIC)
def test_safetensors_round_trip(name: str, tmp_path) -> None:
    model = build(name).eval()
    config = {"model": name, "num_classes": NUM_CLASSES, "model_kwargs": seglab.model_spec(name).test_kwargs}
    save_weights(model, tmp_path, config)
    loaded, loaded_config = load_model(tmp_path)
    assert loaded_config["model"] == name
    images, _ = batch()
    torch.testing.assert_close(loaded(images).logits, model(images).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", SEMANTIC)
def test_onnx_matches_eager_at_another_size(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = build(name).eval()
    if not seglab.model_spec(name).exportable:
        with pytest.raises(ConfigError):
            export_onnx(model, tmp_path / "m.onnx")
        return
    path = export_onnx(model, tmp_path / "m.onnx", sample_size=(67, 91))
    session = ort.InferenceSession(str(path))
    images = torch.rand(3, 3, 40, 52)
    (logits,) = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), model(images).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", SEMANTIC)
def test_spec_metadata(name: str) -> None:
    spec = seglab.model_spec(name)
    assert spec.name == name and spec.task == "semantic"
    assert spec.paper and spec.arxiv and 2010 < spec.year < 2030
    from seglab.recipes import recipes_for

    assert any(r.endswith("_camvid_cpu") for r in recipes_for(name)), f"{name} has no CPU recipe"


@pytest.mark.parametrize("name", [n for n in SEMANTIC if seglab.model_spec(n).reference_params])
def test_parameter_count_matches_the_paper(name: str) -> None:
    spec = seglab.model_spec(name)
    with torch.device("meta"):  # counting needs shapes only
        model = seglab.create_model(name, **spec.reference_kwargs)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - spec.reference_params) / spec.reference_params < 0.02, f"{name}: {params / 1e6:.2f} M"


def test_unknown_model_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="fcn8s_vgg16") as info:
        seglab.create_model("fcn8_vgg16", num_classes=2)
    assert "seglab models" in str(info.value)


def test_unknown_builder_argument_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base_chanels"):
        seglab.create_model("unet", num_classes=2, base_chanels=8)
