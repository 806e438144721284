"""Errors seglab raises on bad input; the CLI prints them as one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeglabError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI."""


class ConfigError(SeglabError):
    """A recipe, override or argument is invalid (names the file and the dotted field)."""


class DataError(SeglabError):
    """A dataset is missing, unreadable or inconsistent (names the file)."""


class InputError(SeglabError):
    """A tensor given to a model or function has the wrong shape, dtype or values."""


class TrainingError(SeglabError):
    """Training cannot go on (for example a non-finite loss)."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a hint naming the choices closest to ``name``, e.g. "did you mean 'fcn8s_vgg16'?"."""
    choices = sorted(choices)
    matches = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not matches:
        matches = [c for c in choices if name.lower() in c.lower()][:n]
    if not matches:
        return ""
    return "did you mean " + ", ".join(repr(m) for m in matches) + "?"
