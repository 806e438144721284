"""Plain-text renderings shared by the library and the CLI: Markdown tables, JSON-safe values, numbers."""

from __future__ import annotations

import math
from typing import Any


def format_number(value: Any) -> str:
    """A table cell: floats with 4 decimals below 10 (scores), 2 above (counts, seconds), 3 significant
    digits below 0.001 (learning rates: 1e-09, 2e-05, not 0.0000); NaN as "nan"."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub Markdown table of ``rows`` (None shows as "-")."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join("-" if row[k] is None else format_number(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def json_safe(value: Any) -> Any:
    """Replace NaN by None recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
