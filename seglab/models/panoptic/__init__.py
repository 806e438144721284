"""Panoptic segmentation models; importing this package registers every model module in it."""

import importlib
import pkgutil

# Modules that hold shared pieces and register nothing.
_SHARED = {"fusion", "inputs"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")
