"""OpenTelemetry instrumentor for the Google Gen AI SDK (`google-genai` 3.x).

Patches `Models.generate_content`, `generate_content_stream`, `embed_content` and the same methods
of `AsyncModels` (`client.aio.models`). One CLIENT span per call (SDK retries, automatic
continuation hops and automatic function calling (AFC) requests included), priced before it ends.
No prompt or completion text is recorded.

A public call can make several HTTP requests (AFC with Python-function tools; continuation), and
the response it returns carries only the last AFC request's usage (continuation hops are already
summed into it by the SDK). So, for `generate_content` with tools, the SDK's private
`_extra_utils.get_function_response_parts(_async)` is also wrapped: it receives every AFC response
that asked for a function call, and the span gets their usage plus the returned response's. A call
without tools (the common case) pays nothing for this. For streams, the private per-request
`_generate_content_stream` is wrapped: while a step of the stream runs, each request's usage is
collected and the span gets the sum. If a future SDK renames these, the span falls back to the
returned response's usage.

Usage is mapped to GenAI semconv terms: `prompt_token_count` already includes
`cached_content_token_count`; `tool_use_prompt_token_count` (tool results fed back to the model,
billed as input, not part of `prompt_token_count`) is added to the input; thinking tokens
(`thoughts_token_count`, billed as output) are added to the output and reported as reasoning.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, OnItem, SyncStreamProxy, Tail
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.otel_internals.context import attach_span, detach

logger = logging.getLogger(__name__)

SCOPE_NAME = "costspan.instrumentation.google_genai"
PROVIDER_GEMINI = "gcp.gemini"
PROVIDER_VERTEX_AI = "gcp.vertex_ai"
OPERATION_GENERATE = "generate_content"
OPERATION_EMBEDDINGS = "embeddings"

_MODULE = "google.genai.models"
# (class, method, kind): kind is how the wrapper treats the return value.
_METHODS = (
    ("Models", "generate_content", "sync"),
    ("Models", "generate_content_stream", "sync_stream"),
    ("Models", "embed_content", "sync_embed"),
    ("AsyncModels", "generate_content", "async"),
    ("AsyncModels", "generate_content_stream", "async_stream"),
    ("AsyncModels", "embed_content", "async_embed"),
    # One HTTP request each: automatic function calling (AFC) and automatic continuation make
    # several per streamed public call, and each request's chunks carry only its own usage.
    ("Models", "_generate_content_stream", "sync_stream_hop"),
    ("AsyncModels", "_generate_content_stream", "async_stream_hop"),
)
# Module functions of `google.genai._extra_utils` that get each AFC response asking for a function
# call (and run the function); the response the public call returns carries only its own usage.
_AFC_MODULE = "google.genai._extra_utils"
_AFC_FUNCTIONS = (
    ("get_function_response_parts", "afc_sync"),
    ("get_function_response_parts_async", "afc_async"),
)

_CONFIG_ATTRIBUTES = (
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("candidate_count", "gen_ai.request.choice.count"),
    ("seed", "gen_ai.request.seed"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
)


class GoogleGenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """`GoogleGenAIInstrumentor().instrument(tracer_provider=..., meter_provider=..., rate_card=...)`."""

    # BaseInstrumentor is a singleton whose __init__ runs on every `GoogleGenAIInstrumentor()`:
    # what was patched is kept on the class, not reset by a constructor call.
    _patched: list[tuple[type, str]] = []  # noqa: RUF012

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("google-genai >= 3.1, < 4",)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            genai_models = importlib.import_module("google.genai.models")
        except ImportError:
            logger.debug("google-genai is not importable; nothing to instrument")
            return
        state = Instrumentation.from_instrument_kwargs(SCOPE_NAME, kwargs)
        patched: list[tuple[Any, str]] = []
        type(self)._patched = patched
        for class_name, method, kind in _METHODS:
            cls = getattr(genai_models, class_name, None)
            if cls is None or not callable(getattr(cls, method, None)):
                logger.debug("google-genai has no %s.%s; not instrumented", class_name, method)
                continue
            wrapt.wrap_function_wrapper(cls, method, _WRAPPER_FACTORIES[kind](state))
            patched.append((cls, method))
        try:
            afc_module = importlib.import_module(_AFC_MODULE)
        except ImportError:
            afc_module = None
        for function, kind in _AFC_FUNCTIONS:
            if not callable(getattr(afc_module, function, None)):
                logger.debug(
                    "google-genai has no %s.%s; AFC calls report the last request's usage only",
                    _AFC_MODULE,
                    function,
                )
                continue
            wrapt.wrap_function_wrapper(afc_module, function, _WRAPPER_FACTORIES[kind](state))
            patched.append((afc_module, function))

    def _uninstrument(self, **kwargs: Any) -> None:
        patched = type(self)._patched
        while patched:
            cls, method = patched.pop()
            unwrap(cls, method)


# --- request side -----------------------------------------------------------------------------


def _strip_model(model: Any) -> str | None:
    if not isinstance(model, str) or not model:
        return None
    if "models/" in model:  # models/x, publishers/google/models/x, projects/.../models/x
        model = model.rsplit("models/", 1)[1]
    return model or None


def _api_client(instance: Any) -> Any:
    return getattr(instance, "_api_client", None)


@functools.lru_cache(maxsize=64)
def _server_of_url(base_url: str) -> tuple[tuple[str, Any], ...]:
    """`urlsplit` costs ~20k instructions: done once per base URL."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return ()
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return (("server.address", parts.hostname), ("server.port", port))


