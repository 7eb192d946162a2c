"""Comma-separated values given on the command line or to the Python API ("1,8,32",
"224x224", "0.485,0.456,0.406"): one splitter, so every option reads lists the same way."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar, Union

T = TypeVar("T")
ListText = Union[str, int, float, Sequence[Union[str, int, float]]]


def split_values(value: ListText, convert: Callable[[str], T], *, separators: str = ",") -> list[T]:
    """``"1, 8,32"`` -> ``[1, 8, 32]``; a number or a sequence is taken as already split.

    Empty items are ignored; a bad item raises ``ValueError`` (callers name the option and the
    expected form in their own one-line error)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [str(value)]
    elif isinstance(value, str):
        text = value
        for sep in separators[1:]:
            text = text.replace(sep, separators[0])
        items = text.split(separators[0])
    else:
        items = [str(v) for v in value]
    return [convert(item.strip()) for item in items if item.strip()]
