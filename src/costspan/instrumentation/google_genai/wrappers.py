"""The wrappers around the SDK's methods, one factory per kind in the patch list: start the call's
span, run the call, collect AFC responses and stream hops, and hand what it returned to the
readers (a response) or a proxy (a stream).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation.google_genai.patches import OPERATION_EMBEDDINGS, OPERATION_GENERATE
from costspan.instrumentation.google_genai.request import _afc_possible, _start
from costspan.instrumentation.google_genai.response import (
    _error_type,
    _record_embedding,
    _record_partial,
    _record_response,
)
from costspan.instrumentation.google_genai.stream import (
    _ACTIVE_HOPS,
    _AsyncStream,
    _hop_async_stream,
    _hop_stream,
    _start_hop,
    _StreamUsage,
    _SyncStream,
    _use,
)
from costspan.otel_internals.context import attach_span, detach

# The AFC responses of the `generate_content` call (with tools) that is running.
_AFC_RESPONSES: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "costspan_google_genai_afc", default=None
)


def _afc_response(args: Any, kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("response")


def _afc_sync_factory(state: Instrumentation) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        responses = _AFC_RESPONSES.get()
        if responses is None or _ACTIVE_HOPS.get() is not None:  # not a generate_content with tools
            return wrapped(*args, **kwargs)
        responses.append(_afc_response(args, kwargs))
        # It runs the caller's functions: LLM calls they make are not this call's requests.
        token = _AFC_RESPONSES.set(None)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _AFC_RESPONSES.reset(token)

    return wrapper


def _afc_async_factory(state: Instrumentation) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        responses = _AFC_RESPONSES.get()
        if responses is None or _ACTIVE_HOPS.get() is not None:
            return await wrapped(*args, **kwargs)
        responses.append(_afc_response(args, kwargs))
        token = _AFC_RESPONSES.set(None)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _AFC_RESPONSES.reset(token)

    return wrapper


def _sync_stream_hop_factory(state: Instrumentation) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        stream = wrapped(*args, **kwargs)
        slot = _start_hop()
        return stream if slot is None else _hop_stream(stream, slot)

    return wrapper


def _async_stream_hop_factory(state: Instrumentation) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        stream = await wrapped(*args, **kwargs)
        slot = _start_hop()
        return stream if slot is None else _hop_async_stream(stream, slot)

    return wrapper


Record = Callable[[CallSpan, Any, "list[Any] | None"], None]


def _sync_factory(operation: str, record: Record) -> Callable[..., Any]:
    generate = operation == OPERATION_GENERATE

    def factory(state: Instrumentation) -> Callable[..., Any]:
        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = _start(state, instance, operation, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
            afc = [] if generate and kwargs.get("config") is not None and _afc_possible(kwargs) else None
            afc_token = _AFC_RESPONSES.set(afc) if afc is not None else None
            span_token = attach_span(call.span)  # spans made inside the SDK call parent under the call's
            try:
                response = wrapped(*args, **kwargs)
            except BaseException as exc:
                detach(span_token)
                if afc_token is not None:
                    _AFC_RESPONSES.reset(afc_token)
                _record_partial(call, afc)
                call.end(exc, error_type=_error_type(exc))
                raise
            detach(span_token)
            if afc_token is not None:
                _AFC_RESPONSES.reset(afc_token)
            record(call, response, afc)
            call.end()
            return response

        return wrapper

    return factory


def _async_factory(operation: str, record: Record) -> Callable[..., Any]:
    generate = operation == OPERATION_GENERATE

    def factory(state: Instrumentation) -> Callable[..., Any]:
        async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            call = _start(state, instance, operation, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
            afc = [] if generate and kwargs.get("config") is not None and _afc_possible(kwargs) else None
            afc_token = _AFC_RESPONSES.set(afc) if afc is not None else None
            span_token = attach_span(call.span)  # spans made inside the SDK call parent under the call's
            try:
                response = await wrapped(*args, **kwargs)
            except BaseException as exc:
                detach(span_token)
                if afc_token is not None:
                    _AFC_RESPONSES.reset(afc_token)
                _record_partial(call, afc)
                call.end(exc, error_type=_error_type(exc))
                raise
            detach(span_token)
            if afc_token is not None:
                _AFC_RESPONSES.reset(afc_token)
            record(call, response, afc)
            call.end()
            return response

        return wrapper

    return factory


def _sync_stream_factory(state: Instrumentation) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(state, instance, OPERATION_GENERATE, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
        try:
            with _use(call):
                stream = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, error_type=_error_type(exc))
            raise
        try:
            seen = _StreamUsage(call)
            proxy = _SyncStream(stream, call, seen.watch(), seen.on_done, _error_type)
            proxy._self_hops = seen.hops
            return proxy
        except Exception as exc:
            FAULTS.record("google-genai stream", exc)
            call.end()
            return stream

    return wrapper


def _async_stream_factory(state: Instrumentation) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        call = _start(state, instance, OPERATION_GENERATE, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        kwargs = call.admit(kwargs)  # budgets: may raise BudgetExceeded or swap the model
        try:
            with _use(call):
                stream = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, error_type=_error_type(exc))
            raise
        try:
            seen = _StreamUsage(call)
            proxy = _AsyncStream(stream, call, seen.watch(), seen.on_done, _error_type)
            proxy._self_hops = seen.hops
            return proxy
        except Exception as exc:
            FAULTS.record("google-genai stream", exc)
            call.end()
            return stream

    return wrapper


_WRAPPER_FACTORIES: dict[str, Callable[[Instrumentation], Callable[..., Any]]] = {
    "sync": _sync_factory(OPERATION_GENERATE, _record_response),
    "sync_stream": _sync_stream_factory,
    "sync_embed": _sync_factory(OPERATION_EMBEDDINGS, _record_embedding),
    "async": _async_factory(OPERATION_GENERATE, _record_response),
    "async_stream": _async_stream_factory,
    "async_embed": _async_factory(OPERATION_EMBEDDINGS, _record_embedding),
    "sync_stream_hop": _sync_stream_hop_factory,
    "async_stream_hop": _async_stream_hop_factory,
    "afc_sync": _afc_sync_factory,
    "afc_async": _afc_async_factory,
}
