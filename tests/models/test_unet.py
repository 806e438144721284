"""What is unique to U-Net: channel widths, valid convolutions with overlap-tile, crop-and-concat."""

from __future__ import annotations

import torch

import seglab
from seglab.layers.padding import mirror_pad
from seglab.models.semantic.unet import VALID_BORDER, center_crop, valid_input_size


def test_widths_follow_figure_1() -> None:
    model = seglab.create_model("unet", num_classes=2)
    widths = [stage[1][0].out_channels for stage in model.down]
    assert widths == [64, 128, 256, 512, 1024]
    assert [stage.up.out_channels for stage in model.up] == [512, 256, 128, 64]  # 2x2 up-conv halves


def test_valid_sizes_match_the_paper() -> None:
    assert valid_input_size(388) == 572  # fig. 1: a 572x572 tile gives a 388x388 map
    assert (572 - 388) // 2 == VALID_BORDER
    model = seglab.create_model("unet", num_classes=2, base_channels=4, padding="valid").eval()
    with torch.no_grad():
        assert model._unet(torch.rand(1, 3, 188, 188)).shape[-2:] == (4, 4)  # 16 m + 124 -> 16 m - 60, m = 4


def test_overlap_tile_mirrors_92_pixels_and_crops_back() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("unet", num_classes=2, base_channels=4, padding="valid").eval()
    assert model(torch.rand(1, 3, 40, 52)).logits.shape == (1, 2, 40, 52)
    # 36 = 16 * 6 - 60 is a valid output size: the tile is the image with a 92-pixel mirror on each side.
    image = torch.rand(1, 3, 36, 36)
    tile = mirror_pad(model.normalize(image), (92, 92, 92, 92))
    assert tile.shape[-1] == valid_input_size(36)
    with torch.no_grad():
        torch.testing.assert_close(model(image).logits, model._unet(tile))


def test_center_crop() -> None:
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert center_crop(x, torch.Size([2, 2])).flatten().tolist() == [14.0, 15.0, 20.0, 21.0]
