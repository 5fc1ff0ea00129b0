"""Streams: what a stream has shown so far, each request's usage within it (`_ACTIVE_HOPS`), and
the proxies that keep the call's span current while the SDK works and end it with the stream.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._stream import AsyncStreamProxy, OnItem, SyncStreamProxy, Tail
from costspan.instrumentation._values import INVALID, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation.google_genai.request import _strip_model
from costspan.instrumentation.google_genai.response import _finish_reason, _Hops, _set_generate_usage

# The streamed public call whose HTTP requests are being made (set around each step of its stream).
_ACTIVE_HOPS: contextvars.ContextVar[_Hops | None] = contextvars.ContextVar(
    "costspan_google_genai_hops", default=None
)


def _start_hop() -> tuple[_Hops, int] | None:
    try:
        hops = _ACTIVE_HOPS.get()
        return (hops, hops.add(None)) if hops is not None else None
    except Exception as exc:
        FAULTS.record("google-genai request usage", exc)
        return None


def _observe_hop(slot: tuple[_Hops, int], chunk: Any) -> None:
    try:
        usage = _get(chunk, "usage_metadata")
        if usage is not None:
            slot[0].usages[slot[1]] = usage
    except Exception as exc:
        FAULTS.record("google-genai request usage", exc)


def _hop_stream(stream: Iterator[Any], slot: tuple[_Hops, int]) -> Iterator[Any]:
    for chunk in stream:
        _observe_hop(slot, chunk)
        yield chunk


async def _hop_async_stream(stream: AsyncIterator[Any], slot: tuple[_Hops, int]) -> AsyncIterator[Any]:
    async for chunk in stream:
        _observe_hop(slot, chunk)
        yield chunk


class _StreamUsage:
    """What a stream has shown so far: the last usage (Gemini sends running totals) and the rest."""

    __slots__ = ("call", "finish_reasons", "hops", "response_id", "response_model", "usage")

    def __init__(self, call: CallSpan) -> None:
        self.call = call
        self.hops = _Hops()
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: dict[int, str] = {}

    def watch(self) -> OnItem | Tail:
        """The last few chunks, looked at when the stream ends, for one candidate: its last chunk
        has the finish reason and the final (running-total) usage. Several candidates: each chunk."""
        if self.call.attributes.get("gen_ai.request.choice.count", 1) != 1:
            return self.on_item
        return Tail(self.on_item)

    def on_item(self, chunk: Any) -> bool:
        usage = _get(chunk, "usage_metadata")
        if usage is not None:
            self.usage = usage
        self.response_model = _get(chunk, "model_version") or self.response_model
        self.response_id = _get(chunk, "response_id") or self.response_id
        for position, candidate in enumerate(_get(chunk, "candidates") or ()):
            reason = _finish_reason(_get(candidate, "finish_reason"))
            if reason:
                index = _get(candidate, "index")
                self.finish_reasons[index if isinstance(index, int) else position] = reason
        return True

    def on_done(self) -> None:
        self.call.set_response(
            response_model=_strip_model(self.response_model),
            response_id=self.response_id,
            finish_reasons=[self.finish_reasons[i] for i in sorted(self.finish_reasons)],
        )
        total = self.hops.total()
        usage = total if total is not None else self.usage
        if usage is None:
            return
        if not self.finish_reasons and _get(usage, "candidates_token_count") is None:
            # Only a running total with the prompt count was seen: the stream ended (closed,
            # abandoned, cut) before the final chunk, and the output until then is unknown.
            prompt = usage_count(_get(usage, "prompt_token_count"))
            tool_use = usage_count(_get(usage, "tool_use_prompt_token_count"))
            cached = usage_count(_get(usage, "cached_content_token_count"))
            if type(prompt) is int and tool_use is not INVALID and cached is not INVALID:
                self.call.set_incomplete_usage(
                    "stream ended before its final chunk",
                    input_tokens=prompt + (tool_use or 0),
                    cache_read_tokens=cached,
                )
                return
        _set_generate_usage(self.call, usage)


class _SyncStream(SyncStreamProxy):
    """`SyncStreamProxy` whose span is current, and whose per-request usage is collected, while the
    SDK works (the request is only sent on the first `next()`)."""

    def __next__(self) -> Any:
        token = _ACTIVE_HOPS.set(self._self_hops)
        try:
            with _use(self._self_call):
                return SyncStreamProxy.__next__(self)
        finally:
            _ACTIVE_HOPS.reset(token)


class _AsyncStream(AsyncStreamProxy):
    """`AsyncStreamProxy` whose span is current, and whose per-request usage is collected, while the
    SDK works."""

    async def __anext__(self) -> Any:
        token = _ACTIVE_HOPS.set(self._self_hops)
        try:
            with _use(self._self_call):
                return await AsyncStreamProxy.__anext__(self)
        finally:
            _ACTIVE_HOPS.reset(token)


def _use(call: CallSpan) -> Any:
    return call.current()
