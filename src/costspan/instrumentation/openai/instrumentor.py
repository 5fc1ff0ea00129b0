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

import importlib
import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import Instrumentation
from costspan.instrumentation.openai.patches import _METHODS
from costspan.instrumentation.openai.wrappers import _async_wrapper, _Switch, _sync_wrapper

logger = logging.getLogger("costspan.instrumentation.openai")


SCOPE_NAME = "costspan.instrumentation.openai"


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
