"""Importing this package registers every model."""

from seglab.models import semantic  # noqa: F401
