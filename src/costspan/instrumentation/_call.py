"""One LLM call's CLIENT span, from request to usage, shared by every provider instrumentor.

The span is priced before it ends (so the exported span carries its cost even without a
CostSpanProcessor, and the processor does not price it again) and metrics are recorded for every
call, sampled or not. No method raises: a failure is counted in `FAULTS` and logged once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from costspan import attributes as attrs
from costspan._version import __version__
from costspan.attribution.outcome import RUN_KEY, charge_run
from costspan.attribution.values import clean_attribution
from costspan.budget import gate as budget_gate
from costspan.budget.accounts import ENTERED_ANY, REGISTRY
from costspan.otel_internals.context import attach_span, baggage_of, current_context, detach
from costspan.otel_internals.sampling import ignores_attributes, sampler_of
from costspan.otel_internals.spans import put_valid
from costspan.pricing import RateCard, shared_rate_card
from costspan.rollup.call_pricing import (
    CACHE_READ,
    CACHE_WRITE,
    COST,
    FAILED,
    INPUT,
    LLM_CALLS,
    OUTPUT,
    REASONING,
    STATUS_INVALID_USAGE,
    TALLY_SIZE,
    CallPricer,
)
from costspan.rollup.matching import FRAMEWORK_AGENT_SEEN
from costspan.rollup.processor import CALL_TALLY_ATTR
from costspan.rollup.usage import MAX_TOKENS, model_of
from costspan.telemetry.faults import INSTRUMENTATION_FAULTS, LogOnce
from costspan.telemetry.metrics import DEFAULT_COST_DIMENSIONS, CallMetrics

FAULTS = INSTRUMENTATION_FAULTS

# True while a call that an instrumentor above the provider SDKs traces (LiteLLM) runs: the SDK
# instrumentors then make no span for the request it sends through them, so the call has one span
# and one price.
INSIDE_TRACED_CALL: ContextVar[bool] = ContextVar("costspan_inside_traced_call", default=False)

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
        self._sampler: object = _MISSING
        self._sampler_reads_attributes = True

    @classmethod
    def from_instrument_kwargs(cls, scope_name: str, kwargs: Mapping[str, Any]) -> Instrumentation:
        return cls(
            scope_name,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            rate_card=kwargs.get("rate_card"),
            cost_dimensions=tuple(kwargs.get("cost_dimensions", DEFAULT_COST_DIMENSIONS)),
        )


class CallSpan:
    """Span `{operation} {model}` (kind CLIENT) for one call. Start it, feed it, `end()` it once."""

    __slots__ = (
        "_attribution",
        "_late",
        "_late_unchecked",
        "_pending_end",
        "_sdk_span",
        "_started",
        "_state",
        "_task_run",
        "_usage",
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
        request_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._state = state
        self._pending_end = [True]  # popped by the first end(): list.pop is atomic
        self._usage: tuple[int | None, ...] | None = None
        # Attributes added after the start (response, usage, error, cost), written by the end.
        self._late: dict[str, Any] = {}
        # Set when a value added after the start may not be plain (see `_all_plain`): the end then
        # checks every value before writing straight into the span.
        self._late_unchecked = False
        attributes: dict[str, Any] = {
            attrs.GEN_AI_OPERATION_NAME: operation,
            attrs.GEN_AI_PROVIDER_NAME: provider,
        }
        if request_model:
            attributes[attrs.GEN_AI_REQUEST_MODEL] = request_model
        if request_attributes:
            attributes.update(request_attributes)
            if None in attributes.values():
                attributes = {key: value for key, value in attributes.items() if value is not None}
        self.attributes = attributes  # the request's; the end adds the late ones
        ctx = current_context()
        entries = baggage_of(ctx)
        self._attribution = clean_attribution(entries) if entries else _NO_ATTRIBUTION  # metric dimensions
        self._task_run = ctx.get(RUN_KEY)  # the costspan.task run the cost is charged to, sampled or not
        self.budget: budget_gate.CallBudget | None = None  # set by admit(): where the cost is charged
        self._started = time.perf_counter()
        name = f"{operation} {request_model}" if request_model else operation
        # Under the SDK's own samplers (which never read them) the request attributes are written
        # straight into the started span: through `start_span` the SDK validates each one (~7k
        # instructions). Span processors' `on_start` then sees the span before its attributes; any
        # other sampler gets them at start as usual.
        tracer = state.tracer
        sampler = getattr(tracer, "sampler", None)  # an SDK tracer's; a proxy's is looked up
        if sampler is None:
            sampler = sampler_of(tracer)
        if sampler is not state._sampler:
            state._sampler_reads_attributes = sampler is None or not ignores_attributes(sampler)
            state._sampler = sampler
        span = tracer.start_span(
            name,
            ctx,  # the current context, already read: the SDK and its sampler would each look it up
            kind=SpanKind.CLIENT,
            attributes=attributes if state._sampler_reads_attributes else None,
        )
        self.span: Span = span
        self._sdk_span = type(span) in _SDK_SPAN_TYPES or _is_sdk_span(span)
        if FRAMEWORK_AGENT_SEEN[0] and attrs.AGENT not in self._attribution:
            self._add_framework_agent(span)
        # The instrumentors build request attributes from type-checked values (str, int, float,
        # tuple of str), which the SDK would store as they are: no `_all_plain` pass. (An SDK span
        # just started is recording: an unsampled one is a NonRecordingSpan.)
        if (
            not state._sampler_reads_attributes
            and not (self._sdk_span and put_valid(span, attributes))
            and span.is_recording()
        ):
            span.set_attributes(attributes)

    def _add_framework_agent(self, span: Span) -> None:
        """The agent an enclosing framework agent span named (stamped by the CostSpanProcessor on
        start) becomes a dimension of this call's metric points, as `costspan.agent` baggage would."""
        agent = (getattr(span, "attributes", None) or {}).get(attrs.AGENT)
        if isinstance(agent, str) and agent:
            self._attribution = {**self._attribution, attrs.AGENT: agent}

    def admit(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The budget hook: call it in the wrapper after the span started, before the SDK sends the
        request, and send what it returns (the model is swapped when a budget downgrades it). Raises
        `costspan.BudgetExceeded` (after ending this span as failed) when a budget refuses the call:
        the one exception a hook lets through. See costspan.budget.gate."""
        if not ENTERED_ANY[0] and REGISTRY[0].empty:  # no budget anywhere: the common case
            return kwargs
        return budget_gate.admit(self, kwargs)

    def set(self, key: str, value: Any) -> None:
        """Record a response attribute (written to the span when the call ends)."""
        if value is not None:
            self._late[key] = value
            if type(value) not in _PLAIN_TYPES:
                self._late_unchecked = True

    def set_response(
        self,
        *,
        response_model: str | None = None,
        response_id: str | None = None,
        finish_reasons: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        attributes = self._late
        if response_model:
            attributes[attrs.GEN_AI_RESPONSE_MODEL] = response_model
            if type(response_model) is not str:
                self._late_unchecked = True
        if response_id:
            attributes["gen_ai.response.id"] = response_id
            if type(response_id) is not str:
                self._late_unchecked = True
        if finish_reasons:
            reasons = tuple(finish_reasons)
            attributes["gen_ai.response.finish_reasons"] = reasons
            for reason in reasons:
                if type(reason) is not str:
                    self._late_unchecked = True

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
        usage = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
        if input_tokens is None and output_tokens is None:
            return
        # Priced as it is when every count is None or an int from 0 to MAX_TOKENS; anything else
        # leaves the call unpriced (`set_invalid_usage`), its counts neither written nor summed.
        for count in usage:
            if count is not None and (type(count) is not int or not 0 <= count <= MAX_TOKENS):
                position = next(i for i, value in enumerate(usage) if value is count)
                self.set_invalid_usage(_USAGE_KEYS[position], count)
                return
        self._usage = usage
        attributes = self._late
        if input_tokens is not None:
            attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        if output_tokens is not None:
            attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        if cache_read_tokens:
            attributes[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read_tokens
        if cache_write_tokens:
            attributes[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write_tokens
        if reasoning_tokens:
            attributes[attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning_tokens

    def set_invalid_usage(self, field: str, value: Any) -> None:
        """The response's usage has a field that is there but is not a token count (fractional, a
        string, negative, null beside a count...): the call is `invalid_usage`, never priced, its
        counts neither written nor summed. Logged once per provider and field."""
        self._unpriced(
            STATUS_INVALID_USAGE,
            field,
            "costspan: a %s call's usage has %s=%.40r, not a token count; left unpriced "
            "(costspan.cost.status=invalid_usage)",
            self._provider(),
            field,
            value,
        )

    def set_incomplete_usage(
        self,
        reason: str,
        *,
        input_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> None:
        """The response ended before its final usage (e.g. a stream without its last usage event):
        the call is `incomplete_usage`, never priced from the partial counts. The input counts it
        did report are recorded (and summed as tokens: they were used); the output count is not
        known and is not written. Logged once per provider and reason."""
        self._unpriced(
            attrs.STATUS_INCOMPLETE_USAGE,
            reason,
            "costspan: a %s call ended before its final usage (%s); left unpriced "
            "(costspan.cost.status=incomplete_usage)",
            self._provider(),
            reason,
        )
        if type(input_tokens) is not int or not 0 <= input_tokens <= MAX_TOKENS:
            return
        late = self._late
        late[attrs.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        # Parts of the input: written when there are some (as `set_usage` does).
        if type(cache_read_tokens) is int and 0 < cache_read_tokens <= input_tokens:
            late[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read_tokens
        if type(cache_write_tokens) is int and 0 < cache_write_tokens <= input_tokens:
            late[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write_tokens

    def _provider(self) -> Any:
        return self.attributes.get(attrs.GEN_AI_PROVIDER_NAME)

    def _unpriced(self, status: str, what: str, message: str, *args: Any) -> None:
        self._usage = None
        late = self._late
        for key in _USAGE_KEYS:
            late.pop(key, None)
        late[attrs.COST_STATUS] = status
        _UNUSABLE_USAGE.warn(f"{status}:{self._provider()}:{what}", message, *args)

    def end(self, error: BaseException | None = None, *, error_type: str | None = None) -> None:
        """Price, record metrics and end the span. Only the first call has an effect."""
        try:
            self._pending_end.pop()
        except IndexError:
            return
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
        `trace.use_span` without its exception handling, which the calls do not use, attaching
        through `costspan.otel_internals.context`."""
        return _Current(self.span)

    @property
    def ended(self) -> bool:
        return not self._pending_end

    def _finish(self, error: BaseException | None, error_type: str | None) -> None:
        duration = time.perf_counter() - self._started
        span = self.span
        late = self._late
        if error is not None and error_type is None:
            error_type = type(error).__qualname__
        if error_type is not None:
            late[attrs.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else error_type))
        attributes = self.attributes
        attributes.update(late)
        out: dict[str, Any] = {}
        # The SDK span's own field: its `start_time` property is a Python call.
        start_ns = getattr(span, "_start_time", None) or getattr(span, "start_time", None) or time.time_ns()
        tally: list[int] | None = None
        try:
            tally = self._price(error_type is not None, start_ns, out)
        except Exception as exc:  # a broken rate card: the call keeps its usage, response and metrics
            FAULTS.record("LLM call pricing", exc)
            out.clear()
        if self.budget is not None and tally is not None and tally[COST]:
            try:
                self.budget.charge(tally[COST])
            except Exception as exc:
                FAULTS.record("budget charge", exc)
        if self._task_run is not None and tally is not None and tally[COST]:
            charge_run(self._task_run, tally[COST])
        if out:
            attributes.update(out)
            late.update(out)
        # Values from the typed setters and from pricing are plain unless a setter said not.
        if late and (self._late_unchecked or not (self._sdk_span and put_valid(span, late))):
            _write(span, late)
        metrics = self._state.metrics
        if metrics.recording():
            metrics.record(
                attributes,
                self._attribution,
                duration,
                attributes.get(attrs.GEN_AI_USAGE_INPUT_TOKENS),
                attributes.get(attrs.GEN_AI_USAGE_OUTPUT_TOKENS),
                out.get(attrs.GEN_AI_USAGE_COST),
                error_type,
            )
        if tally is not None and self._sdk_span:
            # The CostSpanProcessor rolls this tally up instead of pricing the span a second time.
            # (An SDK span is recording until it ends, just below.)
            span.__dict__[CALL_TALLY_ATTR] = tally
        span.end()

    def _price(self, failed: bool, start_ns: int, out: dict[str, Any]) -> list[int]:
        """The call's tally, priced from the usage the instrumentor read (no re-reading of
        attributes) when it is plain and in range; else from the attributes, as the processor would."""
        usage = self._usage
        pricer = self._state.pricer
        if usage is None:
            return pricer.price_llm(self.attributes, failed, start_ns, out)
        inp, outp, cache_read, cache_write, reasoning = usage
        counts = (inp or 0, outp or 0, cache_read or 0, cache_write or 0, reasoning or 0)
        tally = [0] * TALLY_SIZE
        tally[LLM_CALLS] = 1
        if failed:
            tally[FAILED] = 1
        (tally[INPUT], tally[OUTPUT], tally[CACHE_READ], tally[CACHE_WRITE], tally[REASONING]) = counts
        attributes = self.attributes
        provider = attributes.get(attrs.GEN_AI_PROVIDER_NAME) or None  # set by the start: a str
        return pricer.price_usage(provider, model_of(attributes), counts, start_ns, tally, out)


