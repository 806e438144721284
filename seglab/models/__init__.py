"""Importing this package registers every model."""

from seglab.models import instance, panoptic, semantic  # noqa: F401
