"""Importing this package registers every model."""

from seglab.models import instance, semantic  # noqa: F401
