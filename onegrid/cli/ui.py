"""What a person reads: one console (wide enough for the tables when output is piped)."""

import sys

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 140)


def table(title: str, columns: list[str], rows=()) -> Table:
    """A table whose first column is left-aligned and the rest (figures) right-aligned."""
    out = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        out.add_column(col, justify="right" if i else "left")
    for row in rows:
        out.add_row(*(str(c) for c in row))
    return out
