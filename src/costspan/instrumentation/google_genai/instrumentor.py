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

import importlib
import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import Instrumentation
from costspan.instrumentation.google_genai.patches import _AFC_FUNCTIONS, _AFC_MODULE, _METHODS, _MODULE
from costspan.instrumentation.google_genai.wrappers import _WRAPPER_FACTORIES

logger = logging.getLogger("costspan.instrumentation.google_genai")


SCOPE_NAME = "costspan.instrumentation.google_genai"


class GoogleGenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """`GoogleGenAIInstrumentor().instrument(tracer_provider=..., meter_provider=..., rate_card=...)`."""

    # BaseInstrumentor is a singleton whose __init__ runs on every `GoogleGenAIInstrumentor()`:
    # what was patched is kept on the class, not reset by a constructor call.
    _patched: list[tuple[type, str]] = []  # noqa: RUF012

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("google-genai >= 3.1, < 4",)

    def _instrument(self, **kwargs: Any) -> None:
        try:
            genai_models = importlib.import_module(_MODULE)
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
