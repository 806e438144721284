"""GCN: Global Convolutional Network modules with Boundary Refinement, fused top-down.

Paper: "Large Kernel Matters -- Improve Semantic Segmentation by Global Convolutional Network",
Peng, Zhang, Yu, Luo, Sun (arXiv 1703.02719). Changes from its ancestor (FCN with skips on a
ResNet): every level c2..c5 is turned into class scores by a large separable kernel (k = 15,
sec. 3.2) followed by a residual Boundary Refinement block; the score maps are fused top-down by
bilinear-initialised deconvolution and addition, with BR after each addition, and two final
deconvolutions (each followed by BR) bring the stride-4 map to the input resolution (fig. 2(A)).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from seglab.backbones import Backbone, build_backbone
from seglab.layers.gcn import BoundaryRefinement, GlobalConvolution
from seglab.layers.upsample import BilinearDeconv
from seglab.losses import pixel_criterion
from seglab.models.semantic.segmenter import SegmenterBase
from seglab.registry import ModelSpec, register_model

LEVELS = ("c2", "c3", "c4", "c5")  # res-2 .. res-5 in fig. 2(A), strides 4 .. 32


class GCN(SegmenterBase):
    """ResNet -> GCN + BR per level -> top-down (deconv, add, BR) -> 2 x (deconv, BR) to stride 1.

    Args:
        backbone: ResNet returning "c2".."c5" at strides 4..32.
        num_classes: C.
        kernel_size: k of the global convolutions (15).
        criterion: loss module (pixel cross-entropy by default).
    """

    def __init__(
        self, *, backbone: Backbone, num_classes: int, kernel_size: int = 15, criterion: nn.Module | None = None
    ) -> None:
        super().__init__(num_classes=num_classes, input_multiple=32, criterion=criterion)
        self.backbone = backbone
        specs = backbone.feature_specs
        self.gcn = nn.ModuleDict(
            {lvl: GlobalConvolution(specs[lvl].channels, num_classes, kernel_size=kernel_size) for lvl in LEVELS}
        )
        self.br_score = nn.ModuleDict({lvl: BoundaryRefinement(num_classes) for lvl in LEVELS})
        # Fusion into c4, c3, c2: a 2x deconvolution of the coarser map, then BR after the sum.
        self.up = nn.ModuleDict({lvl: BilinearDeconv(num_classes, factor=2) for lvl in LEVELS[:-1]})
        self.br_fused = nn.ModuleDict({lvl: BoundaryRefinement(num_classes) for lvl in LEVELS[:-1]})
        # Stride 4 -> 2 -> 1 (fig. 2(A): the last two "Deconv -> BR" steps).
        self.up_final = nn.ModuleList(BilinearDeconv(num_classes, factor=2) for _ in range(2))
        self.br_final = nn.ModuleList(BoundaryRefinement(num_classes) for _ in range(2))

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        scores = {lvl: self.br_score[lvl](self.gcn[lvl](features[lvl])) for lvl in LEVELS}
        fused = scores["c5"]  # stride 32
        for lvl in ("c4", "c3", "c2"):  # strides 16, 8, 4
            fused = self.br_fused[lvl](self.up[lvl](fused) + scores[lvl])
        for up, br in zip(self.up_final, self.br_final):  # strides 2, 1
            fused = br(up(fused))
        return {"out": fused}


@register_model(
    ModelSpec(
        task="semantic",
        paper="Large Kernel Matters -- Improve Semantic Segmentation by Global Convolutional Network",
        arxiv="1703.02719",
        year=2017,
        survey_row="GCN",
        input_multiple=32,
        test_kwargs={"backbone": "resnet18"},
    )
)
def gcn_resnet152(
    *,
    num_classes: int,
    backbone: str = "resnet152",
    kernel_size: int = 15,
    pretrained_backbone: str | Path | None = None,
    class_weights: list[float] | None = None,
    loss: str = "ce",
    loss_options: dict[str, float] | None = None,
) -> GCN:
    """Build GCN (see GCN for the arguments).

    Args:
        backbone: a ResNet name ("resnet152" in the paper's final model, sec. 4.2; "resnet18" for tests).
        kernel_size: k of the global convolutions (15, Table 1).
        pretrained_backbone: local torchvision ResNet weights.
        class_weights: optional [C] cross-entropy weights.
        loss, loss_options: main loss by name and its options (seglab.losses.build_loss).
    """
    return GCN(
        backbone=build_backbone(backbone, pretrained=pretrained_backbone),
        num_classes=num_classes,
        kernel_size=kernel_size,
        criterion=pixel_criterion(loss, class_weights, loss_options),
    )
