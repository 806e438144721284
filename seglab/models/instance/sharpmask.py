"""SharpMask: DeepMask's bottom-up pass refined top-down with skip features into a sharp mask.

Pinheiro, Lin, Collobert, Dollar, "Learning to Refine Object Segments", ECCV 2016 (arXiv 1603.08695).
Changes from DeepMask (arXiv 1506.06204): the coarse 56 x 56 mask, upsampled, misses object edges; a
top-down pathway starts from DeepMask's 512-d embedding (v0, a linear layer to k_m x 10 x 10) and,
through four refinement modules, merges the trunk's features of strides 16, 8, 4 and 2 with the mask
features, doubling the resolution each time up to the window (sec. 3.2, fig. 3;
``seglab.heads.sharpmask``). The bottom-up DeepMask is the updated one of sec. 3.3: ResNet-50 cut after
res4 (``seglab.models.instance.deepmask``, ``backbone="resnet50"``), 160-px windows with 16 px of context.

Training (sec. 3.4, ``TrainerSharpMask.lua``) is two-stage: DeepMask first (``deepmask_vgg11`` with
``backbone="resnet50"``, or this model with ``freeze_bottom_up=False``), then the refinement alone with
the bottom-up frozen (``freeze_bottom_up=True``, the default, from ``pretrained_deepmask``): only the
refinement's mask loss is trained (the score head is not, as in the code) and the mask is compared at
the window's full size (gSz = iSz = 160). Skip taps: res4, res3, res2 and conv1 of ResNet (SharpMask.lua
``skpos``); on a VGG trunk, conv5 (stride 16), pool3, pool2 and pool1 (strides 8, 4, 2).

Deviations (beyond DeepMask's, see its module docstring):
- stage 2 keeps DeepMask's score loss in the returned terms (computed, without a gradient when frozen),
  so both stages report the same two terms; with ``freeze_bottom_up=False`` both stages train jointly
  (the CPU recipe's choice), and DeepMask's own 56 x 56 mask predictor is then not trained;
- at inference the horizontal nets run once over each scale's whole maps (as InferSharpMask.lua) and
  each chosen window reads its part, so padding inside a window differs from training at its border.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seglab.engine.checkpoint import read_config
from seglab.errors import ConfigError
from seglab.heads.sharpmask import SKIP_HIDDEN, TopDownRefinement
from seglab.models.instance.deepmask import DEEPMASK_SPEC, STRIDE, DeepMask, ScaleLevel, deepmask
from seglab.registry import register_model

SKIP_TAPS = {"resnet": (("c4", 16), ("c3", 8), ("c2", 4), ("c1", 2)),  # SharpMask.lua skpos {8, 6, 5, 3}
             "vgg": (("c5", 16), ("c3", 8), ("c2", 4), ("c1", 2))}
WINDOW_CHUNK = 128  # windows refined together at inference (bounds memory)


class SharpMask(DeepMask):
    """DeepMask plus ``refinement`` (``TopDownRefinement``) on skip taps ``(level, stride)``, deepest first.

    Args:
        deepmask: a built ``DeepMask`` whose parts are taken over (its mask predictor is kept, unused
            by the refined masks, so stage-1 checkpoints load unchanged).
        refinement: the top-down modules; taps: ``(level, stride)`` of each module's skip.
        freeze_bottom_up: train the refinement alone (stage 2, sec. 3.4).
    """

    def __init__(self, *, deepmask: DeepMask, refinement: TopDownRefinement, taps: Sequence[tuple[str, int]],
                 freeze_bottom_up: bool = True) -> None:
        d = deepmask
        super().__init__(trunk=d.trunk, level=d.level, embedding=d.embedding, mask_predictor=d.mask_predictor,
                         score_branch=d.score_branch, score_input=d.score_input, num_classes=d.num_classes,
                         patch_size=d.patch_size, context=d.context, mask_size=d.patch_size, loss=d.loss,
                         settings=d.settings)
        self.refinement, self.taps, self.freeze_bottom_up = refinement, tuple(taps), freeze_bottom_up
        self.mask_predictor.requires_grad_(False)  # DeepMask's coarse mask: replaced by the refined one
        if freeze_bottom_up:
            for module in self.bottom_up():
                module.requires_grad_(False)

    def bottom_up(self) -> list[nn.Module]:
        return [self.trunk, self.embedding, self.mask_predictor, self.score_branch]

    def train(self, mode: bool = True) -> SharpMask:
        """Frozen, the bottom-up also keeps its batch-norm statistics and drops no units (eval mode)."""
        super().train(mode)
        if self.freeze_bottom_up:
            for module in self.bottom_up():
                module.train(False)
        return self

    def heads(self, taps: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Patches' trunk outputs -> (refined mask logits [N, P, P], objectness logits [N])."""
        features = self.window(taps[self.level], STRIDE)
        embedding = self.embedding(features)
        scores = self.score_branch(features if self.score_input == "features" else embedding[..., None, None])
        skips = [self.window(taps[level], stride) for level, stride in self.taps]
        return self.refinement(embedding, skips), scores

    def window_masks(self, levels: Sequence[ScaleLevel], chosen: Tensor) -> Tensor:
        """Refined mask probabilities [D, P, P] of the chosen windows, scale by scale."""
        scale_of = torch.cat([torch.full_like(lv.logits, k, dtype=torch.int64) for k, lv in enumerate(levels)])
        index_in = torch.cat([torch.arange(len(lv.logits), device=lv.logits.device) for lv in levels])
        out = levels[0].logits.new_zeros(len(chosen), self.patch_size, self.patch_size)
        for k, level in enumerate(levels):
            picked = (scale_of[chosen] == k).nonzero().flatten()
            if len(picked) == 0:
                continue
            lateral = self.refinement.horizontal([level.taps[name] for name, _ in self.taps])
            for part in picked.split(WINDOW_CHUNK):
                windows = index_in[chosen[part]]
                skips = [self.cut(map_, level.cells[windows], stride) for map_, (_, stride) in zip(lateral, self.taps)]
                out[part] = self.refinement(level.embeddings[windows], skips, skips_done=True).sigmoid()
        return out

    def cut(self, maps: Tensor, cells: Tensor, stride: int) -> Tensor:
        """[1, C, H, W] map of stride ``stride`` -> [R, C, P/stride, P/stride] parts under windows at ``cells``."""
        side, start = self.patch_size // stride, (cells + self.context // STRIDE) * (STRIDE // stride)
        offsets = torch.arange(side, device=maps.device)
        rows = start[:, 0, None] + offsets  # [R, side]
        cols = start[:, 1, None] + offsets
        return maps[0][:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)


