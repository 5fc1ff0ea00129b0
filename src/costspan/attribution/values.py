"""What an attribution value may be: a short, printable string, the same on every hop.

Attribution values end up as span attributes, as metric dimensions and in the `baggage` header of
every outbound request, so each one is made safe once, where it enters:

- leading and trailing whitespace is removed (the W3C baggage propagator strips it on extract, so
  a value must not change between services);
- a character that is not printable (Unicode categories Cc, Cf, Cs, Zl, Zp: control characters,
  invisible format and bidi controls, lone surrogates that no exporter can encode, line separators)
  is replaced by its escape, e.g. ``\\x0a``, so distinct values stay distinct;
- a value longer than `MAX_VALUE_BYTES` UTF-8 bytes is cut to its first bytes (at a character
  boundary), ``~`` and 16 hex digits of the SHA-256 of the whole cleaned value, so two different
  long values never become the same value;
- a value that is empty after this is no value.

`attribution_value` is for values the application passes to `attribute()` / `task()` and friends:
a value of a type that is not an attribution (a float, a dict, bytes...) is a bug in the calling
code and raises TypeError there. `clean_attribution` is for values costspan did not choose (baggage
that arrived over the network or was set with `opentelemetry.baggage` directly): it never raises,
and drops what it cannot use.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Final

from costspan import attributes as attrs

AttributionValue = str | int | uuid.UUID
"""What application code may pass as an attribution value."""

MAX_VALUE_BYTES: Final = 256
_DIGEST_HEX = 16
_FAST_LENGTH = MAX_VALUE_BYTES // 4  # this many characters are at most MAX_VALUE_BYTES UTF-8 bytes
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEYS = frozenset(attrs.ATTRIBUTION_KEYS)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _shorten(value: str) -> str:
    encoded = value.encode("utf-8")
    if len(encoded) <= MAX_VALUE_BYTES:
        return value
    digest = hashlib.sha256(encoded).hexdigest()[:_DIGEST_HEX]
    keep = encoded[: MAX_VALUE_BYTES - _DIGEST_HEX - 1].decode("utf-8", errors="ignore")
    return f"{keep}~{digest}"


def clean_text(value: str) -> str | None:
    """`value` made safe as described in the module docstring; None when nothing is left."""
    value = value.strip()
    if not value.isprintable():  # fast path: printable text has none of the escaped categories
        value = "".join(
            _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char for char in value
        )
    if len(value) * 4 > MAX_VALUE_BYTES:  # cheap bound: a character is at most 4 UTF-8 bytes
        value = _shorten(value)
    return value or None


def attribution_value(key: str, value: object) -> str | None:
    """A value given by application code, cleaned; None (or empty) means "not given".

    Strings, ints and UUIDs are accepted (ints and UUIDs written as `str()` writes them). Anything
    else raises TypeError naming the key: `str()` of an arbitrary object (a float, a dict, a model
    instance with an address in its repr) is not a stable, low-cardinality label.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return clean_text(str(value))
    raise TypeError(
        f"{key}: an attribution value must be a str, int or uuid.UUID, "
        f"got {type(value).__name__} {value!r:.80}"
    )


def clean_attribution(entries: Mapping[str, object]) -> dict[str, str]:
    """The costspan attribution entries of a baggage mapping, cleaned; never raises.

    Keys other than the attribution keys are left out. A value that is not a string (baggage set
    by hand can hold any object) is kept only if it is an int or a UUID.
    """
    cleaned: dict[str, str] = {}
    for key in attrs.ATTRIBUTION_KEYS:
        value = entries.get(key)
        if value is None:
            continue
        # Fast path for what attribute() and the baggage guard produce: short, printable, stripped
        # (str.strip returns the string itself when there is nothing to strip).
        if (
            type(value) is str
            and 0 < len(value) <= _FAST_LENGTH
            and value.isprintable()
            and value.strip() is value
        ):
            cleaned[key] = value
            continue
        try:
            text = attribution_value(key, value)
        except Exception:  # a type we do not accept, or a str subclass whose methods misbehave
            continue
        if text is not None:
            cleaned[key] = text
    return cleaned


def is_attribution_key(key: object) -> bool:
    return key in _KEYS


__all__ = [
    "MAX_VALUE_BYTES",
    "AttributionValue",
    "attribution_value",
    "clean_attribution",
    "clean_text",
    "is_attribution_key",
]
