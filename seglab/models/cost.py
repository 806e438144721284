"""Parameter and FLOP counts of registered models, measured on the meta device (no memory, no data)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.registry import create_model

COST_SIZE = (360, 480)  # CamVid's resolution, the survey-era reference size for GFLOPs


def model_cost(name: str, *, num_classes: int = 21, size: tuple[int, int] = COST_SIZE) -> tuple[int, float | None]:
    """(parameters, GFLOPs of one eval forward at ``size``) with default builder arguments.

    FLOPs count a multiply-add as 2 (torch.utils.flop_counter). GFLOPs is None when the forward
    cannot run on the meta device (e.g. data-dependent post-processing).
    """
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes).eval()
        params = sum(p.numel() for p in model.parameters())
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(torch.empty(1, 3, *size))
        except (RuntimeError, NotImplementedError, TypeError):
            return params, None
    return params, counter.get_total_flops() / 1e9
