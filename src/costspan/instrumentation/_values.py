"""Reading SDK responses that may be typed objects or plain dicts, as every instrumentor does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from costspan.rollup.usage import MAX_TOKENS


class Invalid:
    """A usage field that is there but is not a token count (fractional, a string, negative, ...)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = Invalid()


def get_field(obj: Any, name: str) -> Any:
    """`obj.name` or `obj[name]`; None when `obj` is None or has no such field."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def token_count(value: Any) -> int | None:
    """A non-negative whole number of tokens (an int, or a whole float), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def usage_count(value: Any) -> int | Invalid | None:
    """A usage field as the instrumentors read it: None when it is absent (None), the count when it
    is a whole number from 0 to MAX_TOKENS (an int, or a whole float), else INVALID: a field that is
    there but is not a count invalidates the call's usage instead of being dropped."""
    if value is None:
        return None
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        return int(value) if 0 <= value <= MAX_TOKENS else INVALID
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    return INVALID


def non_empty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def checked_counts(
    fields: Sequence[tuple[str, Any]], required: int
) -> tuple[list[int | None], tuple[str, Any] | None]:
    """A response's usage fields (name, value), the first `required` of them the ones the API always
    sends together. The counts (None where absent), and the first field that makes the usage
    unusable: one that is there but is not a count, or a required one absent (None) beside a
    required one that is there. None when the usage is usable (or wholly absent)."""
    counts: list[int | None] = []
    bad: tuple[str, Any] | None = None
    for name, value in fields:
        count = usage_count(value)
        if count is INVALID:
            if bad is None:
                bad = (name, value)
            count = None
        counts.append(count)  # type: ignore[arg-type]
    if bad is None and required > 1:
        head = counts[:required]
        if None in head and any(count is not None for count in head):
            bad = (fields[head.index(None)][0], None)
    return counts, bad
