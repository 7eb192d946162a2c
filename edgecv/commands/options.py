"""Click option types shared by the commands (the CLI layer; the library never imports click)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import click

from edgecv.parsing import split_values


class CommaList(click.ParamType):
    """A comma-separated list option: ``--batch 1,8,32`` -> ``[1, 8, 32]``.

    Bad values are click usage errors (exit 2) naming the option, the value and an example."""

    name = "list"

    def __init__(self, convert: Callable[[str], Any] = int, *, example: str, minimum: float | None = None,
                 choices: Sequence[str] | None = None, lengths: Sequence[int] | None = None,
                 separators: str = ",") -> None:
        self.convert_item = convert
        self.example = example
        self.minimum = minimum
        self.choices = tuple(choices) if choices else None
        self.lengths = tuple(lengths) if lengths else None
        self.separators = separators

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[Any]:
        if isinstance(value, list):  # already converted (a default, or click calling twice)
            return value
        try:
            items = split_values(value, self.convert_item, separators=self.separators)
        except ValueError:
            items = None
        if not items or not self._acceptable(items):
            self.fail(f"{value!r}: expected {self._expected()}, e.g. {self.example}", param, ctx)
        if self.choices:
            items = [str(i).lower() for i in items]
        return items

    def _acceptable(self, items: list[Any]) -> bool:
        if self.lengths and len(items) not in self.lengths:
            return False
        if self.minimum is not None and any(i < self.minimum for i in items):
            return False
        return not self.choices or all(str(i).lower() in self.choices for i in items)

    def _expected(self) -> str:
        if self.choices:
            return "comma-separated values from " + ", ".join(self.choices)
        kind = {int: "integers", float: "numbers"}.get(self.convert_item, "values")
        if self.minimum == 1 and self.convert_item is int:
            kind = "positive integers"
        counts = f"{' or '.join(map(str, self.lengths))} " if self.lengths else ""
        return f"{counts}comma-separated {kind}"
