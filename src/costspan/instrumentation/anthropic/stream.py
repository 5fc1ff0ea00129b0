"""Streams: what a Messages event stream has shown so far (`message_start`, `message_delta`), and
the proxy that ends the call's span with the stream.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import CallSpan
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.anthropic.patches import _sdk
from costspan.instrumentation.anthropic.response import _add_counts, _error_type, _set_usage


class _StreamUsage:
    """What a Messages event stream has shown so far."""

    __slots__ = ("bad", "call", "counts", "final", "response_id", "response_model", "stop_reason")

    def __init__(self, call: CallSpan) -> None:
        self.call = call
        self.counts: dict[str, int] = {}
        self.bad: tuple[str, Any] | None = None  # the first usage field that was not a count
        self.final = False  # a `message_delta` came: its output count is the final one
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.stop_reason: str | None = None

    def on_item(self, event: Any) -> bool:
        kind = _get(event, "type")
        if kind == "message_start":
            message = _get(event, "message")
            self.response_model = _str(_get(message, "model")) or self.response_model
            self.response_id = _str(_get(message, "id")) or self.response_id
            found = _add_counts(_get(message, "usage"), self.counts)
            self.bad = self.bad or found
        elif kind == "message_delta":
            self.stop_reason = _str(_get(_get(event, "delta"), "stop_reason")) or self.stop_reason
            # Cumulative counts: `output_tokens` is final here (message_start's was a placeholder)
            # and always sent; input counts, when present, are final too.
            counts = self.counts
            counts.pop("output_tokens", None)
            usage = _get(event, "usage")
            found = _add_counts(usage, counts)
            if found is None and "output_tokens" not in counts:
                found = ("output_tokens", _get(usage, "output_tokens"))
            self.bad = self.bad or found
            self.final = True
        return True

    def on_done(self) -> None:
        call = self.call
        call.set_response(
            response_model=self.response_model,
            response_id=self.response_id,
            finish_reasons=[self.stop_reason] if self.stop_reason else None,
        )
        if self.bad is not None:
            call.set_invalid_usage(*self.bad)
        elif self.final:
            _set_usage(call, self.counts)
        elif self.counts:
            # `message_start`'s output count is a placeholder (1): the stream ended (cut, closed,
            # failed) before the final one, and the tokens generated until then are unknown.
            counts = self.counts
            uncached = counts.get("input_tokens")
            cache_read = counts.get("cache_read_input_tokens", 0)
            cache_write = counts.get("cache_creation_input_tokens", 0)
            call.set_incomplete_usage(
                "stream ended without message_delta",
                input_tokens=uncached + cache_read + cache_write if uncached is not None else None,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            )


def _wrap_stream(call: CallSpan, stream: Any) -> Any:
    seen = _StreamUsage(call)
    proxy_cls = AsyncStreamProxy if isinstance(stream, _sdk().async_stream) else SyncStreamProxy
    return proxy_cls(stream, call, seen.on_item, seen.on_done, error_type=_error_type)
