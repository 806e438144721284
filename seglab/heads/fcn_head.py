"""A small fully convolutional head: 3x3 conv + BN + ReLU, dropout, 1x1 classifier.

The auxiliary classifier of PSPNet (Zhao et al., arXiv 1612.01105, sec. 3.3: an extra loss on the
res4b22 features, i.e. ResNet's c4), which many later models reuse as their auxiliary head.
"""

from __future__ import annotations

from torch import Tensor, nn

from seglab.layers.conv_norm_act import conv_norm_act


class FCNHead(nn.Module):
    """3x3 conv (in -> hidden) + BN + ReLU, dropout, 1x1 conv to classes, on one level of a feature dict.

    Args:
        in_channels: channels of ``features[in_key]``.
        num_classes: C.
        in_key: the feature level read ("c4" for PSPNet's auxiliary loss).
        hidden: width of the 3x3 conv; defaults to in_channels // 4 (256 on ResNet-50/101 c4).
        dropout: dropout before the classifier (0.1 in PSPNet).
    Forward: {in_key: [N, in_channels, h, w], ...} -> logits [N, C, h, w].
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        in_key: str = "c4",
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        hidden = hidden if hidden is not None else in_channels // 4
        self.in_key = in_key
        self.block = conv_norm_act(in_channels, hidden, 3)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        return self.classifier(self.dropout(self.block(features[self.in_key])))
