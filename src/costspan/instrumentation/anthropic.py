"""OpenTelemetry instrumentor for the Anthropic Python SDK (`anthropic` 2.x): the first-party API,
Amazon Bedrock (`AnthropicBedrock`) and Google Vertex AI (`AnthropicVertex`), sync and async.

Every Messages call of the SDK (`messages.create`, with `stream=True` too, the `messages.stream(...)`
helper, `messages.parse`, the same under `beta.messages` (tool-runner turns call it), `with_raw_response` /
`with_streaming_response`) goes through the client's `request(cast_to, options, ...)` with
`POST /v1/messages`; that one method is wrapped (on `SyncAPIClient` and `AsyncAPIClient`), so every
style of call gets one CLIENT span, and SDK retries (inside `request`) stay inside that span.
`messages.count_tokens` is not a model call and gets no span. No prompt or completion text is recorded.

Usage in GenAI semconv terms: Anthropic's `input_tokens` EXCLUDES cache reads and cache writes;
`gen_ai.usage.input_tokens` = input_tokens + cache_read_input_tokens + cache_creation_input_tokens.
Streams take usage from `message_start` (input and cache counts) and `message_delta` (the final output
count; recent API versions repeat the cumulative input counts there, which then win).

The SDK's own spans (anthropic 2.x, scope `com.anthropic.sdk.python`, on unless
`ANTHROPIC_OPEN_TELEMETRY=false` or `open_telemetry=False`): while instrumented, the SDK starts no span
for a call this instrumentor wraps (the SDK's `start_api_call_span` is wrapped and answers None), so
there is one LLM span per call; where the SDK would propagate its span (its `propagation` option),
costspan's span's trace context goes into the request's headers instead, through the application's
propagator as the SDK does it. (Handing the SDK a non-recording view of costspan's span did the same
but let the SDK run its per-call tracing on it: ~167k instructions a call.) The SDK's spans of
other calls (count_tokens, files, ...) are untouched; `uninstrument()` restores the SDK's own span
for every call.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import logging
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import set_span_in_context

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._client_facts import ClientFacts
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy
from costspan.instrumentation._values import INVALID, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str

logger = logging.getLogger(__name__)

SCOPE_NAME = "costspan.instrumentation.anthropic"
PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_VERTEX_AI = "gcp.vertex_ai"
OPERATION_CHAT = "chat"

_BASE_CLIENT_MODULE = "anthropic._base_client"
# The SDK's span name for every Messages call (create, stream, parse, beta) in anthropic 2.x.
_MESSAGES_SPAN_NAME = "anthropic.messages.create"
_MESSAGES_PATHS = frozenset({"/v1/messages"})

_NUMERIC_REQUEST = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
)


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """`AnthropicInstrumentor().instrument(tracer_provider=..., meter_provider=..., rate_card=...)`."""

    # BaseInstrumentor is a singleton whose __init__ runs on every `AnthropicInstrumentor()`: what was
    # patched is kept on the class, not reset by a constructor call.
    _patched: list[tuple[Any, str]] = []  # noqa: RUF012

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 2.0, < 3",)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            base_client = importlib.import_module(_BASE_CLIENT_MODULE)
        except ImportError:
            logger.debug("anthropic is not importable; nothing to instrument")
            return
        state = Instrumentation.from_instrument_kwargs(SCOPE_NAME, kwargs)
        patched: list[tuple[Any, str]] = []
        type(self)._patched = patched
        for class_name, factory in (("SyncAPIClient", _sync_wrapper), ("AsyncAPIClient", _async_wrapper)):
            cls = getattr(base_client, class_name, None)
            if cls is None or not callable(getattr(cls, "request", None)):
                logger.debug("anthropic has no %s.request; not instrumented", class_name)
                continue
            wrapt.wrap_function_wrapper(cls, "request", factory(state))
            patched.append((cls, "request"))
        if callable(getattr(base_client, "start_api_call_span", None)):
            wrapt.wrap_function_wrapper(base_client, "start_api_call_span", _sdk_call_span)
            patched.append((base_client, "start_api_call_span"))
        elif patched:
            logger.warning(
                "costspan: this anthropic version has no start_api_call_span to hand its call span to "
                "costspan; if the SDK's own tracing is on, set ANTHROPIC_OPEN_TELEMETRY=false to keep "
                "one span per call"
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        patched = type(self)._patched
        while patched:
            owner, name = patched.pop()
            unwrap(owner, name)


# --- helpers ----------------------------------------------------------------------------------


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


# --- request side -----------------------------------------------------------------------------


def _is_messages_call(options: Any) -> bool:
    """A `POST /v1/messages` (stable or beta): named by the SDK's span name where it has one."""
    span_name = getattr(options, "span_name", None)
    if span_name is not None:
        return bool(span_name == _MESSAGES_SPAN_NAME)
    url = getattr(options, "url", None)
    method = getattr(options, "method", None)
    return (
        isinstance(url, str)
        and isinstance(method, str)
        and method.lower() == "post"
        and url.split("?", 1)[0] in _MESSAGES_PATHS
    )


