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

import importlib
import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import Instrumentation
from costspan.instrumentation.anthropic.patches import _BASE_CLIENT_MODULE, _METHODS, _SDK_SPAN_FUNCTION
from costspan.instrumentation.anthropic.wrappers import _async_wrapper, _sdk_call_span, _sync_wrapper

logger = logging.getLogger("costspan.instrumentation.anthropic")


SCOPE_NAME = "costspan.instrumentation.anthropic"


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
        for class_name, method, is_async in _METHODS:
            cls = getattr(base_client, class_name, None)
            if cls is None or not callable(getattr(cls, method, None)):
                logger.debug("anthropic has no %s.%s; not instrumented", class_name, method)
                continue
            factory = _async_wrapper if is_async else _sync_wrapper
            wrapt.wrap_function_wrapper(cls, method, factory(state))
            patched.append((cls, method))
        if callable(getattr(base_client, _SDK_SPAN_FUNCTION, None)):
            wrapt.wrap_function_wrapper(base_client, _SDK_SPAN_FUNCTION, _sdk_call_span)
            patched.append((base_client, _SDK_SPAN_FUNCTION))
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