def _start(state: Instrumentation, instance: Any, operation: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the SDK call then runs unobserved) or
    is part of a call traced above the SDK (see `INSIDE_TRACED_CALL`)."""
    if INSIDE_TRACED_CALL.get():
        return None
    try:
        api_client = getattr(instance, "_api_client", None)
        options = getattr(api_client, "_http_options", None)
        base_url = options.get("base_url") if type(options) is dict else getattr(options, "base_url", None)
        request: dict[str, Any] = dict(_server_of_url(base_url)) if type(base_url) is str and base_url else {}
        config = kwargs.get("config")
        if config is None:
            pass
        elif operation == OPERATION_GENERATE:
            for field, key in _CONFIG_ATTRIBUTES:
                value = _get(config, field)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    request[key] = value
            stop = _get(config, "stop_sequences")
            if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop) and stop:
                request["gen_ai.request.stop_sequences"] = tuple(stop)
        else:
            dims = _get(config, "output_dimensionality")
            if isinstance(dims, int) and not isinstance(dims, bool):
                request["gen_ai.embeddings.dimension.count"] = dims
        provider = PROVIDER_VERTEX_AI if getattr(api_client, "vertexai", False) else PROVIDER_GEMINI
        model = kwargs.get("model")
        if type(model) is not str or not model or "models/" in model:
            model = _strip_model(model)
        return CallSpan(state, operation, provider, model, request)
    except Exception as exc:
        FAULTS.record("google-genai call start", exc)
        return None


@functools.cache
def _api_error() -> type:
    from google.genai.errors import APIError

    return APIError


def _error_type(exc: BaseException) -> str:
    try:
        if isinstance(exc, _api_error()) and getattr(exc, "code", None) is not None:
            return str(exc.code)
    except Exception as inner:
        FAULTS.record("google-genai error type", inner)
    return type(exc).__qualname__


# --- response side ----------------------------------------------------------------------------


def _finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value.lower() or None
    text = _REASON_TEXT.get(value)
    if text is None:
        name = getattr(value, "name", None)  # an enum member: `.name` is a Python-level descriptor
        text = (name if isinstance(name, str) else str(value)).lower()
        if len(_REASON_TEXT) < 256:
            _REASON_TEXT[value] = text
    return text or None


# FinishReason member -> its span value, found once per member.
_REASON_TEXT: dict[Any, str] = {}


def _set_generate_usage(call: CallSpan, usage: Any) -> None:
    if isinstance(usage, dict):
        prompt = usage.get("prompt_token_count")
        candidates = usage.get("candidates_token_count")
        thoughts = usage.get("thoughts_token_count")
        cached = usage.get("cached_content_token_count")
        tool_use = usage.get("tool_use_prompt_token_count")
    else:  # the SDK's typed usage: counts are int or None, checked inline (five helper calls less)
        prompt = getattr(usage, "prompt_token_count", None)
        candidates = getattr(usage, "candidates_token_count", None)
        thoughts = getattr(usage, "thoughts_token_count", None)
        cached = getattr(usage, "cached_content_token_count", None)
        tool_use = getattr(usage, "tool_use_prompt_token_count", None)
    if not (
        (prompt is None or type(prompt) is int)
        and (candidates is None or type(candidates) is int)
        and (thoughts is None or type(thoughts) is int)
        and (cached is None or type(cached) is int)
        and (tool_use is None or type(tool_use) is int)
    ):
        counts, bad = checked_counts(
            (
                ("prompt_token_count", prompt),
                ("candidates_token_count", candidates),
                ("thoughts_token_count", thoughts),
                ("cached_content_token_count", cached),
                ("tool_use_prompt_token_count", tool_use),
            ),
            required=1,
        )
        if bad is not None:
            call.set_invalid_usage(*bad)
            return
        prompt, candidates, thoughts, cached, tool_use = counts
    if prompt is None:
        if candidates is not None or thoughts is not None or tool_use is not None:
            # Output without the prompt count it always comes with: not a usage to price.
            call.set_invalid_usage("prompt_token_count", None)
        return
    call.set_usage(
        input_tokens=prompt + (tool_use or 0),
        output_tokens=(candidates or 0) + (thoughts or 0),
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


def _record_response(call: CallSpan, response: Any, afc: list[Any] | None = None) -> None:
    try:
        if isinstance(response, dict):
            candidates = response.get("candidates")
            model_version = response.get("model_version")
            response_id = response.get("response_id")
            usage = response.get("usage_metadata")
        else:  # the SDK's typed response: plain attribute reads
            candidates = getattr(response, "candidates", None)
            model_version = getattr(response, "model_version", None)
            response_id = getattr(response, "response_id", None)
            usage = getattr(response, "usage_metadata", None)
        finish_reasons = []
        for candidate in candidates or ():
            value = (
                candidate.get("finish_reason")
                if type(candidate) is dict
                else getattr(candidate, "finish_reason", None)
            )
            # An enum member seen before maps straight to its text; anything else through the helper.
            reason = _REASON_TEXT.get(value) if value is not None and type(value) is not str else None
            if reason is None:
                reason = _finish_reason(value)
            if reason:
                finish_reasons.append(reason)
        if type(model_version) is not str or "models/" in model_version:
            model_version = _strip_model(model_version)
        call.set_response(
            response_model=model_version, response_id=response_id, finish_reasons=finish_reasons
        )
        if afc:  # AFC: the responses that asked for a function call, and this last one
            usage = _usage_total([r for r in afc if r is not response] + [response])
        if usage is not None:
            _set_generate_usage(call, usage)
    except Exception as exc:
        FAULTS.record("google-genai response", exc)


def _record_partial(call: CallSpan, afc: list[Any] | None) -> None:
    """A failed call whose earlier AFC requests succeeded: their tokens were billed."""
    if not afc:
        return
    try:
        total = _usage_total(afc)
        if total is not None:
            _set_generate_usage(call, total)
    except Exception as exc:
        FAULTS.record("google-genai response", exc)


def _usage_total(responses: list[Any]) -> Any:
    return _sum_usages([_get(r, "usage_metadata") for r in responses])


def _record_embedding(call: CallSpan, response: Any, afc: list[Any] | None = None) -> None:
    """Gemini API: `usage_metadata.prompt_token_count` (recent API versions). Vertex AI: per-embedding
    `statistics.token_count`. Neither: the span stays without usage (`costspan.cost.status=no_usage`)."""
    try:
        raw = _get(_get(response, "usage_metadata"), "prompt_token_count")
        tokens = usage_count(raw)
        if tokens is INVALID:
            call.set_invalid_usage("prompt_token_count", raw)
            return
        if tokens is None:
            fields = [
                ("statistics.token_count", _get(_get(e, "statistics"), "token_count"))
                for e in _get(response, "embeddings") or ()
            ]
            counts, bad = checked_counts(fields, required=1)
            if bad is not None:
                call.set_invalid_usage(*bad)
                return
            if counts and None not in counts:  # some embeddings without a count: unknown usage
                tokens = sum(c for c in counts if c is not None)
        if tokens is not None:
            call.set_usage(input_tokens=tokens, output_tokens=None)
    except Exception as exc:
        FAULTS.record("google-genai embedding response", exc)


# --- per-request usage (AFC / continuation hops) ----------------------------------------------

_USAGE_FIELDS = (
    "prompt_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "cached_content_token_count",
    "tool_use_prompt_token_count",
)


class _Hops:
    """Usage of each HTTP request made by one public call (the latest running total per request)."""

    __slots__ = ("usages",)

    def __init__(self) -> None:
        self.usages: list[Any] = []

    def add(self, usage: Any) -> int:
        self.usages.append(usage)
        return len(self.usages) - 1

    def total(self) -> Any:
        return _sum_usages(self.usages)


def _sum_usages(usages: list[Any]) -> Any:
    """Summed usage over requests (one request's: its usage as the SDK gave it), or None when no
    request reported any (or none was seen)."""
    if len(usages) == 1:  # the usual call: one request, nothing to sum
        return usages[0]
    present = [u for u in usages if u is not None]
    if not present:
        return None
    out: dict[str, Any] = {}
    for field in _USAGE_FIELDS:
        total = None
        for usage in present:
            value = _get(usage, field)
            count = usage_count(value)
            if count is INVALID:
                return {field: value}  # one request's field that is not a count: the whole is not
            if count is not None:
                total = (total or 0) + count
        out[field] = total
    for usage in present:
        if _get(usage, "prompt_token_count") is None and any(
            _get(usage, field) is not None for field in _USAGE_FIELDS
        ):
            return {"prompt_token_count": None, "candidates_token_count": 0}  # output without its prompt
    return out


# The streamed public call whose HTTP requests are being made (set around each step of its stream).
_ACTIVE_HOPS: contextvars.ContextVar[_Hops | None] = contextvars.ContextVar(
    "costspan_google_genai_hops", default=None
)
# The AFC responses of the `generate_content` call (with tools) that is running.
_AFC_RESPONSES: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "costspan_google_genai_afc", default=None
)


def _afc_possible(kwargs: dict[str, Any]) -> bool:
    """AFC runs only with tools in the config; a call without them makes one request (continuation
    hops are summed into the response by the SDK)."""
    try:
        return bool(_get(kwargs.get("config"), "tools"))
    except Exception as exc:
        FAULTS.record("google-genai request usage", exc)
        return True


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


# --- wrappers ---------------------------------------------------------------------------------


def _use(call: CallSpan) -> Any:
    return call.current()


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