class _SDKClasses:
    """The anthropic classes the hooks test against, imported once (a `from anthropic import ...`
    inside a function runs importlib's `_handle_fromlist` on every call)."""

    def __init__(self) -> None:
        from anthropic import (
            AnthropicBedrock,
            AnthropicVertex,
            APIStatusError,
            AsyncAnthropicBedrock,
            AsyncAnthropicVertex,
            AsyncStream,
            Stream,
        )
        from anthropic._response import AsyncAPIResponse, BaseAPIResponse

        self.bedrock_clients = (AnthropicBedrock, AsyncAnthropicBedrock)
        self.vertex_clients = (AnthropicVertex, AsyncAnthropicVertex)
        self.api_status_error = APIStatusError
        self.streams = (Stream, AsyncStream)
        self.async_stream = AsyncStream
        self.base_api_response = BaseAPIResponse
        self.async_api_response = AsyncAPIResponse


@functools.cache  # a C-level cache: no Python frame once loaded, so hot paths call it freely
def _sdk() -> _SDKClasses:
    return _SDKClasses()


def _provider(client: Any) -> str:
    """The client's GenAI provider: the SDK's own name for it (2.x), else by client class."""
    name = getattr(type(client), "_gen_ai_provider_name", None)
    if isinstance(name, str) and name:
        return name
    try:
        sdk = _sdk()
        if isinstance(client, sdk.bedrock_clients):
            return PROVIDER_BEDROCK
        if isinstance(client, sdk.vertex_clients):
            return PROVIDER_VERTEX_AI
    except Exception as exc:
        FAULTS.record("anthropic provider", exc)
    return PROVIDER_ANTHROPIC


def _server_attributes(base_url: Any) -> dict[str, Any]:
    host = getattr(base_url, "host", None)
    if not isinstance(host, str) or not host:
        return {}
    port = getattr(base_url, "port", None)
    if not isinstance(port, int):
        port = {"https": 443, "http": 80}.get(str(getattr(base_url, "scheme", "")))
    return {"server.address": host, "server.port": port}


def _derive_facts(client: Any, base_url: Any) -> tuple[dict[str, Any], str]:
    # Reading the URL's host and port and the provider costs ~15k instructions: once per base URL.
    return _server_attributes(base_url), _provider(client)


_CLIENT_FACTS = ClientFacts(_derive_facts)


def _admit(call: CallSpan, options: Any) -> None:
    """Budgets (`call.admit`): may raise BudgetExceeded before the request is sent; a downgrade
    swaps the model in the request body (`options.json_data`, where the SDK reads it, also to build
    Bedrock and Vertex URLs)."""
    body = getattr(options, "json_data", None)
    is_dict = isinstance(body, dict)
    admitted = call.admit(body if is_dict else {})
    if is_dict and admitted is not body and admitted.get("model") != body.get("model"):
        try:
            options.json_data = admitted
        except Exception as exc:
            FAULTS.record("anthropic budget downgrade", exc)