def load_deepmask_weights(model: SharpMask, path: str | Path) -> None:
    """Fill the bottom-up from a stage-1 checkpoint directory of ``seglab train`` (DeepMask or SharpMask)."""
    from safetensors.torch import load_file

    config = read_config(path)
    weights = Path(path) / "model.safetensors" if Path(path).is_dir() else Path(path)
    state = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("refinement.")}
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.startswith("refinement."))
    unexpected = sorted(k for k in state if k not in own or state[k].shape != own[k].shape)
    if missing or unexpected:
        raise ConfigError(f"pretrained_deepmask {str(path)!r} ({config['model']}) does not match the bottom-up: "
                          f"missing {missing[:5]}, unexpected or of another shape {unexpected[:5]}; train it with "
                          "the same backbone, patch_size, context and widths")
    model.load_state_dict(state, strict=False)


def sharpmask(
    *, num_classes: int, backbone: str = "resnet50", km: int = 32, ks: int = 32,
    skip_hidden: Sequence[int] = SKIP_HIDDEN, freeze_bottom_up: bool = True,
    pretrained_deepmask: str | Path | None = None, **deepmask_kwargs: Any,
) -> SharpMask:
    """Build SharpMask: ``deepmask(...)`` (any of its arguments) plus the refinement (sec. 3.2).

    Args:
        backbone: "resnet50" (the paper's updated DeepMask), a smaller ResNet for CPU, or "vgg11".
        km, ks: k_m and k_s (32, sec. 4; equal, multiples of 16 as SharpMask.lua asserts, or of 2^4
            for narrow CPU models: each module halves them); skip_hidden: h_i (64, 64, 64, 32).
        freeze_bottom_up: stage 2 (True) trains only the refinement; False trains everything jointly.
        pretrained_deepmask: a stage-1 checkpoint directory (``seglab train`` output) for the bottom-up.
    """
    if km != ks or km < 16 or km % 16:
        raise ConfigError(f"sharpmask: km {km} and ks {ks}: expected km == ks (the modules sum the two nets' "
                          "k / 2^i maps), a multiple of 16 (four halvings)")
    if len(skip_hidden) != 4:
        raise ConfigError(f"sharpmask: skip_hidden {tuple(skip_hidden)}: expected one width per module (4)")
    bottom_up = deepmask(num_classes=num_classes, backbone=backbone, **deepmask_kwargs)
    taps = SKIP_TAPS["vgg" if backbone.startswith("vgg") else "resnet"]
    specs = bottom_up.trunk.feature_specs
    refinement = TopDownRefinement([specs[level].channels for level, _ in taps], fsize=bottom_up.patch_size // STRIDE,
                                   dim=bottom_up.embedding.linear.out_features, km=km, ks=ks, skip_hidden=skip_hidden)
    model = SharpMask(deepmask=bottom_up, refinement=refinement, taps=taps, freeze_bottom_up=freeze_bottom_up)
    if pretrained_deepmask is not None:
        load_deepmask_weights(model, pretrained_deepmask)
    return model


