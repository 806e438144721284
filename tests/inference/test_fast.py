"""Inference fast paths: precision choice from the CPU flags, batch-norm folding, bf16 on a trained checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import seglab
from seglab.engine.evaluate import evaluate
from seglab.errors import ConfigError
from seglab.inference import fast
from seglab.inference.fast import fast_model, fold_batchnorm, resolve_precision
from seglab.structures import SemanticPrediction


def _flags(monkeypatch: pytest.MonkeyPatch, flags: list[str]) -> None:
    monkeypatch.setattr(fast, "describe_machine", lambda: {"cpu_flags": flags})


def test_auto_precision_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, ["avx2", "avx512f", "avx512_bf16"])
    assert resolve_precision("auto", "cpu") == ("bf16", None)
    _flags(monkeypatch, ["avx2", "amx_bf16"])
    assert resolve_precision("auto", "cpu") == ("bf16", None)
    _flags(monkeypatch, ["avx2"])
    precision, why = resolve_precision("auto", "cpu")
    assert precision == "fp32" and "neither AVX512-BF16 nor AMX" in why
    assert resolve_precision("bf16", "cpu") == ("bf16", None)  # asked for: honoured (emulated where no bf16 ISA)


def test_bad_precisions_are_refused() -> None:
    with pytest.raises(ConfigError, match="use one of auto, fp32, bf16, fp16"):
        resolve_precision("half", "cpu")
    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        resolve_precision("fp16", "cpu")


def _randomise_batch_norms(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)


def test_folding_keeps_the_outputs_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=3, base_channels=4, batch_norm=True).eval()
    _randomise_batch_norms(model)
    x = torch.rand(1, 3, 64, 64)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        folded, count, note = fold_batchnorm(model, example=x)
        assert count == before and note is None
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == before  # the original is untouched
        torch.testing.assert_close(folded(x).logits, model(x).logits, rtol=1e-4, atol=1e-5)


class _SharedConvOutput(nn.Module):
    """The conv output feeds the batch norm and a skip connection: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> SemanticPrediction:
        y = self.conv(x)
        return SemanticPrediction(logits=self.head(self.bn(y) + y))


def test_folding_is_undone_when_it_would_change_the_outputs() -> None:
    model = _SharedConvOutput().eval()
    _randomise_batch_norms(model)
    with torch.no_grad():
        same, count, note = fold_batchnorm(model, example=torch.rand(1, 3, 16, 16))
    assert same is model and count == 0 and "changed the outputs" in note


@pytest.fixture(scope="module")
def trained_unet() -> tuple[nn.Module, object]:
    """A U-Net trained for 320 steps on synthetic shapes (real decision boundaries, not random init)."""
    torch.manual_seed(0)
    from seglab.data import build_dataset
    from seglab.data.collate import collate_semantic

    train = build_dataset("synthetic", split="train", num_images=64, size=(48, 64))
    model = seglab.create_model("unet", num_classes=train.num_classes, base_channels=8, batch_norm=True)
    loader = DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate_semantic)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(40):  # 320 steps, ~16 s (192 left val mIoU at 0.299 on one CPU, 0.3+ on another)
        for images, targets in loader:
            losses = model(images, targets)
            optimiser.zero_grad()
            sum(losses.values()).backward()
            optimiser.step()
    return model.eval(), build_dataset("synthetic", split="val", num_images=16, size=(48, 64))


def test_bf16_keeps_the_labels_and_the_miou_of_a_trained_checkpoint(trained_unet: tuple[nn.Module, object]) -> None:
    from seglab.data.collate import collate_semantic

    model, val = trained_unet
    loader = DataLoader(val, batch_size=4, collate_fn=collate_semantic)
    reference = evaluate(model, loader, num_classes=val.num_classes, device=torch.device("cpu"))
    assert reference["miou"] > 0.3  # trained (random init ~0.15; 0.326 measured): it compares real decisions
    bf16 = fast_model(model, device="cpu", precision="bf16")
    result = evaluate(bf16, loader, num_classes=val.num_classes, device=torch.device("cpu"))
    assert abs(result["miou"] - reference["miou"]) < 0.005
    agree = total = 0
    with torch.no_grad():
        for images, _ in loader:
            agree += (bf16(images).logits.argmax(1) == model(images).logits.argmax(1)).sum().item()
            total += images.shape[0] * images.shape[2] * images.shape[3]
    assert agree / total >= 0.995



@pytest.fixture(scope="module")
def saved_unet(tmp_path_factory: pytest.TempPathFactory) -> object:
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=3, base_channels=4, batch_norm=True).eval()
    _randomise_batch_norms(model)
    return seglab.save(model, tmp_path_factory.mktemp("fast") / "unet", input_size=(64, 96))


def test_predictor_runs_the_fast_paths_by_default_and_the_model_as_loaded_with_fast_off(
        saved_unet: object, monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, ["avx2"])  # a CPU without bf16: auto is fp32, so labels must match exactly
    image = (torch.rand(3, 50, 70) * 255).to(torch.uint8)
    default = seglab.Predictor(saved_unet)
    assert default.fast_paths.channels_last and default.fast_paths.folded_bn > 0
    assert default.fast_paths.precision == "fp32" and "neither AVX512-BF16 nor AMX" in default.fast_paths.describe()
    plain = seglab.Predictor(saved_unet, fast=False)
    assert plain.runner is plain.model and plain.fast_paths.describe().startswith("fp32, contiguous")
    assert torch.equal(default.predict(image), plain.predict(image))
    bf16 = seglab.Predictor(saved_unet, precision="bf16")
    assert bf16.fast_paths.precision == "bf16"
    assert (bf16.predict(image) == plain.predict(image)).float().mean() > 0.95  # random weights: close, not equal


def test_fast_path_flags_are_checked(saved_unet: object, tmp_path: object) -> None:
    from PIL import Image

    from seglab.cli.app import run

    with pytest.raises(ConfigError, match="use one of auto, fp32, bf16, fp16"):
        seglab.Predictor(saved_unet, precision="half")
    with pytest.raises(ConfigError, match="use one of"):
        seglab.Predictor(saved_unet, precision="half", fast=False)
    Image.new("RGB", (40, 30), (90, 120, 30)).save(tmp_path / "a.png")
    assert run(["predict", str(saved_unet), str(tmp_path / "a.png"), "--out", str(tmp_path / "p"),
                "--precision", "fp32", "--no-fast"]) == 0
    assert (tmp_path / "p" / "a.png").exists()
    assert run(["predict", str(saved_unet), str(tmp_path / "a.png"), "--out", str(tmp_path / "q"),
                "--precision", "fp16"]) == 2  # fp16 on a CPU: a one-line error, exit code 2
    small = seglab.model_spec("mask_rcnn_resnet50_fpn").test_kwargs
    mask_rcnn = seglab.save(seglab.create_model("mask_rcnn_resnet50_fpn", num_classes=3, **small), tmp_path / "mrcnn")
    assert seglab.Predictor(mask_rcnn, precision="bf16").fast_paths.precision == "bf16"  # Mask R-CNN names its stages
    with pytest.raises(ConfigError, match="compile .*apply to semantic models"):
        seglab.Predictor(mask_rcnn, compile=True)
    assert run(["predict", str(mask_rcnn), str(tmp_path / "a.png"), "--out", str(tmp_path / "r"),
                "--precision", "bf16"]) == 0
    assert run(["predict", str(mask_rcnn), str(tmp_path / "a.png"), "--out", str(tmp_path / "s"),
                "--compile"]) == 2  # instance models run eagerly: a one-line error