def _number(value: Any) -> Any:
    """A request's numeric parameter, else None (bool is not a number here)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _start(state: Instrumentation, client: Any, options: Any) -> CallSpan | None:
    """The call's span, or None when this request is not a Messages call or the span could not be
    started (the SDK call then runs unobserved). The one place where a call starts."""
    try:
        if not _is_messages_call(options) or INSIDE_TRACED_CALL.get():
            return None
        body = getattr(options, "json_data", None)
        # anthropic 2.x has no typed sampling parameters: callers send them in `extra_body`.
        extra = getattr(options, "extra_json", None)
        request, provider = _CLIENT_FACTS.of(client)
        if extra is None and isinstance(body, dict):  # the usual request: one dict to read
            for field, key in _NUMERIC_REQUEST:
                if field in body:
                    value = _number(body[field])
                    if value is not None:
                        request[key] = value
            stop = body.get("stop_sequences")
            model = body.get("model")
        else:
            for field, key in _NUMERIC_REQUEST:
                value = _get(extra, field)
                if value is None:
                    value = _get(body, field)
                value = _number(value)
                if value is not None:
                    request[key] = value
            stop = _get(body, "stop_sequences")
            model = _get(body, "model")
        if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
            request["gen_ai.request.stop_sequences"] = tuple(stop)
        return CallSpan(state, OPERATION_CHAT, provider, _str(model), request)
    except Exception as exc:
        FAULTS.record("anthropic call start", exc)
        return None


def _error_type(exc: BaseException) -> str:
    """The HTTP status code of a failed request; for an `error` event inside a stream (whose HTTP
    status was 200), the API's error type (e.g. `overloaded_error`); else the exception's type."""
    try:
        if isinstance(exc, _sdk().api_status_error):
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and status >= 400:
                return str(status)
            kind = _str(getattr(exc, "type", None)) or _str(_get(_get(exc.body, "error"), "type"))
            if kind:
                return kind
    except Exception as inner:
        FAULTS.record("anthropic error type", inner)
    return type(exc).__qualname__


# --- response side ----------------------------------------------------------------------------

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _add_counts(usage: Any, counts: dict[str, int]) -> tuple[str, Any] | None:
    """Put `usage`'s counts into `counts` (a null field is left out: a stream's `message_delta`
    sends null for counts it does not repeat). The first field that is there but is not a count,
    else None."""
    if usage is None:
        return None
    is_dict = isinstance(usage, dict)
    bad = None
    for field in _USAGE_FIELDS:
        value = usage.get(field) if is_dict else getattr(usage, field, None)
        if type(value) is not int:  # an int: the usual count, stored as it is
            if value is None:
                continue
            checked = usage_count(value)
            if checked is INVALID:
                bad = bad or (field, value)
                continue
            value = checked
        counts[field] = value
    details = usage.get("output_tokens_details") if is_dict else getattr(usage, "output_tokens_details", None)
    if details is not None:
        value = _get(details, "thinking_tokens")
        thinking = usage_count(value)
        if thinking is INVALID:
            bad = bad or ("output_tokens_details.thinking_tokens", value)
        elif thinking is not None:
            counts["thinking_tokens"] = thinking
    return bad


def _set_usage(call: CallSpan, counts: dict[str, int]) -> None:
    """Anthropic's counts in semconv terms: input includes cache reads and cache writes. Input and
    output always come together: one without the other makes the call `invalid_usage`."""
    uncached = counts.get("input_tokens")
    output = counts.get("output_tokens")
    if uncached is None or output is None:
        if uncached is not None or output is not None:
            call.set_invalid_usage("input_tokens" if uncached is None else "output_tokens", None)
        return
    cache_read = counts.get("cache_read_input_tokens", 0)
    cache_write = counts.get("cache_creation_input_tokens", 0)
    call.set_usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=counts.get("thinking_tokens"),
    )


def _record_message(call: CallSpan, message: Any) -> None:
    try:
        if isinstance(message, dict):
            stop_reason, model, message_id = (
                message.get("stop_reason"),
                message.get("model"),
                message.get("id"),
            )
            usage = message.get("usage")
        else:
            stop_reason = getattr(message, "stop_reason", None)
            model = getattr(message, "model", None)
            message_id = getattr(message, "id", None)
            usage = getattr(message, "usage", None)
        stop_reason = _str(stop_reason)
        call.set_response(
            response_model=_str(model),
            response_id=_str(message_id),
            finish_reasons=[stop_reason] if stop_reason else None,
        )
        if usage is not None:
            counts: dict[str, int] = {}
            bad = _add_counts(usage, counts)
            if bad is not None:
                call.set_invalid_usage(*bad)
            else:
                _set_usage(call, counts)
    except Exception as exc:
        FAULTS.record("anthropic response", exc)


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


# --- wrappers ---------------------------------------------------------------------------------


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
