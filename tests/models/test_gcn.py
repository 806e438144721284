"""What is unique to GCN: a GCN + BR score map per level c2..c5, fused top-down to full resolution."""

from __future__ import annotations

import torch

import seglab
from seglab.layers.gcn import BoundaryRefinement, GlobalConvolution
from seglab.layers.upsample import BilinearDeconv


def test_figure_2_layout() -> None:
    with torch.device("meta"):
        model = seglab.create_model("gcn_resnet152", num_classes=21)
    assert len(model.backbone.layer3) == 36  # ResNet-152 by default
    gcns = [m for m in model.modules() if isinstance(m, GlobalConvolution)]
    assert len(gcns) == 4 and all(g.left[0].kernel_size == (15, 1) for g in gcns)
    assert [g.left[0].in_channels for g in gcns] == [256, 512, 1024, 2048]  # c2..c5
    assert all(g.left[1].out_channels == 21 for g in gcns)
    # 4 BR after the GCNs, 3 after the additions, 2 after the last two deconvolutions.
    assert sum(isinstance(m, BoundaryRefinement) for m in model.modules()) == 9
    assert sum(isinstance(m, BilinearDeconv) for m in model.modules()) == 5


def test_scores_are_fused_up_to_the_input_resolution() -> None:
    torch.manual_seed(0)
    model = seglab.create_model("gcn_resnet152", num_classes=3, backbone="resnet18").eval()
    x = torch.rand(1, 3, 64, 96)
    assert model.compute_logits(x)["out"].shape == (1, 3, 64, 96)  # no resize left to the base class
    # The coarsest score map reaches the output through the top-down path.
    before = model.compute_logits(x)["out"]
    with torch.no_grad():
        model.gcn["c5"].left[1].bias.add_(1.0)
    assert not torch.allclose(model.compute_logits(x)["out"], before)
