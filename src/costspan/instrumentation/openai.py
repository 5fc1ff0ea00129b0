"""OpenTelemetry instrumentor for the OpenAI Python SDK (`openai` 3.x), OpenAI and Azure OpenAI.

Patches, on the sync and async resource classes, `chat.completions.create` / `.parse`,
`responses.create` / `.parse` and `embeddings.create`. One CLIENT span per public call (SDK
retries happen below the patched method, so a 429-then-success is one span), priced before it
ends. No prompt or completion text is recorded.

What else reaches the patched methods in openai 3.x:
- `with_raw_response.*`: the resource's `with_raw_response` wrapper calls `resource.create(...)`
  (looked up when the wrapper object is built) with an `X-Stainless-Raw-Response: raw` header and
  returns a `LegacyAPIResponse`; usage is read from its (cached) `.parse()` result. With
  `stream=True` the parsed `Stream` is replaced in that cache by a proxy.
- `chat.completions.stream(...)` and `responses.stream(...)` call `resource.create(stream=True)`.
- `with_streaming_response.*` returns an unread `APIResponse`: the span gets its usage when the
  caller calls `.parse()` on it, else it ends (without usage) when the response is closed/collected.

Chat streams report usage only when `stream_options={"include_usage": True}` is sent: when the
caller did not ask for it, it is added to the request and the extra usage-only chunk (empty
`choices`) is hidden from the caller, as is the `usage: null` field it adds to the other chunks.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._client_facts import ClientFacts
from costspan.instrumentation._stream import AsyncStreamProxy, OnItem, SyncStreamProxy, Tail
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.otel_internals.context import attach_span, detach

logger = logging.getLogger(__name__)

SCOPE_NAME = "costspan.instrumentation.openai"
PROVIDER_OPENAI = "openai"
PROVIDER_AZURE = "azure.ai.openai"
OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"

# API kinds: how the request and the response are read.
CHAT, RESPONSES, EMBEDDINGS = "chat", "responses", "embeddings"

# (module, class, method, api, is_async)
_METHODS = (
    ("openai.resources.chat.completions.completions", "Completions", "create", CHAT, False),
    ("openai.resources.chat.completions.completions", "Completions", "parse", CHAT, False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", CHAT, True),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", CHAT, True),
    ("openai.resources.responses.responses", "Responses", "create", RESPONSES, False),
    ("openai.resources.responses.responses", "Responses", "parse", RESPONSES, False),
    ("openai.resources.responses.responses", "AsyncResponses", "create", RESPONSES, True),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", RESPONSES, True),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS, True),
)

# Request field -> attribute, per API.
_NUMERIC_REQUEST = {
    CHAT: {
        "max_completion_tokens": "gen_ai.request.max_tokens",
        "max_tokens": "gen_ai.request.max_tokens",
        "temperature": "gen_ai.request.temperature",
        "top_p": "gen_ai.request.top_p",
        "frequency_penalty": "gen_ai.request.frequency_penalty",
        "presence_penalty": "gen_ai.request.presence_penalty",
        "seed": "gen_ai.request.seed",
        "n": "gen_ai.request.choice.count",
    },
    RESPONSES: {
        "max_output_tokens": "gen_ai.request.max_tokens",
        "temperature": "gen_ai.request.temperature",
        "top_p": "gen_ai.request.top_p",
    },
    EMBEDDINGS: {"dimensions": "gen_ai.embeddings.dimension.count"},
}
# Deprecated fields that give way to their replacement when a request sends both.
_FALLBACK_FIELDS = frozenset({"max_tokens"})
_NUMBER_TYPES = frozenset((int, float))


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """`OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=..., rate_card=...)`."""

    # BaseInstrumentor is a singleton whose __init__ runs on every `OpenAIInstrumentor()`: what was
    # patched is kept on the class, not reset by a constructor call.
    _patched: list[tuple[type, str]] = []  # noqa: RUF012
    _switch: _Switch | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 3.0, < 4",)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            importlib.import_module("openai")
        except ImportError:
            logger.debug("openai is not importable; nothing to instrument")
            return
        state = Instrumentation.from_instrument_kwargs(SCOPE_NAME, kwargs)
        switch = _Switch()
        patched: list[tuple[type, str]] = []
        type(self)._patched = patched
        type(self)._switch = switch
        for module_name, class_name, method, api, is_async in _METHODS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                logger.debug("openai has no module %s; not instrumented", module_name)
                continue
            cls = getattr(module, class_name, None)
            if cls is None or not callable(getattr(cls, method, None)):
                logger.debug("openai has no %s.%s; not instrumented", class_name, method)
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            wrapt.wrap_function_wrapper(cls, method, factory(state, api, switch))
            patched.append((cls, method))

    def _uninstrument(self, **kwargs: Any) -> None:
        if type(self)._switch is not None:
            type(self)._switch.on = False
        patched = type(self)._patched
        while patched:
            cls, method = patched.pop()
            unwrap(cls, method)


class _Switch:
    """Off once uninstrumented: a bound wrapper kept by the SDK (e.g. a `with_raw_response` object
    built while instrumented caches `resource.create`) then passes calls straight through."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