def _signature() -> inspect.Signature:
    """sharpmask's own arguments and every deepmask argument it passes on, so ``create_model`` checks
    them all (an unknown or misspelt one is named, with the valid ones) and ``model_defaults`` lists them."""
    own = inspect.signature(sharpmask).parameters
    passed = [p for name, p in inspect.signature(deepmask).parameters.items() if name not in own]
    return inspect.Signature([p for p in own.values() if p.kind is not p.VAR_KEYWORD] + passed)


sharpmask.__signature__ = _signature()  # type: ignore[attr-defined]


# Parameters of the paper's configuration (the updated DeepMask on ResNet-50, k_m = k_s = 32):
#   bottom-up (deepmask_vgg11 with backbone="resnet50"): res1-res4 8,543,296; shared 1x1 131,200 and
#     linear 6,554,112; mask 1,608,768; score 525,312 + 1,025                              17,363,713
#   v0: 512 * 3200 + 3200                                                                  1,641,600
#   modules (horizontal 3 convs + vertical 2 convs, 3x3 with biases):
#     1: 1024->64->32->16 + 32->32->16     589,888 + 18,464 + 4,624 + 9,248 + 4,624        626,848
#     2: 512->64->16->8 + 16->16->8        294,976 + 9,232 + 1,160 + 2,320 + 1,160         308,848
#     3: 256->64->8->4 + 8->8->4           147,520 + 4,616 + 292 + 584 + 292               153,304
#     4: 64->32->4->2 + 4->4->2            18,464 + 1,156 + 74 + 148 + 74                   19,916
#   final conv 2 -> 1: 19                                                                    19
#   total                                                                                20,114,248
register_model(
    replace(DEEPMASK_SPEC, paper="Learning to Refine Object Segments", arxiv="1603.08695", year=2016,
            survey_row="SharpMask", reference_params=20_114_248, reference_kwargs={"num_classes": 2},
            test_kwargs={**DEEPMASK_SPEC.test_kwargs, "km": 16, "ks": 16, "skip_hidden": (8, 8, 8, 8)}),
    name="sharpmask_resnet50",
)(sharpmask)
