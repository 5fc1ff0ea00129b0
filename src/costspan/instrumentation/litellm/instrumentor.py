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

import logging
import sys
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from costspan.instrumentation._call import FAULTS, Instrumentation
from costspan.instrumentation.litellm.patches import _FUNCTIONS
from costspan.instrumentation.litellm.wrappers import _async_wrapper, _sync_wrapper

logger = logging.getLogger("costspan.instrumentation.litellm")


SCOPE_NAME = "costspan.instrumentation.litellm"


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
