"""The semantic-segmentation contract shared by every semantic model.

``model(images)`` returns a SemanticPrediction with logits at the input resolution, for any input
size: inputs are normalised and padded internally to the network's multiple, and the logits are
cropped back. ``model(images, targets)`` returns the named loss terms, already weighted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seglab.errors import InputError
from seglab.layers.normalize import Normalize
from seglab.layers.padding import pad_to_multiple
from seglab.layers.upsample import resize_to
from seglab.losses.cross_entropy import PixelCrossEntropy
from seglab.structures import SemanticPrediction, check_images


class SegmenterBase(nn.Module):
    """Shared entry and exit of every semantic model; subclasses implement ``compute_logits``.

    Args (shared by all semantic models):
        num_classes: number of output classes C.
        input_multiple: inputs are padded (bottom/right) to a multiple of this before the network.
        pad_mode: "constant" (zeros after normalisation, i.e. the mean colour) or "reflect".
        criterion: the main loss, defaults to pixel cross-entropy with ignore index 255.
        aux_weight: weight of the auxiliary loss term, when the network produces "aux" logits.
        min_size: smallest accepted input side.

    Forward:
        images: [N, 3, H, W] float in [0, 1].
        targets: optional [N, H, W] int64 labels in [0, C) or 255 (ignore).
        Returns SemanticPrediction (logits [N, C, H, W]) without targets, else a dict of loss terms
        {"loss_ce": ..., "loss_aux": ...} whose sum is the training loss.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        input_multiple: int = 32,
        pad_mode: str = "constant",
        criterion: nn.Module | None = None,
        aux_weight: float = 0.0,
        min_size: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.input_multiple = input_multiple
        self.pad_mode = pad_mode
        self.aux_weight = aux_weight
        self.min_size = min_size
        self.normalize = Normalize()
        self.criterion = criterion if criterion is not None else PixelCrossEntropy()

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        """Network body on a normalised, padded batch; returns {"out": logits, optional "aux": logits}."""
        raise NotImplementedError

    def forward(self, images: Tensor, targets: Tensor | None = None) -> SemanticPrediction | dict[str, Tensor]:
        name = type(self).__name__
        check_images(images, model=name, min_size=self.min_size)
        if targets is not None:
            self._check_targets(images, targets)
        size = images.shape[-2:]
        x = pad_to_multiple(self.normalize(images), self.input_multiple, mode=self.pad_mode)
        outputs = self.compute_logits(x)
        # Crop the padding away, then resize stride-s logits to the input size.
        logits = {k: self._to_input_size(v, x.shape[-2:], size) for k, v in outputs.items()}
        if targets is None:
            aux = {k: v for k, v in logits.items() if k not in ("out", "aux")}
            return SemanticPrediction(logits=logits["out"], aux=aux or None)
        return self.losses(logits, targets)

    def losses(self, logits: dict[str, Tensor], targets: Tensor) -> dict[str, Tensor]:
        """Weighted loss terms from logits at input resolution."""
        terms = {"loss_ce": self.criterion(logits["out"], targets)}
        if "aux" in logits and self.aux_weight > 0:
            terms["loss_aux"] = self.aux_weight * self.criterion(logits["aux"], targets)
        return terms

    @staticmethod
    def _to_input_size(logits: Tensor, padded_size: tuple[int, int], size: tuple[int, int]) -> Tensor:
        logits = resize_to(logits, padded_size)
        return logits[..., : size[0], : size[1]]

    def _check_targets(self, images: Tensor, targets: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(targets, Tensor) or targets.dim() != 3:
            shape = list(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
            raise InputError(f"{name}: targets has shape {shape}; expected [N, H, W] int64 labels")
        if targets.shape[0] != images.shape[0] or targets.shape[-2:] != images.shape[-2:]:
            raise InputError(
                f"{name}: targets has shape {list(targets.shape)} but images has shape "
                f"{list(images.shape)}; expected targets [N, H, W] = "
                f"[{images.shape[0]}, {images.shape[2]}, {images.shape[3]}]"
            )
        if targets.dtype != torch.int64:
            raise InputError(f"{name}: targets has dtype {targets.dtype}; expected torch.int64 class indices")
        valid = targets[targets != 255]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.num_classes):
            raise InputError(
                f"{name}: targets contain labels in [{int(valid.min())}, {int(valid.max())}] but the model has "
                f"{self.num_classes} classes; use 255 for ignored pixels"
            )


class SemanticSegmenter(SegmenterBase):
    """Backbone -> optional neck -> head (+ optional auxiliary head), the common case.

    Args:
        backbone: returns a feature dict keyed by level.
        head: maps the feature dict to logits [N, C, h, w] at its own stride.
        neck: optional feature dict -> feature dict.
        aux_head: optional feature dict -> auxiliary logits, trained with weight ``aux_weight``.
        num_classes, input_multiple, aux_weight, criterion: as in SegmenterBase.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        neck: nn.Module | None = None,
        aux_head: nn.Module | None = None,
        num_classes: int,
        input_multiple: int = 32,
        aux_weight: float = 0.0,
        criterion: nn.Module | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes, input_multiple=input_multiple, aux_weight=aux_weight, criterion=criterion
        )
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.aux_head = aux_head

    def compute_logits(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        if self.neck is not None:
            features = self.neck(features)
        outputs = {"out": self.head(features)}
        if self.aux_head is not None and self.training:
            outputs["aux"] = self.aux_head(features)
        return outputs
