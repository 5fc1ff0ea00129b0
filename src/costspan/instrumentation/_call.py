"""One LLM call's CLIENT span, from request to usage, shared by every provider instrumentor.

The span is priced before it ends (so the exported span carries its cost even without a
CostSpanProcessor, and the processor does not price it again) and metrics are recorded for every
call, sampled or not. No method raises: a failure is counted in `FAULTS` and logged once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from costspan import __version__
from costspan import attributes as attrs
from costspan.attribution_values import clean_attribution
from costspan.budget import gate as budget_gate
from costspan.call_pricing import COST, CallPricer
from costspan.faults import FaultCounter
from costspan.metrics import DEFAULT_COST_DIMENSIONS, CallMetrics
from costspan.pricing import RateCard, shared_rate_card
from costspan.processor import _baggage_of, _put_valid

FAULTS = FaultCounter()

_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


class Instrumentation:
    """What an instrumentor needs for each call: tracer, metrics and the pricer."""

    def __init__(
        self,
        scope_name: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        rate_card: RateCard | None = None,
        cost_dimensions: tuple[str, ...] = DEFAULT_COST_DIMENSIONS,
    ) -> None:
        self.tracer: Tracer = trace.get_tracer(
            scope_name, __version__, tracer_provider=tracer_provider, schema_url=_SCHEMA_URL
        )
        self.metrics = CallMetrics(meter_provider, cost_dimensions)
        self.pricer = CallPricer(rate_card if rate_card is not None else shared_rate_card())
        self.budget_metrics = budget_gate.BudgetMetrics(meter_provider)

    @classmethod
    def from_instrument_kwargs(cls, scope_name: str, kwargs: Mapping[str, Any]) -> Instrumentation:
        return cls(
            scope_name,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            rate_card=kwargs.get("rate_card"),
            cost_dimensions=tuple(kwargs.get("cost_dimensions", DEFAULT_COST_DIMENSIONS)),
        )

    def start_call(
        self,
        operation: str,
        provider: str,
        request_model: str | None,
        request_attributes: Mapping[str, Any] | None = None,
    ) -> CallSpan:
        return CallSpan(self, operation, provider, request_model, request_attributes or {})


class CallSpan:
    """Span `{operation} {model}` (kind CLIENT) for one call. Start it, feed it, `end()` it once."""

    __slots__ = (
        "_attribution",
        "_ended",
        "_lock",
        "_on_span",
        "_started",
        "_state",
        "attributes",
        "budget",
        "span",
    )

    def __init__(
        self,
        state: Instrumentation,
        operation: str,
        provider: str,
        request_model: str | None,
        request_attributes: Mapping[str, Any],
    ) -> None:
        self._state = state
        self._ended = False
        self._lock = threading.Lock()
        self.attributes: dict[str, Any] = {
            attrs.GEN_AI_OPERATION_NAME: operation,
            attrs.GEN_AI_PROVIDER_NAME: provider,
        }
        if request_model:
            self.attributes[attrs.GEN_AI_REQUEST_MODEL] = request_model
        self.attributes.update({k: v for k, v in request_attributes.items() if v is not None})
        self._attribution = clean_attribution(
            _baggage_of(context_api.get_current())
        )  # metric dimensions: bounded values
        self.budget: budget_gate.CallBudget | None = None  # set by admit(): where the cost is charged
        self._started = time.perf_counter()
        name = f"{operation} {request_model}" if request_model else operation
        self.span: Span = state.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=self.attributes)
        self._on_span = dict(self.attributes)  # what start_span wrote: not written again at the end

    def admit(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The budget hook: call it in the wrapper after the span started, before the SDK sends the
        request, and send what it returns (the model is swapped when a budget downgrades it). Raises
        `costspan.BudgetExceeded` (after ending this span as failed) when a budget refuses the call:
        the one exception a hook lets through. See costspan.budget.gate."""
        return budget_gate.admit(self, kwargs)

    def set(self, key: str, value: Any) -> None:
        """Record a response attribute (written to the span when the call ends)."""
        if value is not None:
            self.attributes[key] = value

    def set_response(
        self,
        *,
        response_model: str | None = None,
        response_id: str | None = None,
        finish_reasons: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        self.set(attrs.GEN_AI_RESPONSE_MODEL, response_model or None)
        self.set("gen_ai.response.id", response_id or None)
        if finish_reasons:
            self.attributes["gen_ai.response.finish_reasons"] = tuple(finish_reasons)

    def set_usage(
        self,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Usage in GenAI semconv terms: input includes cached tokens, output includes reasoning."""
        self.set(attrs.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        self.set(attrs.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        if cache_read_tokens:
            self.attributes[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read_tokens
        if cache_write_tokens:
            self.attributes[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write_tokens
        if reasoning_tokens:
            self.attributes[attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning_tokens

    def end(self, error: BaseException | None = None, *, error_type: str | None = None) -> None:
        """Price, record metrics and end the span. Only the first call has an effect."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._finish(error, error_type)
        except Exception as exc:
            FAULTS.record("LLM call span end", exc)
            try:
                self.span.end()
            except Exception as end_exc:
                FAULTS.record("LLM call span end", end_exc)

    def current(self) -> _Current:
        """`with call.current():` the call's span is current (spans made inside parent under it).
        `trace.use_span` without its exception handling, which the calls do not use: ~15k
        instructions less per call than its two generator-based context managers."""
        return _Current(self.span)

    @property
    def ended(self) -> bool:
        return self._ended

    def _finish(self, error: BaseException | None, error_type: str | None) -> None:
        duration = time.perf_counter() - self._started
        span = self.span
        if error is not None and error_type is None:
            error_type = type(error).__qualname__
        if error_type is not None:
            self.attributes[attrs.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else error_type))
        out: dict[str, Any] = {}
        start_ns = getattr(span, "start_time", None) or time.time_ns()
        tally: list[int] | None = None
        try:
            tally = self._state.pricer.price_llm(self.attributes, error_type is not None, start_ns, out)
        except Exception as exc:  # a broken rate card: the call keeps its usage, response and metrics
            FAULTS.record("LLM call pricing", exc)
            out.clear()
        if self.budget is not None and tally is not None and tally[COST]:
            try:
                self.budget.charge(tally[COST])
            except Exception as exc:
                FAULTS.record("budget charge", exc)
        self.attributes.update(out)
        _write_new(span, self.attributes, self._on_span)
        cost = out.get(attrs.GEN_AI_USAGE_COST)
        self._state.metrics.record(
            self.attributes,
            self._attribution,
            duration,
            self.attributes.get(attrs.GEN_AI_USAGE_INPUT_TOKENS),
            self.attributes.get(attrs.GEN_AI_USAGE_OUTPUT_TOKENS),
            cost,
            error_type,
        )
        span.end()


class _Current:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> None:
        self._token = context_api.attach(trace.set_span_in_context(self._span))

    def __exit__(self, *exc_info: object) -> None:
        context_api.detach(self._token)


_MISSING = object()
_PLAIN_TYPES = frozenset((str, int, float, bool))


def _all_plain(values: Iterable[Any]) -> bool:
    """Values the SDK would store as they are (no conversion, no dropping)."""
    for value in values:
        kind = type(value)
        if kind not in _PLAIN_TYPES and not (kind is tuple and all(type(item) is str for item in value)):
            return False
    return True


def _write_new(span: Span, attributes: dict[str, Any], on_span: dict[str, Any]) -> None:
    """Write to the span the attributes it does not carry yet.

    Each attribute through `Span.set_attributes` is validated (thousands of instructions); the
    values written here are plain, so they go straight into the span's attribute dict where the
    SDK would neither truncate nor evict (`costspan.processor._put_valid`), else through the SDK.
    """
    new = {key: value for key, value in attributes.items() if on_span.get(key, _MISSING) is not value}
    if not new:
        return
    if isinstance(span, SDKSpan) and _all_plain(new.values()) and _put_valid(span, new):
        return
    span.set_attributes(new)
