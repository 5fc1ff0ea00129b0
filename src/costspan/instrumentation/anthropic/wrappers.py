"""The wrappers around the SDK's client `request` and its `start_api_call_span`: start the call's
span, run the call, and hand what it returned to the readers (a Message) or a proxy (a stream, a
raw or streaming response); the SDK's own span for the call is replaced by costspan's.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import wrapt
from opentelemetry.trace import set_span_in_context

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation.anthropic.patches import _sdk
from costspan.instrumentation.anthropic.request import _admit, _is_messages_call, _start
from costspan.instrumentation.anthropic.response import _error_type, _record_message
from costspan.instrumentation.anthropic.stream import _wrap_stream

# The call whose request is being made: the SDK's own span for it is replaced (see `_sdk_call_span`).
_ACTIVE_CALL: contextvars.ContextVar[CallSpan | None] = contextvars.ContextVar(
    "costspan_anthropic_call", default=None
)


def _sdk_call_span(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """`anthropic._base_client.start_api_call_span`: for a call costspan traces, no SDK span (the
    SDK then sends the request untraced) and, where the SDK would have propagated its span,
    costspan's span's trace context in the request's headers."""
    call = _ACTIVE_CALL.get()
    if call is None:
        return wrapped(*args, **kwargs)
    try:
        options = args[2] if len(args) > 2 else kwargs.get("options")
        if not _is_messages_call(options):
            return wrapped(*args, **kwargs)
    except Exception as exc:
        FAULTS.record("anthropic sdk span", exc)
        return wrapped(*args, **kwargs)
    if kwargs.get("propagation", True):
        try:
            _send_trace_context(call, options)
        except Exception as exc:  # the SDK's own injection gives up the same way: no headers
            FAULTS.record("anthropic trace headers", exc)
    return None


def _send_trace_context(call: CallSpan, options: Any) -> None:
    """The headers the SDK's `inject_trace_headers` would set for costspan's span (the global
    propagator's), added to the request options' headers (replacing any of the same name)."""
    if not _INJECT:
        # Imported on first use, as the SDK does: the module loads the propagators OTEL_PROPAGATORS names.
        from opentelemetry.propagate import inject

        _INJECT.append(inject)
    carrier: dict[str, str] = {}
    _INJECT[0](carrier, set_span_in_context(call.span))
    if carrier:
        headers = options.headers
        options.headers = {**headers, **carrier} if isinstance(headers, Mapping) else carrier


_INJECT: list[Callable[..., None]] = []


class _RawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """`with_raw_response` / `with_streaming_response`: an `APIResponse`. Usage is read when the caller
    parses it (a streamed body: the parsed stream is proxied); an unparsed response ends the span
    (without usage) when it is closed or collected."""

    def __init__(self, wrapped: Any, call: CallSpan) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream: Any = None
        weakref.finalize(self, call.end)

    def _self_parsed(self, parsed: Any, custom: bool) -> Any:
        call = self._self_call
        if self._self_stream is not None and not custom:
            return self._self_stream
        if call.ended:
            return parsed
        try:
            if isinstance(parsed, _sdk().streams):
                self._self_stream = _wrap_stream(call, parsed)
                return self._self_stream
        except Exception as exc:
            FAULTS.record("anthropic response", exc)
        if not custom:
            _record_message(call, parsed)
        call.end()
        return parsed

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_call.end(exc, error_type=_error_type(exc))
            raise
        return self._self_parsed(parsed, bool(args or kwargs))

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            if self._self_stream is None:
                self._self_call.end()


class _AsyncRawResponse(_RawResponse):
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
            if self._self_stream is None:
                self._self_call.end()


def _handle_result(call: CallSpan, result: Any) -> Any:
    """Record the response (or wrap the stream / raw response); return what the caller gets. Never raises."""
    try:
        sdk = _sdk()
        if isinstance(result, sdk.streams):
            return _wrap_stream(call, result)
        if isinstance(result, sdk.base_api_response):
            return (
                _AsyncRawResponse(result, call)
                if isinstance(result, sdk.async_api_response)
                else _RawResponse(result, call)
            )
    except Exception as exc:
        FAULTS.record("anthropic response", exc)
        call.end()
        return result
    _record_message(call, result)
    call.end()
    return result


def _sync_wrapper(state: Instrumentation) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        options = args[1] if len(args) > 1 else kwargs.get("options")
        call = _start(state, instance, options)
        if call is None:
            return wrapped(*args, **kwargs)
        _admit(call, options)  # budgets: may raise BudgetExceeded or swap the model
        token = _ACTIVE_CALL.set(call)
        try:
            with call.current():  # nested spans (e.g. httpx instrumentation) parent under it
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, error_type=_error_type(exc))
            raise
        finally:
            _ACTIVE_CALL.reset(token)
        return _handle_result(call, result)

    return wrapper


def _async_wrapper(state: Instrumentation) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        options = args[1] if len(args) > 1 else kwargs.get("options")
        call = _start(state, instance, options)
        if call is None:
            return await wrapped(*args, **kwargs)
        _admit(call, options)  # budgets: may raise BudgetExceeded or swap the model
        token = _ACTIVE_CALL.set(call)
        try:
            with call.current():  # nested spans (e.g. httpx instrumentation) parent under it
                result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, error_type=_error_type(exc))
            raise
        finally:
            _ACTIVE_CALL.reset(token)
        return _handle_result(call, result)

    return wrapper
