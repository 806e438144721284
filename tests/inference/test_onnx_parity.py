"""One preprocessing everywhere: the exported ONNX graph and `seglab predict` give the same labels on CamVid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import seglab
from conftest import require_dataset
from seglab.cli.app import run
from seglab.data import build_dataset, read_image
from seglab.engine.evaluate import predict_logits
from seglab.layers.upsample import resize_input


@pytest.fixture(scope="module")
def reduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net trained for a few steps on CamVid at 120x160 (config.json input_size), as the CPU recipes do."""
    require_dataset("camvid")
    out = tmp_path_factory.mktemp("onnx") / "run"
    assert run(["train", "--recipe", "unet_camvid_cpu", "--out", str(out), "--quiet", "--set", "schedule.steps=12",
                "--set", "model.kwargs.base_channels=8", "--set", "data.val_split=null"]) == 0
    return out / "final"


def test_onnx_and_predict_agree_on_camvid(reduced: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    images = [build_dataset("camvid", split="val").files(i)[0] for i in range(3)]
    assert run(["export", str(reduced), "--out", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["seglab.input_size"] == "120x160"
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    agree = total = 0
    for path in images:
        assert run(["predict", str(reduced), str(path), "--out", str(tmp_path / "p")]) == 0
        predicted = np.asarray(Image.open(tmp_path / "p" / f"{Path(path).stem}.png"))
        image = read_image(path).float()[None].numpy() / 255
        labels = session.run(None, {"images": image})[0].argmax(1)[0]
        assert labels.shape == predicted.shape == (360, 480)
        agree += int((labels == predicted).sum())
        total += labels.size
        # Beyond the labels (a briefly trained model may predict few classes): the logits themselves.
        model = seglab.load(reduced)
        with torch.no_grad():
            ours = predict_logits(model, torch.from_numpy(image), input_size=(120, 160)).numpy()
            native = model(torch.from_numpy(image)).logits.numpy()  # what the graph computed before
        theirs = session.run(None, {"images": image})[0]
        assert np.abs(theirs - ours).max() < 1e-3
        assert np.abs(native - ours).max() > 100 * np.abs(theirs - ours).max()  # the resize matters
    assert agree / total >= 0.999, agree / total


def test_eval_predict_and_training_resize_alike() -> None:
    from torchvision.transforms import v2

    image = torch.randint(0, 256, (3, 90, 130), dtype=torch.uint8)
    trained_on = v2.Resize((30, 40), antialias=True)(image).float() / 255  # what training feeds (uint8 resize)
    evaluated_on = resize_input(image.float()[None] / 255, (30, 40))[0]  # what eval, predict and ONNX feed
    assert (trained_on - evaluated_on).abs().max() <= 1 / 255 + 1e-6  # the same kernel, up to uint8 rounding


def test_predict_logits_without_input_size_runs_at_native_size() -> None:
    model = seglab.create_model("unet", num_classes=3, base_channels=4).eval()
    with torch.no_grad():
        assert predict_logits(model, torch.rand(1, 3, 37, 53)).shape == (1, 3, 37, 53)


def test_a_model_trained_and_evaluated_at_a_reduced_size_sees_the_same_inputs() -> None:
    """Issue 16 part 3: CamVid frames through the training chain of a reduced recipe (resize to data.resize,
    no random step) and through evaluation (native frame, resized by resize_input): the same antialiased
    kernel, so inputs differ only by training's uint8 rounding of the resized image (<= 1/255)."""
    from seglab.data.collate import collate_semantic
    from seglab.engine.tasks import task_of
    from seglab.recipes import load_recipe

    require_dataset("camvid")
    recipe = load_recipe("unet_camvid_cpu", overrides=["data.scale_range=null", "data.hflip=false"])
    task = task_of(recipe.model.name)
    train_data = build_dataset("camvid", split="val", transforms=task.train_transforms(recipe.data))
    eval_data = build_dataset("camvid", split="val", transforms=task.eval_transforms(recipe.data))
    for index in (0, 50):
        trained_on, _ = collate_semantic([train_data[index]])
        native, labels = collate_semantic([eval_data[index]])
        evaluated_on = resize_input(native, recipe.data.resize)
        assert trained_on.shape == evaluated_on.shape == (1, 3, 120, 160) and labels.shape[-2:] == (360, 480)
        difference = (trained_on - evaluated_on).abs()
        assert difference.max() <= 1 / 255 + 1e-6 and difference.mean() < 0.6 / 255