# --- helpers ----------------------------------------------------------------------------------


class _SDKClasses:
    """The openai classes the hooks test against, imported once (a `from openai import ...` inside
    a function runs importlib's `_handle_fromlist` on every call)."""

    def __init__(self) -> None:
        from openai import APIStatusError, AsyncAzureOpenAI, AsyncStream, AzureOpenAI, Stream
        from openai._legacy_response import LegacyAPIResponse
        from openai._response import APIResponse, AsyncAPIResponse
        from openai._types import NotGiven, Omit

        self.azure_clients = (AzureOpenAI, AsyncAzureOpenAI)
        self.api_status_error = APIStatusError
        self.not_given = (NotGiven, Omit)
        self.streams = (Stream, AsyncStream)
        self.async_stream = AsyncStream
        self.legacy_response = LegacyAPIResponse
        self.api_response = APIResponse
        self.async_api_response = AsyncAPIResponse
        from openai.types import CompletionUsage
        from openai.types.chat import ChatCompletion

        self.chat_completion = ChatCompletion
        self.completion_usage = CompletionUsage


@functools.cache  # a C-level cache: no Python frame once loaded, so hot paths call it freely
def _sdk() -> _SDKClasses:
    return _SDKClasses()


# --- request side -----------------------------------------------------------------------------


def _server_attributes(client: Any) -> tuple[dict[str, Any], str | None]:
    base_url = getattr(client, "base_url", None)
    if base_url is None:
        return {}, None
    parts = urlsplit(str(base_url))
    if not parts.hostname:
        return {}, None
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return {"server.address": parts.hostname, "server.port": port}, parts.hostname


