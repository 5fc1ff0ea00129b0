"""Reading SDK responses that may be typed objects or plain dicts, as every instrumentor does."""

from __future__ import annotations

from typing import Any


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


def non_empty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
