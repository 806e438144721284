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

# columns shown whole at any terminal width (the first column always is): names a user copies into a command
NAME_COLUMNS = ("name", "model", "recipe", "class")

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
    keys = list(rows[0]) if rows else []
    cells = [[format_number(v) for v in row.values()] for row in rows]
    widths = fit_columns(keys, cells, console.width, numeric=[isinstance(rows[0][k], (int, float)) for k in keys])
    shown = [k for k, width in enumerate(widths) if width]
    hidden = len(keys) - len(shown)
    note = f" ({hidden} column{'s' if hidden > 1 else ''} hidden at {console.width} columns: --format csv shows all)"
    table = Table(title=title + (note if hidden else ""))
    for k in shown:
        numeric = isinstance(rows[0][keys[k]], (int, float))
        table.add_column(keys[k], justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis",
                         width=widths[k])
    for row in cells:
        table.add_row(*(row[k] for k in shown))
    console.print(table)


def fit_columns(keys: list[str], cells: list[list[str]], width: int, *, numeric: list[bool]) -> list[int]:
    """Column widths that fit ``width`` terminal columns; 0 hides a column.

    The first column and NAME_COLUMNS (what a user copies into a command) keep their whole width; the
    widest text columns shrink first (to 10 characters, cut with an ellipsis), then text columns are hidden
    from the right, then numbers from the right.
    """
    natural = [max([len(key), *(len(row[k]) for row in cells)]) for k, key in enumerate(keys)]
    fixed = [k == 0 or key in NAME_COLUMNS for k, key in enumerate(keys)]
    widths = list(natural)

    def total() -> int:  # each shown column: its text, a space either side and a border; one border more
        return sum(w + 3 for w in widths if w) + 1

    for k in sorted((k for k in range(len(keys)) if not fixed[k] and not numeric[k]), key=lambda k: -natural[k]):
        if total() <= width:
            break
        widths[k] = max(10, natural[k] - (total() - width)) if natural[k] > 10 else natural[k]
    text_first = [k for k in reversed(range(len(keys))) if not fixed[k] and not numeric[k]]
    for k in text_first + [k for k in reversed(range(len(keys))) if not fixed[k] and numeric[k]]:
        if total() <= width:
            break
        widths[k] = 0
    return widths


def _jsonable(value: Any) -> Any:
    return str(value)
