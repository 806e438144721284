"""Where the datasets live: the one place that resolves the data root.

Order: the ``SEGLAB_DATA`` environment variable; else ``../shared/data`` relative to the current
working directory; else ``<repo>/../shared/data`` next to the checkout that holds the package.
"""

from __future__ import annotations

import os
from pathlib import Path

from seglab.errors import DataError

ENV_VAR = "SEGLAB_DATA"

# seglab/data/root.py -> parents: data, seglab, <repo>, <repo>/.. ; same as Path(seglab.__file__).parents[2]
_PACKAGE_CANDIDATE = Path(__file__).resolve().parents[3] / "shared" / "data"


def data_root() -> Path:
    """Return the folder that holds one sub-folder per dataset.

    Returns:
        ``$SEGLAB_DATA`` when set (even if it does not exist, so errors name it); else the first of
        ``./../shared/data`` and ``<repo>/../shared/data`` that exists; else the latter (missing).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cwd_candidate = Path.cwd().parent / "shared" / "data"
    if cwd_candidate.is_dir():
        return cwd_candidate.resolve()
    return _PACKAGE_CANDIDATE


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """Return ``<root>/<name>`` (e.g. name "camvid" or "isbi2012_em"), checking that it exists.

    Args:
        name: the dataset's folder name.
        root: the data root; ``None`` uses :func:`data_root`.

    Raises:
        DataError: the folder is missing; the message names it and how to point seglab elsewhere.
    """
    base = Path(root).expanduser() if root is not None else data_root()
    folder = base / name
    if not folder.is_dir():
        how = "from --data-root" if root is not None else _how_root_was_chosen()
        raise DataError(
            f"dataset folder {str(folder)!r} not found (data root {str(base)!r} {how}); "
            f"set {ENV_VAR} or pass --data-root to the folder that contains {name!r}/"
        )
    return folder


def _how_root_was_chosen() -> str:
    if os.environ.get(ENV_VAR):
        return f"from ${ENV_VAR}"
    searched = [str(Path.cwd().parent / "shared" / "data"), str(_PACKAGE_CANDIDATE)]
    return f"chosen because ${ENV_VAR} is unset; searched {', '.join(searched)}"
