"""Sliding-window inference, TTA and large images read and written by bands (seglab.inference.sliding_window,
seglab.inference.large_image), through Predictor, seglab.Predictor, `seglab predict` and `seglab eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from torch import Tensor, nn
from typer.testing import CliRunner

import seglab
from seglab.cli.app import app
from seglab.cli.tiling import semantic_inference
from seglab.errors import ConfigError, InputError
from seglab.inference import large_image
from seglab.inference.predictor import Predictor
from seglab.inference.sliding_window import (
    TTA_SCALES, blend_weights, inference_options, predict_probs, window_shape, window_starts,
)
from seglab.structures import SemanticPrediction

runner = CliRunner()


class PixelModel(nn.Module):
    """A model whose output at a pixel depends on that pixel only (a 1 x 1 conv), so windows are exact."""

    def __init__(self, classes: int = 4, kernel: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, kernel, padding=kernel // 2)
        with torch.no_grad():  # mirror-symmetric kernels: the model commutes with a left-right flip
            self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(-1)) / 2)

    def forward(self, images: Tensor) -> SemanticPrediction:
        return SemanticPrediction(logits=self.conv(images) * 4)


def tiny_unet() -> nn.Module:
    """A 4-channel U-Net, re-initialised (He normal, zero bias) so its random labels vary across an image."""
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=3, base_channels=4)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model.eval()


def image_array(height: int, width: int, seed: int = 0) -> np.ndarray:
    """[H, W, 3] uint8 with structure (gradients and blocks) and noise, so labels vary across the image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                     ((x // 23 + y // 17) % 2) * 200], axis=2)
    return np.clip(base + rng.integers(-30, 30, (height, width, 3)), 0, 255).astype(np.uint8)


def test_a_tile_larger_than_the_image_is_whole_image_prediction() -> None:
    model = tiny_unet()
    whole = seglab.Predictor(model)
    tiled = seglab.Predictor(model, tile=256)  # the window shrinks to the 70 x 90 image: one window
    image = image_array(70, 90)
    assert torch.equal(tiled.predict(image), whole.predict(image))
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    probs = predict_probs(model, x[0], options=inference_options(tile=256))
    torch.testing.assert_close(probs, model(x).logits.softmax(1)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("tile", "overlap"), [(64, 0.25), (32, 0.0), (50, 0.5), (48, 0.75)])
def test_blended_windows_reproduce_a_pointwise_model_exactly(tile: int, overlap: float) -> None:
    model = PixelModel().eval()
    x = torch.rand(3, 150, 199, generator=torch.Generator().manual_seed(1))
    expected = model(x[None]).logits.softmax(1)[0]
    probs = predict_probs(model, x, options=inference_options(tile=tile, overlap=overlap))
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("length", "window", "overlap"), [(200, 64, 0.25), (64, 64, 0.5), (65, 64, 0.0),
                                                           (1000, 97, 0.33), (10, 10, 0.0)])
def test_windows_and_weights_cover_every_pixel(length: int, window: int, overlap: float) -> None:
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and starts[-1] == length - window and starts == sorted(set(starts))
    covered = np.zeros(length, bool)
    weight = blend_weights(window, window)
    summed = torch.zeros(length)
    for s in starts:
        covered[s:s + window] = True
        summed[s:s + window] += weight[window // 2]
    assert covered.all() and float(summed.min()) > 0
    assert float(weight.min()) == float(weight[0, 0]) > 1e-4 and float(weight.max()) <= 1  # never zero
    # a window never exceeds the image: one of the image's size when the image is smaller
    assert window_shape(30, 500, inference_options(tile=64, scale=0.5)) == (30, 128)


def write_inputs(folder: Path, image: np.ndarray) -> list[Path]:
    """The same pixels as an uncompressed TIFF, deflate strips, deflate tiles, gray tiles and .npy."""
    paths = [folder / "plain.tif", folder / "strips.tif", folder / "tiles.tif", folder / "array.npy"]
    tifffile.imwrite(paths[0], image)
    tifffile.imwrite(paths[1], image, compression="zlib", rowsperstrip=7)
    tifffile.imwrite(paths[2], image, compression="zlib", tile=(64, 96))
    np.save(paths[3], image)
    return paths


def test_banded_tiff_labels_equal_the_in_memory_path(tmp_path: Path) -> None:
    image = image_array(300, 500)
    predictor = seglab.Predictor(tiny_unet(), tile=64, overlap=0.25)
    expected = predictor.predict(image).numpy()
    assert len(np.unique(expected)) > 1  # the comparison means something
    for path in write_inputs(tmp_path, image):
        written = predictor.predict_large_file(path, tmp_path / "out")
        assert written.overlay is None and written.labels == tmp_path / "out" / f"{path.stem}.tif"
        np.testing.assert_array_equal(tifffile.imread(written.labels), expected, err_msg=path.name)
    label_map = Image.open(tmp_path / "out" / "plain.tif")  # palette mode: class ids, shown in class colours
    assert label_map.mode == "P" and np.array_equal(np.asarray(label_map), expected)
    assert label_map.getpalette()[:9] == predictor.palette[:3].reshape(-1).tolist()
    gray = image[..., 1]
    tifffile.imwrite(tmp_path / "gray.tif", gray, compression="zlib", tile=(32, 32))
    written = predictor.predict_large_file(tmp_path / "gray.tif", tmp_path / "out")
    assert np.array_equal(tifffile.imread(written.labels), predictor.predict(gray).numpy())


def test_large_images_in_a_folder_go_by_bands_and_others_as_before(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_image, "LARGE_IMAGE_PIXELS", 100 * 100)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "big.tif", image_array(120, 130), compression="zlib", tile=(64, 64))
    Image.fromarray(image_array(40, 50)).save(tmp_path / "in" / "small.png")
    written = {w.image.name: w for w in Predictor.from_model(tiny_unet(), {"num_classes": 3}, tile=64)
               .predict_files(tmp_path / "in", tmp_path / "out")}
    assert written["big.tif"].labels.suffix == ".tif" and written["big.tif"].overlay is None
    assert written["small.png"].labels.suffix == ".png" and written["small.png"].overlay.is_file()
    with pytest.raises(ConfigError, match=r"big.tif' is 130 x 120 pixels .* --tile 512"):
        Predictor.from_model(tiny_unet(), {"num_classes": 3}).predict_files(tmp_path / "in", tmp_path / "out")


def test_a_png_too_large_for_pillow_says_how_to_convert_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(image_array(60, 60)).save(tmp_path / "scan.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses over twice this: 60 x 60 is a "bomb"
    assert large_image.is_large_image(tmp_path / "scan.png")
    predictor = Predictor.from_model(tiny_unet(), {"num_classes": 3}, tile=64)
    with pytest.raises(InputError, match=r"scan.png' is too large for Pillow .*vips copy scan.png scan.tif"):
        predictor.predict_files(tmp_path / "scan.png", tmp_path / "out")


def test_flip_tta_on_a_flip_equivariant_model_changes_nothing() -> None:
    model = PixelModel(kernel=3).eval()
    x = torch.rand(3, 90, 121, generator=torch.Generator().manual_seed(2))
    plain = model(x[None]).logits.softmax(1)[0]
    flipped = predict_probs(model, x, options=inference_options(tta=True, tta_scales=[1]))
    torch.testing.assert_close(flipped, plain, atol=1e-6, rtol=0)
    tiled = predict_probs(model, x, options=inference_options(tile=40, tta_scales="1"))
    untiled_tiled = predict_probs(model, x, options=inference_options(tile=40))
    torch.testing.assert_close(tiled, untiled_tiled, atol=1e-6, rtol=0)


def test_tta_defaults_to_mmseg_ratios_and_averages_probabilities() -> None:
    options = inference_options(tta=True)
    assert options.flip and options.scales == TTA_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    assert inference_options() is None and inference_options(tile=64).scales == (1.0,)
    assert inference_options(tta_scales="0.75, 1,1.25").scales == (0.75, 1.0, 1.25)  # scales imply tta
    model, image = tiny_unet(), image_array(64, 80)
    labels = seglab.Predictor(model, tta=True, tta_scales=(0.5, 1.0)).predict(image)
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    by_hand = predict_probs(model, x[0], options=inference_options(tta=True, tta_scales=(0.5, 1.0)))
    assert torch.equal(labels, by_hand.argmax(0)) and torch.allclose(by_hand.sum(0), torch.ones(64, 80))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tile": 64, "overlap": 1.0}, r"overlap \(--overlap\) must be in \[0, 1\)"),
    ({"tile": 64, "overlap": -0.1}, r"overlap \(--overlap\) must be in \[0, 1\)"),
    ({"tile": 0}, r"tile \(--tile\) must be a positive number of pixels, got \(0, 0\)"),
    ({"tile": -8}, r"tile \(--tile\) must be a positive"),
    ({"tile": 64, "scale": 0}, r"scale \(--scale\) must be > 0"),
    ({"overlap": 0.5}, r"overlap \(--overlap\) applies to sliding-window inference; add tile="),
    ({"scale": 0.5}, r"scale \(--scale\) applies to sliding-window"),
    ({"tta_scales": "0.5,x"}, r"--tta-scales takes comma-separated ratios"),
    ({"tta_scales": [0.5, -1]}, r"tta_scales \(--tta-scales\) must be positive ratios"),
    ({"tile": 8}, r"tile \(--tile\) 8 is smaller than unet's input multiple / minimum size 16; use --tile 64"),
])
def test_bad_options_are_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        seglab.Predictor(tiny_unet(), **kwargs)


