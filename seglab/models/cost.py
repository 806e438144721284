"""Parameter and FLOP counts of registered models, measured on the meta device (no memory, no data)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.registry import create_model

COST_SIZE = (360, 480)  # CamVid's resolution, the survey-era reference size for GFLOPs


def model_cost(name: str, *, num_classes: int = 21, size: tuple[int, int] = COST_SIZE) -> tuple[int, float | None]:
    """(parameters, GFLOPs of one eval forward at ``size``) with default builder arguments.

    FLOPs count a multiply-add as 2 (torch.utils.flop_counter). Models whose work depends on the
    data (detections) provide ``cost_forward``, a run with a fixed load (e.g. 1000 proposals and 100
    detections for Mask R-CNN) that works on the meta device. GFLOPs is None when neither can run there.
    """
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes).eval()
        params = sum(p.numel() for p in model.parameters())
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                getattr(model, "cost_forward", model)(torch.empty(1, 3, *size))
        except (RuntimeError, NotImplementedError, TypeError):
            return params, None
    return params, counter.get_total_flops() / 1e9
