"""The OpenTelemetry SDK internals costspan's per-span paths read for speed, each with its fallback.

Everything here reads or writes fields of `opentelemetry.sdk.trace.Span` and
`opentelemetry.attributes.BoundedAttributes` that are not public API (`_attributes`, `_dict`,
`_immutable`, `maxlen`, `max_value_len`, `SpanProcessor._on_ending`). Each is feature-detected: where
the SDK does not have the field, the public API is used (`span.attributes`, `span.set_attributes`,
or the caller's slower path). Tested on opentelemetry-sdk 1.30.0 (no `_on_ending`) and 1.45.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Span, SpanProcessor


def attributes_of(span: Span) -> Any:
    # The SDK keeps attributes in BoundedAttributes._dict; reading it directly avoids a raised and
    # caught KeyError per absent key. Fall back to the public (slower) mapping when it is not there.
    bounded = span._attributes
    plain = getattr(bounded, "_dict", None)
    return plain if isinstance(plain, dict) else dict(span.attributes or {})


def sdk_has_on_ending() -> bool:
    """Whether this SDK calls `SpanProcessor._on_ending` and freezes attributes by a flag we can lift."""
    if not hasattr(SpanProcessor, "_on_ending"):
        return False
    try:
        from opentelemetry.attributes import BoundedAttributes

        return "_immutable" in BoundedAttributes(immutable=True).__dict__
    except Exception:
        return False


def _bounded_attributes_type() -> type | None:
    """The SDK's BoundedAttributes, if it keeps a plain `_dict` and has `maxlen` and `max_value_len`."""
    try:
        from opentelemetry.attributes import BoundedAttributes

        sample = BoundedAttributes(maxlen=1, max_value_len=None)
        return BoundedAttributes if isinstance(sample._dict, dict) and sample.maxlen == 1 else None
    except Exception:
        return None


_BoundedAttributes = _bounded_attributes_type()


def put_valid(span: Span, new_attributes: dict[str, Any]) -> bool:
    """Store attributes known to be valid straight into the span's attribute dict.

    The SDK validates every attribute it is given (several thousand instructions each); the
    values written here (strings from baggage, the numbers and strings of the contract) need none.
    Returns False, having written nothing, where the SDK would have to truncate or evict: the
    caller then goes through the SDK.
    """
    bounded = span._attributes
    if type(bounded) is _BoundedAttributes:  # its fields read directly: no getattr calls
        plain = bounded._dict
        if bounded.max_value_len is not None:
            return False
        maxlen = bounded.maxlen
    else:
        plain = getattr(bounded, "_dict", None)
        if not isinstance(plain, dict) or getattr(bounded, "max_value_len", 0) is not None:
            return False
        maxlen = getattr(bounded, "maxlen", 0)
    if maxlen is not None and len(plain) + len(new_attributes) > maxlen:
        return False
    plain.update(new_attributes)
    return True


def write_frozen(span: Span, new_attributes: dict[str, Any]) -> None:
    """Set attributes on a span that `end()` has frozen, before any `on_end` reads them, where
    `put_valid` could not."""
    bounded = span._attributes
    bounded._immutable = False  # type: ignore[union-attr]
    try:
        for key, value in new_attributes.items():
            bounded[key] = value  # type: ignore[index]
    finally:
        bounded._immutable = True  # type: ignore[union-attr]


def drop_attributes(span: Span, keys: tuple[str, ...]) -> None:
    """Remove attributes from a span, ended (frozen) or not, before any `on_end` reads them."""
    plain = getattr(span._attributes, "_dict", None)
    if isinstance(plain, dict):
        for key in keys:
            plain.pop(key, None)
