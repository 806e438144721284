"""Errors seglab raises on bad input; the CLI prints them as one line."""

from __future__ import annotations

import difflib
import re
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


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line; an error re-raised by a DataLoader worker loses the worker's traceback.

    torch re-raises a worker's exception with the text "Caught DataError in DataLoader worker process 0.
    Original Traceback ..."; the last line of that traceback is the message itself.
    """
    text = str(exc)
    worker = re.match(r"Caught \w+ (in DataLoader worker process \d+)\.", text)
    if worker:
        last = text.strip().splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last) + f" ({worker.group(1)})"
    return " ".join(text.split())


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a hint naming the choices closest to ``name``, e.g. "did you mean 'fcn8s_vgg16'?"."""
    choices = sorted(choices)
    matches = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if not matches:
        matches = [c for c in choices if name.lower() in c.lower()][:n]
    if not matches:
        return ""
    return "did you mean " + ", ".join(repr(m) for m in matches) + "?"


class Interrupted(SeglabError):
    """The user stopped a run (Ctrl-C); the message says where its resumable state is. Exit status 130."""


class StorageError(SeglabError):
    """A file could not be written (disk full, no permission); what was there before is left intact."""
