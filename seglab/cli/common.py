"""What every command shares: consoles, output formats, the --data-root option."""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

from seglab.formatting import format_number, json_safe, markdown_table

__all__ = ["OutputFormat", "console", "err_console", "json_safe", "markdown_table", "render_rows"]

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
        table.add_row(*(format_number(v) for v in row.values()))
    console.print(table)


def _jsonable(value: Any) -> Any:
    return str(value)
