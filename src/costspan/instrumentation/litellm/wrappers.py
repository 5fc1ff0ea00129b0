"""The wrappers around LiteLLM's functions: start the call's span, run the call with costspan's
SDK instrumentors quiet inside it, and hand what it returned to the readers (a response) or a
proxy (a stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy
from costspan.instrumentation.litellm.patches import OPERATION_CHAT
from costspan.instrumentation.litellm.request import _admit, _ask_for_stream_usage, _by_name, _start
from costspan.instrumentation.litellm.response import _error_type, _record
from costspan.instrumentation.litellm.stream import _is_stream, _StreamState
from costspan.otel_internals.context import attach_span, detach


def _handle_result(call: CallSpan, operation: str, result: Any, hide_usage: bool, is_async: bool) -> Any:
    """Record the response (or proxy the stream); return what the caller gets. Never raises."""
    try:
        if operation == OPERATION_CHAT and _is_stream(result):
            state = _StreamState(call, hide_usage)
            proxy_cls = AsyncStreamProxy if is_async else SyncStreamProxy
            return proxy_cls(result, call, state.on_item, state.on_done, _error_type)
    except Exception as exc:
        FAULTS.record("litellm response", exc)
        call.end()
        return result
    _record(call, operation, result)
    call.end()
    return result


def _sync_wrapper(state: Instrumentation, operation: str) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if INSIDE_TRACED_CALL.get():  # a call LiteLLM makes inside a traced one (its retries)
            return wrapped(*args, **kwargs)
        if args:
            named = _by_name(operation, args, kwargs)
            if named is None:
                return wrapped(*args, **kwargs)
            args, kwargs = (), named
        call = _start(state, operation, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        kwargs = _admit(call, kwargs)  # budgets: may raise BudgetExceeded or swap the model
        hide_usage = False
        if operation == OPERATION_CHAT and kwargs.get("stream") is True:
            kwargs, hide_usage = _ask_for_stream_usage(kwargs)
        inside = INSIDE_TRACED_CALL.set(True)
        token = attach_span(call.span)  # spans made inside the call parent under the call's
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            INSIDE_TRACED_CALL.reset(inside)
            call.end(exc, error_type=_error_type(exc))
            raise
        detach(token)
        INSIDE_TRACED_CALL.reset(inside)
        return _handle_result(call, operation, result, hide_usage, False)

    return wrapper


def _async_wrapper(state: Instrumentation, operation: str) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if INSIDE_TRACED_CALL.get():
            return await wrapped(*args, **kwargs)
        if args:
            named = _by_name(operation, args, kwargs)
            if named is None:
                return await wrapped(*args, **kwargs)
            args, kwargs = (), named
        call = _start(state, operation, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        kwargs = _admit(call, kwargs)
        hide_usage = False
        if operation == OPERATION_CHAT and kwargs.get("stream") is True:
            kwargs, hide_usage = _ask_for_stream_usage(kwargs)
        inside = INSIDE_TRACED_CALL.set(True)
        token = attach_span(call.span)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            INSIDE_TRACED_CALL.reset(inside)
            call.end(exc, error_type=_error_type(exc))
            raise
        detach(token)
        INSIDE_TRACED_CALL.reset(inside)
        return _handle_result(call, operation, result, hide_usage, True)

    return wrapper
