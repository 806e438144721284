"""One place that turns a ``--device`` string into a torch.device, or says which devices exist."""

from __future__ import annotations

import torch

from seglab.errors import ConfigError

__all__ = ["available_devices", "resolve_device"]


def available_devices() -> list[str]:
    """The device names this machine can run on: "cpu", then "cuda:0".. and "mps" where present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device that exists here; ``None`` means CUDA when available, else CPU.

    Raises:
        ConfigError: not a device name (``gpu9``), or a device this machine lacks (``cuda`` without a
            GPU, ``cuda:3`` with two); the message lists the devices that exist.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    here = ", ".join(available_devices())
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r} is not a device name; this machine has: {here}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ConfigError(f"--device {device!r}: this machine has no such CUDA device; it has: {here}")
        return dev
    if dev.type == "mps" and "mps" in here:
        return dev
    raise ConfigError(f"--device {device!r} is not available (seglab runs on cpu, cuda and mps); this machine "
                      f"has: {here}")
