"""OpenTelemetry instrumentor for LiteLLM (`litellm` 1.x): `completion`, `acompletion`, `embedding`
and `aembedding`, sync and async, streamed or not, called directly or by `litellm.Router`.

Why LiteLLM's entry points are wrapped (and not the HTTP layer or LiteLLM's callbacks):
- LiteLLM 1.x sends most requests through its own OpenAI-compatible HTTP handlers
  (`client.post("/chat/completions")`), not through the provider SDKs, so the SDK instrumentors see
  nothing; wrapping its many per-provider handlers would follow LiteLLM's internals release by release.
- LiteLLM's callbacks (`success_callback`, `CustomLogger`) run after the call, sync ones in a thread
  pool: they can neither refuse a call before it is sent (budgets) nor make a span with the call's
  own timing and parent, and streams reach them only once LiteLLM rebuilt the whole response.
- The four public functions are what applications and `litellm.Router` call: the Router looks each
  one up on the `litellm` module at call time (`getattr(litellm, "acompletion")`), so a wrapper there
  sees every routed attempt (one span per attempt: each is a request the provider bills) with the
  deployment's real model. LiteLLM's own nested calls go through `litellm.main`'s globals, which
  are not wrapped; a call made inside a traced one (LiteLLM's retries) gets no second span.

One CLIENT span per call, priced from the usage on LiteLLM's `ModelResponse` / `EmbeddingResponse`
(OpenAI's terms, which LiteLLM maps every provider to: `prompt_tokens` include cached and
cache-write tokens, `completion_tokens` include reasoning; cache reads in
`prompt_tokens_details.cached_tokens`, cache writes in `cache_creation_input_tokens`). The cost
LiteLLM computes itself (`_hidden_params["response_cost"]`, `usage.cost`) is not read: the span's
`gen_ai.usage.cost` is costspan's price, so nothing is counted twice. Provider: from the model
prefix / `custom_llm_provider` (`litellm.get_llm_provider`), named as the GenAI conventions name it.

Streams: LiteLLM reports usage on a stream only when `stream_options.include_usage` is set. When the
caller did not set it, it is added and the usage-only chunk (no choices) is hidden from the caller,
who sees the chunks it would see uninstrumented. While a call runs, costspan's provider SDK
instrumentors make no span of their own (LiteLLM calls the openai SDK for OpenAI embeddings, for
example): `INSIDE_TRACED_CALL`.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.otel_internals.context import attach_span, detach

logger = logging.getLogger(__name__)

SCOPE_NAME = "costspan.instrumentation.litellm"
OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"

# (function on the `litellm` module, operation, is_async)
_FUNCTIONS = (
    ("completion", OPERATION_CHAT, False),
    ("acompletion", OPERATION_CHAT, True),
    ("embedding", OPERATION_EMBEDDINGS, False),
    ("aembedding", OPERATION_EMBEDDINGS, True),
)

# LiteLLM's provider names that the GenAI conventions name otherwise; any other is kept as it is.
_PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
_UNKNOWN_PROVIDER = "litellm"

_NUMERIC_REQUEST = {
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "dimensions": "gen_ai.embeddings.dimension.count",
}
_FALLBACK_FIELDS = frozenset({"max_tokens"})  # gives way to max_completion_tokens when both are sent


class LiteLLMInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """`LiteLLMInstrumentor().instrument(tracer_provider=..., meter_provider=..., rate_card=...)`."""

    _patched: list[tuple[Any, str]] = []  # noqa: RUF012
    _pending: list[bool] | None = None  # the post-import hook's switch, until litellm is imported

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("litellm >= 1.80, < 2",)

    def _instrument(self, **kwargs: Any) -> None:
        state = Instrumentation.from_instrument_kwargs(SCOPE_NAME, kwargs)
        cls = type(self)
        cls._patched = []
        module = sys.modules.get("litellm")
        if module is not None:
            _patch(module, state, cls._patched)
            return
        # Not imported yet: patched when the application imports it. Importing LiteLLM here would
        # cost every process that has it installed its import (seconds, and a price-list download).
        pending = [True]
        cls._pending = pending

        def on_import(imported: Any) -> None:
            if pending[0]:
                pending[0] = False
                _patch(imported, state, cls._patched)

        wrapt.register_post_import_hook(on_import, "litellm")

    def _uninstrument(self, **kwargs: Any) -> None:
        if type(self)._pending is not None:
            type(self)._pending[0] = False
            type(self)._pending = None
        patched = type(self)._patched
        while patched:
            owner, name = patched.pop()
            unwrap(owner, name)


def _patch(module: Any, state: Instrumentation, patched: list[tuple[Any, str]]) -> None:
    try:
        for name, operation, is_async in _FUNCTIONS:
            if not callable(getattr(module, name, None)):
                logger.debug("litellm has no %s; not instrumented", name)
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            wrapt.wrap_function_wrapper(module, name, factory(state, operation))
            patched.append((module, name))
    except Exception as exc:
        FAULTS.record("litellm instrument", exc)


# --- request side -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _route(model: str, custom_provider: str | None, api_base: str | None) -> tuple[str, str, tuple[Any, ...]]:
    """(model without its provider prefix, GenAI provider name, server attributes) of a request,
    as LiteLLM resolves them (`get_llm_provider`); a model LiteLLM cannot place keeps its name."""
    import litellm

    try:
        bare, provider, _key, default_base = litellm.get_llm_provider(
            model=model, custom_llm_provider=custom_provider, api_base=api_base
        )
    except Exception:
        bare, provider, default_base = model, custom_provider or _UNKNOWN_PROVIDER, None
    server: tuple[Any, ...] = ()
    base = api_base or default_base
    if isinstance(base, str) and base:
        parts = urlsplit(base)
        if parts.hostname:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
            server = (("server.address", parts.hostname), ("server.port", port))
    name = provider if isinstance(provider, str) and provider else _UNKNOWN_PROVIDER
    return (bare if isinstance(bare, str) and bare else model), _PROVIDER_NAMES.get(name, name), server


def _start(state: Instrumentation, operation: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the call then runs unobserved) or sends
    no request (`mock_response`: LiteLLM answers itself, nothing is billed)."""
    try:
        model = kwargs.get("model")
        if not isinstance(model, str) or not model or kwargs.get("mock_response") is not None:
            return None
        custom = kwargs.get("custom_llm_provider")
        base = kwargs.get("api_base") or kwargs.get("base_url")
        bare, provider, server = _route(
            model, custom if isinstance(custom, str) else None, base if isinstance(base, str) else None
        )
        request: dict[str, Any] = dict(server)
        for field, value in kwargs.items():
            key = _NUMERIC_REQUEST.get(field)
            if (
                key is not None
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and (field not in _FALLBACK_FIELDS or key not in request)
            ):
                request[key] = value
        stop = kwargs.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
            request["gen_ai.request.stop_sequences"] = tuple(stop)
        return CallSpan(state, operation, provider, bare, request)
    except Exception as exc:
        FAULTS.record("litellm call start", exc)
        return None


