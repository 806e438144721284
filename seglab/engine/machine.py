"""What a run ran on: CPU model and the instruction sets that matter to PyTorch, threads, GPU, versions.

Read at run time (never assumed): the CPU flags come from /proc/cpuinfo where it exists, the vector
ISA PyTorch dispatches to from ``torch.backends.cpu.get_cpu_capability()``. Recorded in a run's
run.json and shown by ``seglab report``.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

# flags that decide fast paths: AVX-512 BF16 and AMX give fast bfloat16 matmuls and convolutions
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "sve")


def describe_machine(device: torch.device | str | None = None) -> dict[str, Any]:
    """A JSON-safe description of this machine (and of ``device`` when it is a GPU)."""
    cpu, flags = _cpu_info()
    info: dict[str, Any] = {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cpu_flags": [f for f in _FLAGS if f in flags],
        "cpu_capability": _cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_info() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def _cpu_capability() -> str | None:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None