def test_tile_and_tta_apply_to_semantic_models_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--tile, --tta: sliding-window inference and TTA apply to semantic"):
        semantic_inference("instance", tile=64, overlap=None, scale=None, tta=True, tta_scales=None)
    assert semantic_inference("instance", tile=None, overlap=None, scale=None, tta=False, tta_scales=None) is None
    spec = seglab.model_spec("deepmask_vgg11")
    proposer = seglab.create_model("deepmask_vgg11", num_classes=2, **spec.test_kwargs)
    with pytest.raises(ConfigError, match=r"tile \(sliding windows, TTA, fast paths\) apply to semantic models; this is an instance model"):
        seglab.Predictor(proposer, tile=64)
    seglab.save(proposer, tmp_path / "proposals")
    Image.fromarray(image_array(64, 64)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["predict", str(tmp_path / "proposals"), str(tmp_path / "a.png"), "--tile", "64"])
    assert result.exit_code != 0 and "apply to semantic models" in str(result.exception)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiles") / "unet"
    seglab.save(tiny_unet(), folder, classes=["a", "b", "c"], palette=[(0, 0, 0), (200, 0, 0), (0, 200, 0)])
    return folder


def test_cli_predict_with_tiles_and_tta(checkpoint: Path, tmp_path: Path) -> None:
    image = image_array(70, 90)
    Image.fromarray(image).save(tmp_path / "a.png")
    result = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "a.png"), "--out", str(tmp_path / "p"),
                                 "--tile", "64", "--tta"])
    assert result.exit_code == 0, result.output
    labels = np.asarray(Image.open(tmp_path / "p" / "a.png"))
    assert np.array_equal(labels, Predictor(checkpoint, tile=64, tta=True).predict(image).numpy())
    assert (tmp_path / "p" / "a_overlay.png").is_file()
    np.save(tmp_path / "b.npy", image)  # an array file goes by bands to a TIFF label map
    result = runner.invoke(app, ["predict", str(checkpoint), str(tmp_path / "b.npy"), "--out", str(tmp_path / "p"),
                                 "--tile", "64", "--overlap", "0.5"])
    assert result.exit_code == 0, result.output
    assert "no overlay" in result.output and (tmp_path / "p" / "b.tif").is_file()


def test_cli_eval_with_tiles_and_tta_uses_the_same_function(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for i in range(2):
        Image.fromarray(image_array(48, 64, seed=i)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 3).astype(np.uint8)).save(tmp_path / "mask" / f"{i}.png")
    args = ["eval", str(checkpoint), "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask"),
            "--format", "json"]
    plain = json.loads(runner.invoke(app, args).output)
    tiled = runner.invoke(app, [*args, "--tile", "32", "--tta-scales", "1"])
    assert tiled.exit_code == 0, tiled.output
    assert json.loads(tiled.output)["images"] == 2 and plain["images"] == 2
    whole = json.loads(runner.invoke(app, [*args, "--tile", "128"]).output)  # one window: the whole image
    assert whole["confusion"] == plain["confusion"]
    bad = runner.invoke(app, [*args, "--overlap", "0.3"])
    assert bad.exit_code != 0 and "add tile=" in str(bad.exception)