def _is_azure(client: Any, host: str | None) -> bool:
    if host and (host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com")):
        return True
    try:
        return isinstance(client, _sdk().azure_clients)
    except Exception:
        return False


def _derive_facts(client: Any, base_url: Any) -> tuple[dict[str, Any], str]:
    # `urlsplit(str(base_url))` and the Azure check cost ~50k instructions: once per base URL.
    server, host = _server_attributes(client)
    return server, PROVIDER_AZURE if _is_azure(client, host) else PROVIDER_OPENAI


_CLIENT_FACTS = ClientFacts(_derive_facts)


def _start(state: Instrumentation, instance: Any, api: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the SDK call then runs unobserved)."""
    try:
        request, provider = _CLIENT_FACTS.of(getattr(instance, "_client", None))
        numeric = _NUMERIC_REQUEST[api]
        for field in kwargs:  # a few keys: cheaper than looking up every field the API has
            key = numeric.get(field)
            if key is not None:
                value = kwargs[field]
                if (
                    type(value) in _NUMBER_TYPES  # int or float, checked inline; not bool
                    or (isinstance(value, int | float) and not isinstance(value, bool))  # e.g. numpy
                ) and (field not in _FALLBACK_FIELDS or key not in request):
                    request[key] = value
        if api == CHAT and "stop" in kwargs:
            stop = kwargs["stop"]
            if isinstance(stop, str):
                stop = [stop]
            if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
                request["gen_ai.request.stop_sequences"] = tuple(stop)
        model = kwargs.get("model")
        operation = OPERATION_EMBEDDINGS if api == EMBEDDINGS else OPERATION_CHAT
        return CallSpan(
            state, operation, provider, model if isinstance(model, str) and model else None, request
        )
    except Exception as exc:
        FAULTS.record("openai call start", exc)
        return None


def _error_type(exc: BaseException) -> str:
    try:
        if isinstance(exc, _sdk().api_status_error):
            return str(exc.status_code)
    except Exception as inner:
        FAULTS.record("openai error type", inner)
    return type(exc).__qualname__


def _is_given(value: Any) -> bool:
    """Not None and not the SDK's `omit` / `not_given` sentinels."""
    if value is None:
        return False
    try:
        return not isinstance(value, _sdk().not_given)
    except Exception:
        return True


# Azure OpenAI rejects `stream_options` before this API version.
_AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"


def _request_usage(kwargs: dict[str, Any], instance: Any) -> tuple[dict[str, Any], bool]:
    """For a chat stream: kwargs that ask for usage, and whether costspan added that request."""
    try:
        api_version = getattr(getattr(instance, "_client", None), "_api_version", None)
        if isinstance(api_version, str) and api_version[:10] < _AZURE_STREAM_OPTIONS_SINCE:
            return kwargs, False  # an old Azure API version: the request would fail
        options = kwargs.get("stream_options")
        if _is_given(options):
            if not isinstance(options, dict) or options.get("include_usage"):
                return kwargs, False
            return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
        # Sent as extra_body, which the SDK merges into the JSON as it is: a `stream_options` kwarg
        # goes through the SDK's TypedDict transform (~140k instructions per call).
        extra_body = kwargs.get("extra_body")
        if not _is_given(extra_body):
            extra_body = {}
        elif not isinstance(extra_body, dict) or "stream_options" in extra_body:
            return kwargs, False  # the caller set the body's stream_options themselves
        return {**kwargs, "extra_body": {**extra_body, "stream_options": {"include_usage": True}}}, True
    except Exception as exc:
        FAULTS.record("openai stream options", exc)
        return kwargs, False


# --- response side ----------------------------------------------------------------------------


def _set_chat_usage(call: CallSpan, usage: Any) -> None:
    """Chat usage read field by field (a dict, or not the SDK's typed `CompletionUsage`)."""
    _set_checked_usage(
        call,
        (
            ("prompt_tokens", _get(usage, "prompt_tokens")),
            ("completion_tokens", _get(usage, "completion_tokens")),
            (
                "prompt_tokens_details.cached_tokens",
                _get(_get(usage, "prompt_tokens_details"), "cached_tokens"),
            ),
            (
                "completion_tokens_details.reasoning_tokens",
                _get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
            ),
        ),
    )


def _set_responses_usage(call: CallSpan, usage: Any) -> None:
    _set_checked_usage(
        call,
        (
            ("input_tokens", _get(usage, "input_tokens")),
            ("output_tokens", _get(usage, "output_tokens")),
            (
                "input_tokens_details.cached_tokens",
                _get(_get(usage, "input_tokens_details"), "cached_tokens"),
            ),
            (
                "output_tokens_details.reasoning_tokens",
                _get(_get(usage, "output_tokens_details"), "reasoning_tokens"),
            ),
        ),
    )


def _set_checked_usage(call: CallSpan, fields: tuple[tuple[str, Any], ...]) -> None:
    """Input, output, cached input, reasoning: the API always sends input and output together, so
    one without the other, or any field that is not a count, makes the call `invalid_usage`."""
    counts, bad = checked_counts(fields, required=2)
    if bad is not None:
        call.set_invalid_usage(*bad)
        return
    prompt, completion, cached, reasoning = counts
    if prompt is None and completion is None:
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _responses_finish_reasons(response: Any) -> list[str]:
    status = _get(response, "status")
    if status == "completed":
        return ["stop"]
    if status == "incomplete":
        reason = _get(_get(response, "incomplete_details"), "reason")
        return [_INCOMPLETE_REASONS.get(reason, reason) if isinstance(reason, str) else "incomplete"]
    if status == "failed":
        return ["error"]
    return []


def _record_chat_completion(call: CallSpan, response: Any) -> None:
    """A typed ChatCompletion (the common case): plain attribute reads, no per-field helpers."""
    reasons = []
    for choice in response.choices or ():  # a loop, not comprehensions: each of those is a call
        reason = choice.finish_reason
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    model = response.model
    response_id = response.id
    call.set_response(
        response_model=model if isinstance(model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
        finish_reasons=reasons,
    )
    usage = response.usage
    if usage is not None:
        _set_any_chat_usage(call, usage)


def _set_any_chat_usage(call: CallSpan, usage: Any) -> None:
    """Chat usage: a typed `CompletionUsage` read with plain attribute access, else field by field."""
    if type(usage) is not _sdk().completion_usage:
        _set_chat_usage(call, usage)
        return
    prompt = usage.prompt_tokens
    completion = usage.completion_tokens
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details is not None else None
    if not (
        type(prompt) is int
        and type(completion) is int
        and (cached is None or type(cached) is int)
        and (reasoning is None or type(reasoning) is int)
    ):
        _set_chat_usage(call, usage)  # a null, fractional or other odd count: checked field by field
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _record(call: CallSpan, api: str, response: Any) -> None:
    try:
        if api == CHAT and type(response) is _sdk().chat_completion:
            _record_chat_completion(call, response)
        elif api == CHAT:
            reasons = [
                r for r in (_str(_get(c, "finish_reason")) for c in _get(response, "choices") or ()) if r
            ]
            call.set_response(
                response_model=_str(_get(response, "model")),
                response_id=_str(_get(response, "id")),
                finish_reasons=reasons,
            )
            usage = _get(response, "usage")
            if usage is not None:
                _set_chat_usage(call, usage)
        elif api == RESPONSES:
            call.set_response(
                response_model=_str(_get(response, "model")),
                response_id=_str(_get(response, "id")),
                finish_reasons=_responses_finish_reasons(response),
            )
            usage = _get(response, "usage")
            if usage is not None:
                _set_responses_usage(call, usage)
        else:
            call.set_response(response_model=_str(_get(response, "model")))
            raw = _get(_get(response, "usage"), "prompt_tokens")
            tokens = usage_count(raw)
            if tokens is INVALID:
                call.set_invalid_usage("prompt_tokens", raw)
            elif tokens is not None:
                call.set_usage(input_tokens=tokens, output_tokens=None)
    except Exception as exc:
        FAULTS.record("openai response", exc)


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
