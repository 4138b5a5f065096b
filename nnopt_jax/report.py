"""Human-readable tables (rich on the terminal, Markdown in files)."""

from __future__ import annotations

from typing import Mapping, Sequence


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "nan"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a GitHub Markdown table."""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def print_rows(title: str, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> None:
    """Prints rows of dicts as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_fmt(r.get(c, "")) for c in columns))
    Console().print(table)


def print_table(title: str, values: Mapping) -> None:
    """Prints one record as a two-column key/value table."""
    print_rows(title, [{"key": k, "value": v} for k, v in values.items()], ["key", "value"])