def _admit(call: CallSpan, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Budgets (`call.admit`): may raise BudgetExceeded; a downgrade names the cheaper model with
    the provider prefix the request used (`openai/gpt-4o` -> `openai/gpt-4o-mini`)."""
    model = kwargs.get("model")
    admitted = call.admit(kwargs)
    new_model = admitted.get("model")
    if (
        admitted is not kwargs
        and new_model != model
        and isinstance(model, str)
        and isinstance(new_model, str)
    ):
        bare = call.attributes.get("costspan.budget.downgraded_from")
        if isinstance(bare, str) and model.endswith("/" + bare) and "/" not in new_model:
            admitted["model"] = model[: -len(bare)] + new_model
    return admitted


def _error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        return str(status)
    return type(exc).__qualname__


def _ask_for_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """For a stream: kwargs that ask for usage, and whether costspan added that request."""
    options = kwargs.get("stream_options")
    if options is None:
        return {**kwargs, "stream_options": {"include_usage": True}}, True
    if isinstance(options, dict) and options.get("include_usage") is not True:
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
    return kwargs, False


# --- response side ----------------------------------------------------------------------------


def _set_usage(call: CallSpan, usage: Any, operation: str) -> None:
    """LiteLLM's usage (OpenAI's terms for every provider): any field that is there but is not a
    count, or input without output (chat), makes the call `invalid_usage`."""
    if operation == OPERATION_EMBEDDINGS:
        raw = _get(usage, "prompt_tokens")
        tokens = usage_count(raw)
        if tokens is INVALID:
            call.set_invalid_usage("prompt_tokens", raw)
        elif tokens is not None:
            call.set_usage(input_tokens=tokens, output_tokens=None)
        return
    prompt_details = _get(usage, "prompt_tokens_details")
    cache_write = _get(usage, "cache_creation_input_tokens")
    if cache_write is None:
        cache_write = _get(prompt_details, "cache_creation_tokens")
    counts, bad = checked_counts(
        (
            ("prompt_tokens", _get(usage, "prompt_tokens")),
            ("completion_tokens", _get(usage, "completion_tokens")),
            ("prompt_tokens_details.cached_tokens", _get(prompt_details, "cached_tokens")),
            ("cache_creation_input_tokens", cache_write),
            (
                "completion_tokens_details.reasoning_tokens",
                _get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
            ),
        ),
        required=2,
    )
    if bad is not None:
        call.set_invalid_usage(*bad)
        return
    prompt, completion, cached, written, reasoning = counts
    if prompt is None and completion is None:
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def _finish_reasons(choices: Any) -> list[str]:
    reasons = []
    for choice in choices or ():
        reason = _str(_get(choice, "finish_reason"))
        if reason:
            reasons.append(reason)
    return reasons


def _record(call: CallSpan, operation: str, response: Any) -> None:
    try:
        call.set_response(
            response_model=_str(_get(response, "model")),
            response_id=_str(_get(response, "id")) if operation == OPERATION_CHAT else None,
            finish_reasons=_finish_reasons(_get(response, "choices"))
            if operation == OPERATION_CHAT
            else None,
        )
        usage = _get(response, "usage")
        if usage is not None:
            _set_usage(call, usage, operation)
    except Exception as exc:
        FAULTS.record("litellm response", exc)


class _StreamState:
    """What a stream of `ModelResponseStream` chunks has shown so far."""

    __slots__ = ("call", "finish_reasons", "hide_usage", "response_id", "response_model", "usage")

    def __init__(self, call: CallSpan, hide_usage: bool) -> None:
        self.call = call
        self.hide_usage = hide_usage
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: dict[int, str] = {}

    def on_item(self, chunk: Any) -> bool:
        if self.response_id is None:
            self.response_model = _str(_get(chunk, "model")) or self.response_model
            self.response_id = _str(_get(chunk, "id"))
        choices = _get(chunk, "choices")
        for position, choice in enumerate(choices or ()):
            reason = _str(_get(choice, "finish_reason"))
            if reason:
                index = _get(choice, "index")
                self.finish_reasons[index if isinstance(index, int) else position] = reason
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage
            # The usage-only chunk costspan asked for is not the caller's.
            return not self.hide_usage or _has_output(choices)
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
            _set_usage(call, self.usage, OPERATION_CHAT)


# Delta fields that make a chunk part of the answer.
_OUTPUT_FIELDS = ("content", "tool_calls", "function_call", "reasoning_content", "audio", "refusal")


def _has_output(choices: Any) -> bool:
    """Whether a chunk's choices carry any of the answer. LiteLLM's usage chunk has none: no
    choices (1.110), or one whose delta is empty and that has no finish reason (1.80)."""
    for choice in choices or ():
        if _get(choice, "finish_reason"):
            return True
        delta = _get(choice, "delta")
        if any(_get(delta, field) for field in _OUTPUT_FIELDS):
            return True
    return False


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


def _is_stream(result: Any) -> bool:
    """LiteLLM's `CustomStreamWrapper` (and any other iterator a provider path returns)."""
    return hasattr(result, "__next__") or hasattr(result, "__anext__")


# The positional parameters of `completion` / `acompletion` and `embedding` / `aembedding`.
_POSITIONAL = {OPERATION_CHAT: ("model", "messages"), OPERATION_EMBEDDINGS: ("model", "input")}


def _by_name(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """`completion("gpt-4o", messages)` as keywords; None for more positional arguments than that
    (the call then runs untraced, as it was made)."""
    names = _POSITIONAL[operation]
    if len(args) > len(names) or any(name in kwargs for name in names[: len(args)]):
        return None
    return {**dict(zip(names, args, strict=False)), **kwargs}


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
