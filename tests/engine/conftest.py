"""A tiny recipe for engine tests: a 4-channel U-Net on 32 synthetic 32x48 images."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY = {
    "description": "engine tests",
    "model": {"name": "unet", "kwargs": {"base_channels": 4, "batch_norm": True, "dropout": 0.5}},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 16, "size": [32, 48]}, "batch_size": 4,
             "crop_size": [32, 32], "scale_range": [0.75, 1.25]},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005},
    "schedule": {"policy": "poly", "steps": 10, "warmup_steps": 2},
    "train": {"seed": 3, "log_every": 1, "checkpoint_every": 3},
}


@pytest.fixture
def tiny_recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path
