"""The `costspan-cost` response header: what a request cost the service that answered it, version 1.

```
costspan-cost: v1;usd=0.0135;calls=3;in=3000;out=600;sig=<64 hex digits>
```

Fields after the version are `key=value`, separated by `;`, in any order: `usd` (decimal, exact: the
sum of the request's calls in 1e-24 USD, never rounded through a float), then whole numbers `calls`
(LLM calls), `failed`, `unpriced`, `tools` (priced tool calls), `in`, `out`, `cr` (cache read), `cw`
(cache write), `rs` (reasoning) tokens; a zero count is left out. `sig` comes last when the service
has `COSTSPAN_BAGGAGE_SECRET`: HMAC-SHA256 under that secret of `<trace id, 32 hex>;` followed by
everything before `;sig=`, so a signed value is only good within the trace it was made for. A
reader of v1 ignores keys it does not know (they are still covered by the signature); a value that
is not `v1;...`, a missing `usd` or `calls`, a number out of range or a header over 1,024
characters is malformed and ignored as a whole.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal
from typing import Final

from costspan.rollup.call_pricing import (
    CACHE_READ,
    CACHE_WRITE,
    COST,
    FAILED,
    INPUT,
    LLM_CALLS,
    OUTPUT,
    REASONING,
    REMOTE_CALLS,
    REMOTE_COST,
    TALLY_SIZE,
    TOOL_CALLS,
    UNPRICED,
)

HEADER: Final = "costspan-cost"
VERSION: Final = "v1"
MAX_LENGTH: Final = 1024
# Sums a real request cannot reach: a value above is malformed, not spend.
MAX_USD_DIGITS: Final = 9  # under $1,000,000,000
MAX_COUNT: Final = 10**15

_COUNT_FIELDS: Final = (
    ("calls", LLM_CALLS),
    ("failed", FAILED),
    ("unpriced", UNPRICED),
    ("tools", TOOL_CALLS),
    ("in", INPUT),
    ("out", OUTPUT),
    ("cr", CACHE_READ),
    ("cw", CACHE_WRITE),
    ("rs", REASONING),
)
_SLOT_OF: Final = dict(_COUNT_FIELDS)
_USD = re.compile(rf"\d{{1,{MAX_USD_DIGITS}}}(?:\.\d{{1,24}})?")
_COUNT = re.compile(r"\d{1,16}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class MalformedCostHeader(ValueError):
    """A `costspan-cost` value that is not a v1 cost."""


def usd_text(units: int) -> str:
    """1e-24 USD units as an exact decimal string: 4500000000000000000000 -> `0.0045`."""
    if units == 0:
        return "0"
    text = format(Decimal(units).scaleb(-24), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def encode(tally: list[int]) -> str:
    """The unsigned header value for a request's tally (remote slots are part of the totals already)."""
    parts = [VERSION, "usd=" + usd_text(tally[COST])]
    parts.extend(f"{name}={tally[slot]}" for name, slot in _COUNT_FIELDS if tally[slot] or slot == LLM_CALLS)
    return ";".join(parts)


def _mac(secret: bytes, trace_id: int, body: str) -> str:
    message = f"{trace_id:032x};{body}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(body: str, secret: bytes, trace_id: int) -> str:
    """`body` with its `;sig=` appended, bound to the trace."""
    return f"{body};sig={_mac(secret, trace_id, body)}"


def split_signature(value: str) -> tuple[str, str | None]:
    """(body, signature or None)."""
    body, found, signature = value.rpartition(";sig=")
    if not found:
        return value, None
    return body, signature


def signature_valid(body: str, signature: str, secret: bytes, trace_id: int) -> bool:
    return _SIGNATURE.fullmatch(signature) is not None and hmac.compare_digest(
        signature, _mac(secret, trace_id, body)
    )


def decode(body: str) -> list[int]:
    """The tally a header body (signature removed) reports, as spent elsewhere: its cost and calls are
    also in the REMOTE slots. Raises MalformedCostHeader."""
    if len(body) > MAX_LENGTH:
        raise MalformedCostHeader(f"longer than {MAX_LENGTH} characters")
    version, _, rest = body.strip().partition(";")
    if version != VERSION:
        raise MalformedCostHeader(f"version {version[:16]!r} is not {VERSION}")
    tally = [0] * TALLY_SIZE
    seen: set[str] = set()
    for item in rest.split(";"):
        key, equals, value = item.strip().partition("=")
        if not equals or key in seen:
            raise MalformedCostHeader(f"bad field {item[:32]!r}")
        seen.add(key)
        if key == "usd":
            if _USD.fullmatch(value) is None:
                raise MalformedCostHeader(f"usd={value[:32]!r}")
            tally[COST] = int(Decimal(value).scaleb(24))
        elif key in _SLOT_OF:
            if _COUNT.fullmatch(value) is None or int(value) > MAX_COUNT:
                raise MalformedCostHeader(f"{key}={value[:32]!r}")
            tally[_SLOT_OF[key]] = int(value)
    if "usd" not in seen or "calls" not in seen:
        raise MalformedCostHeader("usd and calls are required")
    tally[REMOTE_COST] = tally[COST]
    tally[REMOTE_CALLS] = tally[LLM_CALLS]
    return tally


__all__ = [
    "HEADER",
    "VERSION",
    "MalformedCostHeader",
    "decode",
    "encode",
    "sign",
    "signature_valid",
    "split_signature",
    "usd_text",
]
