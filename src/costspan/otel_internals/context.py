"""Fast reads and writes of the OpenTelemetry context on the per-span and per-call paths.

The public API (`context.get_current()`, `trace.set_span_in_context()`, `context.attach()`,
`baggage.get_all()`) goes through several Python calls and builds read-only views; on the hot
paths costspan reads the context's entries directly. Each shortcut is feature-detected once: with
the default contextvars runtime context and the API's own context keys it is used, otherwise
(another OTEL_PYTHON_CONTEXT, a changed API) the public API is.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.trace import propagation as trace_propagation

logger = logging.getLogger(__name__)

_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
_SPAN_KEY: str | None = getattr(trace_propagation, "_SPAN_KEY", None)
_NO_BAGGAGE: Mapping[str, object] = {}


def _context_var() -> contextvars.ContextVar[Context] | None:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:
        return None
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, contextvars.ContextVar):
        return var
    return None


_CONTEXT_VAR = _context_var()

# The context variable's own (C) `get` where there is one: no Python call on the per-span path.
current_context: Callable[[], Context] = (
    _CONTEXT_VAR.get if _CONTEXT_VAR is not None else context_api.get_current
)


def baggage_of(ctx: Context) -> Mapping[str, object]:
    """The context's baggage entries (not a copy: do not modify)."""
    if _BAGGAGE_KEY is None:
        return baggage.get_all(ctx)
    entries = ctx.get(_BAGGAGE_KEY)
    return entries if isinstance(entries, dict) else _NO_BAGGAGE


def baggage_and_span(ctx: Context) -> tuple[Mapping[str, object], object]:
    """`baggage_of(ctx), span_of(ctx)` in one call (the span processor's `on_start` needs both)."""
    if _BAGGAGE_KEY is None or _SPAN_KEY is None:
        return baggage_of(ctx), span_of(ctx)
    entries = ctx.get(_BAGGAGE_KEY)
    return entries if isinstance(entries, dict) else _NO_BAGGAGE, ctx.get(_SPAN_KEY)


def span_of(ctx: Context) -> object:
    """The context's current span, or None."""
    if _SPAN_KEY is None:
        return trace.get_current_span(ctx)
    return ctx.get(_SPAN_KEY)


def attach_span(span: trace.Span) -> Any:
    """Make `span` current; returns the token for `detach`."""
    if _CONTEXT_VAR is None or _SPAN_KEY is None:
        return context_api.attach(trace.set_span_in_context(span))
    return _CONTEXT_VAR.set(Context({**_CONTEXT_VAR.get(), _SPAN_KEY: span}))


def detach(token: Any) -> None:
    if _CONTEXT_VAR is None or _SPAN_KEY is None:
        context_api.detach(token)
        return
    try:
        _CONTEXT_VAR.reset(token)
    except Exception:  # as context.detach does: a token from another context is logged, not raised
        logger.exception("Failed to detach context")
