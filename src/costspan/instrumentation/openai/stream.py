"""Streams: what a chat or Responses API stream has shown so far, and the proxy that ends the
call's span with the stream. For a chat stream whose usage costspan asked for, the usage-only chunk
is kept from the caller.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._stream import AsyncStreamProxy, OnItem, SyncStreamProxy, Tail
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.openai.patches import CHAT, RESPONSES, _sdk
from costspan.instrumentation.openai.response import _error_type, _record, _set_any_chat_usage


class _ChatStreamState:
    """What a chat stream has shown so far."""

    __slots__ = (
        "call",
        "finish_reasons",
        "hide_usage",
        "response_id",
        "response_model",
        "usage",
        "usage_event_taken",
    )

    def __init__(self, call: CallSpan, hide_usage: bool) -> None:
        self.call = call
        self.hide_usage = hide_usage
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: dict[int, str] = {}
        self.usage_event_taken = False

    def watch(self) -> OnItem | Tail:
        """How the proxy shows this state the chunks: each one as it comes, where the usage chunk
        costspan asked for may reach the caller (see `_take_usage_event`) or the request asked for
        several choices (their finish reasons come in any chunk); else the last few, when the
        stream ends. A one-choice stream says everything the span needs in its last chunks: the
        finish reason, then usage (and, on Azure, a content filter result)."""
        choices = self.call.attributes.get("gen_ai.request.choice.count", 1)
        if choices != 1 or (self.hide_usage and not self.usage_event_taken):
            return self.on_item
        return Tail(self.on_item, _unset_null_usage if self.hide_usage else None)

    def on_item(self, chunk: Any) -> bool:
        # Where the proxy shows each chunk (see `watch`), runs for every one: no helper calls on the
        # common path.
        if type(chunk) is dict:
            return self._on_dict(chunk)
        if self.response_id is None:  # every chunk of a stream repeats the first one's id and model
            model = getattr(chunk, "model", None)
            if isinstance(model, str) and model:
                self.response_model = model
            response_id = getattr(chunk, "id", None)
            if isinstance(response_id, str) and response_id:
                self.response_id = response_id
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if choices:
            for choice in choices:
                if getattr(choice, "finish_reason", None):
                    self._finish_reasons(choices)
                    break
        if usage is not None:
            self.usage = usage
            # The usage-only chunk costspan asked for is hidden (an error the SDK let through is not).
            return bool(choices) or not self.hide_usage or _carries_error(chunk)
        if self.hide_usage:
            # costspan's include_usage makes the API send `"usage": null` on every other chunk: an
            # uninstrumented caller would not have that field set.
            fields_set = getattr(chunk, "__pydantic_fields_set__", None)
            if isinstance(fields_set, set):
                fields_set.discard("usage")
        return True

    def _finish_reasons(self, choices: Any) -> None:
        for position, choice in enumerate(choices):
            reason = _str(_get(choice, "finish_reason"))
            if reason:
                index = _get(choice, "index")
                self.finish_reasons[index if isinstance(index, int) else position] = reason

    def _on_dict(self, chunk: dict[str, Any]) -> bool:
        self.response_model = _str(chunk.get("model")) or self.response_model
        self.response_id = _str(chunk.get("id")) or self.response_id
        choices = chunk.get("choices")
        if choices:
            self._finish_reasons(choices)
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = usage
            return bool(choices) or not self.hide_usage or bool(chunk.get("error"))
        return True

    def on_done(self) -> None:
        call = self.call
        reasons = self.finish_reasons
        call.set_response(
            response_model=self.response_model,
            response_id=self.response_id,
            finish_reasons=[reasons[i] for i in sorted(reasons)] if reasons else None,
        )
        if self.usage is not None:
            _set_any_chat_usage(call, self.usage)


def _carries_error(chunk: Any) -> bool:
    """A typed chunk with an `error` field (kept by the SDK's models as an extra field)."""
    extra = getattr(chunk, "model_extra", None)
    return bool(extra.get("error")) if isinstance(extra, dict) else False


def _unset_null_usage(chunk: Any) -> None:
    """costspan's include_usage makes the API send `"usage": null` on every other chunk: an
    uninstrumented caller's chunks do not have that field set."""
    try:  # noqa: SIM105  (runs for every chunk: cheaper than contextlib.suppress)
        chunk.__pydantic_fields_set__.discard("usage")
    except AttributeError:
        pass


# How the API ends every chunk but the usage-only one once usage is asked for: a check of the
# event's last bytes, where looking for `"usage"` in the text scans all of it.
_NULL_USAGE_ENDINGS = ('"usage":null}', '"usage": null}')


def _is_usage_candidate(data: str) -> bool:
    """An event whose usage is not null, for a server that puts its fields in another order."""
    return '"usage"' in data and '"usage":null' not in data and '"usage": null' not in data


def _took_usage(data: str, state: _ChatStreamState) -> bool:
    """If an SSE event's data is the usage-only chunk (no choices), its usage goes to the state: True."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    if type(chunk) is dict and not chunk.get("choices") and type(chunk.get("usage")) is dict:
        state.usage = chunk["usage"]
        # An event with an `error` is one the SDK raises as `openai.APIError`: it goes on to the SDK,
        # as it would uninstrumented (its usage, which the API says was used, stays the call's).
        return not chunk.get("error")
    return False


def _forget_events_hook(stream: Any) -> None:
    """The SDK reads `_iter_events` once, when the stream starts. Left on the instance, the hook (whose
    closure holds the stream) would keep the stream and its response in a reference cycle that only
    the garbage collector frees: ~35k instructions per stream in collections and allocator work."""
    vars(stream).pop("_iter_events", None)


def _take_usage_event(stream: Any, state: _ChatStreamState) -> bool:
    """Read the usage-only chunk costspan asked for off the SSE events, before the SDK builds a
    typed chunk of it that the caller would never see. True when that is set up.

    Uses the SDK's private `Stream._iter_events` (openai 3.0 to 3.54), which its `__stream__`
    generator calls at the first chunk: replaced on this stream instance only, before the
    iteration starts. Each event's text is read from its `_data` field where it has one (the
    public `data` property otherwise). Anything else (a stream already started, another shape) keeps the SDK's
    path: False, and the proxy hides the typed usage chunk, looking at each chunk.

    (Dropping the `"usage":null` the API then puts on every other chunk from the event text too
    was slower: the SDK fills a missing field with its default at a higher cost than a null.)
    """
    try:
        read_events = getattr(type(stream), "_iter_events", None)
        iterator = getattr(stream, "_iterator", None)
        if read_events is None or "_iter_events" in vars(stream):
            return False
        if inspect.isgenerator(iterator) and inspect.getgeneratorstate(iterator) == inspect.GEN_CREATED:

            def events() -> Iterator[Any]:
                _forget_events_hook(stream)
                for event in read_events(stream):
                    try:  # the SDK's `data` property is a Python call per event
                        data = event._data
                    except AttributeError:
                        data = event.data
                    # Runs for every event, inline: only the usage-only chunk has a usage that is
                    # not null (every other chunk of a stream that asked for usage says so, last).
                    if (
                        type(data) is str
                        and not data.endswith(_NULL_USAGE_ENDINGS)
                        and _is_usage_candidate(data)
                        and _took_usage(data, state)
                    ):
                        continue
                    yield event

            stream._iter_events = events
        elif (
            inspect.isasyncgen(iterator) and iterator.ag_frame is not None and iterator.ag_frame.f_lasti <= 0
        ):

            async def async_events() -> AsyncIterator[Any]:
                _forget_events_hook(stream)
                async for event in read_events(stream):
                    try:
                        data = event._data
                    except AttributeError:
                        data = event.data
                    if (
                        type(data) is str
                        and not data.endswith(_NULL_USAGE_ENDINGS)
                        and _is_usage_candidate(data)
                        and _took_usage(data, state)
                    ):
                        continue
                    yield event

            stream._iter_events = async_events
        else:
            return False
        return True
    except Exception as exc:
        FAULTS.record("openai stream usage event", exc)
        return False


_RESPONSE_EVENTS_WITH_RESPONSE = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)


class _ResponsesStreamState:
    """What a Responses API event stream has shown so far (the final event carries the usage)."""

    __slots__ = ("call", "response")

    def __init__(self, call: CallSpan) -> None:
        self.call = call
        self.response: Any = None

    def watch(self) -> OnItem:
        return self.on_item

    def on_item(self, event: Any) -> bool:
        if _get(event, "type") in _RESPONSE_EVENTS_WITH_RESPONSE:
            response = _get(event, "response")
            if response is not None:
                self.response = response
        return True

    def on_done(self) -> None:
        if self.response is not None:
            _record(self.call, RESPONSES, self.response)


def _stream_proxy(call: CallSpan, api: str, hide_usage: bool, stream: Any) -> Any:
    """The SDK's Stream/AsyncStream, proxied so that the call's span ends with the stream."""
    state = _ChatStreamState(call, hide_usage) if api == CHAT else _ResponsesStreamState(call)
    if hide_usage and api == CHAT and _take_usage_event(stream, state):  # type: ignore[arg-type]
        state.usage_event_taken = True
    proxy_cls = AsyncStreamProxy if isinstance(stream, _sdk().async_stream) else SyncStreamProxy
    return proxy_cls(stream, call, state.watch(), state.on_done, _error_type)