class _Current:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> None:
        self._token = attach_span(self._span)

    def __exit__(self, *exc_info: object) -> None:
        detach(self._token)


_MISSING = object()
# The usage attributes, in `set_usage`'s order.
_USAGE_KEYS = (
    attrs.GEN_AI_USAGE_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
_UNUSABLE_USAGE = LogOnce()
_NO_ATTRIBUTION: dict[str, str] = {}
_PLAIN_TYPES = frozenset((str, int, float, bool))
# Span classes known to be the SDK's (an isinstance against its ABC base costs ~1k instructions).
_SDK_SPAN_TYPES: set[type] = set()


def _all_plain(values: Iterable[Any]) -> bool:
    """Values the SDK would store as they are (no conversion, no dropping). Plain loops: a
    generator per tuple value would cost more than the rest of the check."""
    for value in values:
        kind = type(value)
        if kind in _PLAIN_TYPES:
            continue
        if kind is not tuple:
            return False
        for item in value:
            if type(item) is not str:
                return False
    return True


def _is_sdk_span(span: Span) -> bool:
    kind = type(span)
    if kind in _SDK_SPAN_TYPES:
        return True
    if isinstance(span, SDKSpan):
        _SDK_SPAN_TYPES.add(kind)
        return True
    return False


def _write(span: Span, attributes: dict[str, Any]) -> None:
    """Write attributes to a recording span.

    Each attribute through `Span.set_attributes` is validated (~7k instructions); plain values go
    straight into the span's attribute dict where the SDK would neither truncate nor evict
    (`costspan.otel_internals.spans.put_valid`), anything else through the SDK.
    """
    if _is_sdk_span(span) and _all_plain(attributes.values()) and put_valid(span, attributes):
        return
    span.set_attributes(attributes)
