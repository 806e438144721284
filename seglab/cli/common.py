"""What every command shares: consoles, output formats, the --data-root option."""

from __future__ import annotations

import csv
import io
import json
import math
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


def render_rows(rows: list[dict[str, Any]], *, title: str, fmt: OutputFormat) -> None:
    """Print ``rows`` as a rich table, JSON, CSV or Markdown (the title as a first line)."""
    if fmt is OutputFormat.markdown:
        print(f"{title}\n\n" + markdown_table(rows), end="")
        return
    if fmt is OutputFormat.json:
        print(json.dumps(rows, indent=2, default=_jsonable))
        return
    if fmt is OutputFormat.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
        print(buf.getvalue(), end="")
        return
    table = Table(title=title)
    for key in rows[0] if rows else []:
        table.add_column(key, justify="right" if isinstance(rows[0][key], (int, float)) else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A GitHub Markdown table of ``rows`` (None shows as "-")."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join("-" if row[k] is None else _cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"  # scores vs counts
    return str(value)


def _jsonable(value: Any) -> Any:
    return str(value)


def json_safe(value: Any) -> Any:
    """Replace NaN by None recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
