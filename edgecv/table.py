"""Tables for human output: aligned plain text for the terminal, Markdown for reports
(``--json`` gives machine output instead). One renderer each, so every command's tables agree."""
from __future__ import annotations

from typing import Any, Callable, Sequence


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _cells(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] | None,
           formatters: dict[str, Callable[[Any], str]] | None) -> tuple[list[tuple[str, str]], list[list[str]]]:
    if columns is None:
        columns = [(key, key) for key in (rows[0].keys() if rows else [])]
    formatters = formatters or {}
    return list(columns), [[formatters.get(k, _fmt)(row.get(k)) for k, _ in columns] for row in rows]


def _numeric(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[bool]:
    """Columns whose values are all numbers (or missing) are right-aligned."""
    return [bool(rows) and all(isinstance(row.get(k), (int, float)) or row.get(k) is None for row in rows)
            for k, _ in columns]


def markdown_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    formatters: dict[str, Callable[[Any], str]] | None = None,
) -> str:
    """Render ``rows`` as a GitHub Markdown table (same ``columns``/``formatters`` as
    :func:`format_table`)."""
    columns, cells = _cells(rows, columns, formatters)
    rule = ["---:" if numeric else "---" for numeric in _numeric(rows, columns)]
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    formatters: dict[str, Callable[[Any], str]] | None = None,
) -> str:
    """Render ``rows`` as an aligned table.

    ``columns`` is a list of ``(key, header)``; numbers are right-aligned, text left-aligned.
    ``formatters`` maps a key to a function that turns its value into text.
    """
    columns, cells = _cells(rows, columns, formatters)
    headers = [h for _, h in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = _numeric(rows, columns)

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)
