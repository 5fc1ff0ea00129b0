"""The wrappers around the SDK's methods: start the call's span, run the call, and hand what it
returned to the readers (a response) or a proxy (a stream, a raw or streaming response).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation.openai.patches import CHAT, _sdk
from costspan.instrumentation.openai.request import _request_usage, _start
from costspan.instrumentation.openai.response import _error_type, _record, _record_chat_completion
from costspan.instrumentation.openai.stream import _stream_proxy
from costspan.otel_internals.context import attach_span, detach


class _Switch:
    """Off once uninstrumented: a bound wrapper kept by the SDK (e.g. a `with_raw_response` object
    built while instrumented caches `resource.create`) then passes calls straight through."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


class _StreamingAPIResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """`with_streaming_response`: an unread `APIResponse`. Usage is read when the caller parses it."""

    def __init__(self, wrapped: Any, call: CallSpan, api: str, hide_usage: bool) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_api = api
        self._self_hide_usage = hide_usage
        # Never parsed nor closed: end the span (without usage) when the proxy is collected.
        weakref.finalize(self, call.end)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_call.end(exc, error_type=_error_type(exc))
            raise
        return self._self_parsed(parsed, bool(args or kwargs))

    def _self_parsed(self, parsed: Any, custom: bool) -> Any:
        call = self._self_call
        if call.ended:
            return parsed
        try:
            if isinstance(parsed, _sdk().streams):
                return _stream_proxy(call, self._self_api, self._self_hide_usage, parsed)
        except Exception as exc:
            FAULTS.record("openai response", exc)
        if not custom:
            _record(call, self._self_api, parsed)
        call.end()
        return parsed

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.end()


class _AsyncStreamingAPIResponse(_StreamingAPIResponse):
    async def parse(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            parsed = await self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_call.end(exc, error_type=_error_type(exc))
            raise
        return self._self_parsed(parsed, bool(args or kwargs))

    async def close(self) -> None:  # type: ignore[override]
        try:
            await self.__wrapped__.close()
        finally:
            self._self_call.end()


# What a create() can return, by result class (found once per class by `_result_kind`).
_CHAT_COMPLETION, _PARSED, _STREAM, _LEGACY_RESPONSE, _ASYNC_API_RESPONSE, _API_RESPONSE = range(6)
_RESULT_KINDS: dict[type, int] = {}


def _result_kind(result: Any) -> int:
    kind = _RESULT_KINDS.get(type(result))
    if kind is None:
        sdk = _sdk()
        if type(result) is sdk.chat_completion:
            kind = _CHAT_COMPLETION
        elif isinstance(result, sdk.streams):
            kind = _STREAM
        elif isinstance(result, sdk.legacy_response):
            kind = _LEGACY_RESPONSE
        elif isinstance(result, sdk.async_api_response):
            kind = _ASYNC_API_RESPONSE
        elif isinstance(result, sdk.api_response):
            kind = _API_RESPONSE
        else:
            kind = _PARSED
        if len(_RESULT_KINDS) < 1024:
            _RESULT_KINDS[type(result)] = kind
    return kind


def _handle_result(call: CallSpan, api: str, result: Any, hide_usage: bool) -> Any:
    """Record the response (or wrap the stream) and return what the caller gets. Never raises."""
    try:
        kind = _RESULT_KINDS.get(type(result))
        if kind is None:
            kind = _result_kind(result)
        if kind == _CHAT_COMPLETION and api == CHAT:
            _record_chat_completion(call, result)  # the common case, without `_record`'s guard
            call.end()
            return result
        if kind <= _PARSED:  # any other parsed response
            _record(call, api, result)
            call.end()
            return result
        sdk = _sdk()
        if kind == _STREAM:
            return _stream_proxy(call, api, hide_usage, result)
        if kind == _LEGACY_RESPONSE:  # with_raw_response
            parsed = result.parse()
            if isinstance(parsed, sdk.streams):
                # The caller's `.parse()` returns the cached object: cache the proxy instead.
                result._parsed_by_type[result._cast_to] = _stream_proxy(call, api, hide_usage, parsed)
                return result
            _record(call, api, parsed)
            call.end()
            return result
        if kind == _ASYNC_API_RESPONSE:  # with_streaming_response (async)
            return _AsyncStreamingAPIResponse(result, call, api, hide_usage)
        if kind == _API_RESPONSE:  # with_streaming_response
            return _StreamingAPIResponse(result, call, api, hide_usage)
    except Exception as exc:
        FAULTS.record("openai response", exc)
        call.end()
        return result
    _record(call, api, result)
    call.end()
    return result


def _sync_wrapper(state: Instrumentation, api: str, switch: _Switch) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(state, instance, api, kwargs) if switch.on and not INSIDE_TRACED_CALL.get() else None
        if call is None:
            return wrapped(*args, **kwargs)
        kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
        hide_usage = False
        if api == CHAT and kwargs.get("stream") is True:
            kwargs, hide_usage = _request_usage(kwargs, instance)
        token = attach_span(call.span)  # spans made inside the SDK call parent under the call's
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            call.end(exc, error_type=_error_type(exc))
            raise
        detach(token)
        return _handle_result(call, api, result, hide_usage)

    return wrapper


def _async_wrapper(state: Instrumentation, api: str, switch: _Switch) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(state, instance, api, kwargs) if switch.on and not INSIDE_TRACED_CALL.get() else None
        if call is None:
            return await wrapped(*args, **kwargs)
        kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
        hide_usage = False
        if api == CHAT and kwargs.get("stream") is True:
            kwargs, hide_usage = _request_usage(kwargs, instance)
        token = attach_span(call.span)  # spans made inside the SDK call parent under the call's
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            call.end(exc, error_type=_error_type(exc))
            raise
        detach(token)
        return _handle_result(call, api, result, hide_usage)

    return wrapper
