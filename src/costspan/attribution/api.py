"""Attribution in W3C baggage, and the task / agent / step / tool spans that carry it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from costspan import attributes as attrs
from costspan.attribution.outcome import RUN_KEY, TaskRun, current_run, end_run
from costspan.attribution.scopes import decorate
from costspan.attribution.values import AttributionValue, attribution_value, clean_attribution, clean_text
from costspan.otel_internals.context import baggage_of
from costspan.telemetry.faults import INSTRUMENTATION_FAULTS

F = TypeVar("F", bound=Callable[..., Any])

# What a tool scope becomes so that its price reaches the cost metric and the budgets on close.
# Those stages sit below this API in the data flow, so `costspan.rollup.tool_spend` installs itself
# here when it is imported (the package root imports it); until then a tool is only its span.
ToolSpend = Callable[[Any, str, "float | None"], Any]
_tool_spend: list[ToolSpend] = [lambda entered, _name, _cost_usd: entered]


def set_tool_spend(hook: ToolSpend) -> None:
    _tool_spend[0] = hook


_TRACER_NAME = "costspan"


def _with_baggage(ctx: otel_context.Context, entries: dict[str, str]) -> otel_context.Context:
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def _given(**entries: object) -> dict[str, str]:
    """The named entries, cleaned, as baggage strings; None means "leave the outer value".

    Raises TypeError for a value that is not a str, int or UUID (see `attribution_values`).
    """
    given: dict[str, str] = {}
    for key, value in entries.items():
        text = attribution_value(key, value)
        if text is not None:
            given[key] = text
    return given


def _require_name(kind: str, name: object) -> str:
    """The name, cleaned like an attribution value (it is one: `costspan.{kind}`)."""
    cleaned = clean_text(name) if isinstance(name, str) else None
    if cleaned is None:
        raise TypeError(f"costspan.{kind}: name must be a non-empty string, got {name!r:.80}")
    return cleaned


class _EnteredBaggage:
    def __init__(self, entries: dict[str, str]) -> None:
        self.context = _with_baggage(otel_context.get_current(), entries)

    def close(self, exc: BaseException | None) -> None:
        pass


class attribute:
    """Set attribution baggage for everything inside; a context manager and a decorator.

    Nested use overrides only the keys it names; leaving the block restores the outer values.
    """

    def __init__(
        self,
        customer_id: AttributionValue | None = None,
        task_id: AttributionValue | None = None,
        feature: AttributionValue | None = None,
        agent: AttributionValue | None = None,
        step: AttributionValue | None = None,
    ) -> None:
        self._entries = _given(
            **{
                attrs.CUSTOMER_ID: customer_id,
                attrs.TASK_ID: task_id,
                attrs.FEATURE: feature,
                attrs.AGENT: agent,
                attrs.STEP: step,
            }
        )
        self._tokens: list[object] = []

    def __enter__(self) -> None:
        self._tokens.append(otel_context.attach(_EnteredBaggage(self._entries).context))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __call__(self, fn: F) -> F:
        return decorate(fn, lambda _fn: _EnteredBaggage(self._entries))


class _EnteredSpan:
    """A started INTERNAL span, with the baggage it sets, as one context."""

    def __init__(
        self,
        name: str,
        entries: dict[str, str],
        span_attributes: dict[str, Any],
        tracer_provider: TracerProvider | None,
    ) -> None:
        ctx = _with_baggage(otel_context.get_current(), entries)
        tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        # Baggage goes in before the span starts, so span processors see it in on_start.
        self.span = tracer.start_span(name, context=ctx, kind=SpanKind.INTERNAL, attributes=span_attributes)
        self.context = trace.set_span_in_context(self.span, ctx)

    def close(self, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self.span.set_attribute(attrs.ERROR_TYPE, type(exc).__qualname__)
        self.span.end()


class _SpanScope:
    """Base of task/agent/step/tool: a context manager (yielding the span) and a decorator."""

    _default_name: str | None = None

    def __init__(self, tracer_provider: TracerProvider | None) -> None:
        self._tracer_provider = tracer_provider
        self._entered: list[tuple[_EnteredSpan, object]] = []

    def _open(self, fn: Callable[..., Any] | None) -> _EnteredSpan:
        raise NotImplementedError

    def __enter__(self) -> Span:
        entered = self._open(None)
        self._entered.append((entered, otel_context.attach(entered.context)))
        return entered.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entered, token = self._entered.pop()
        otel_context.detach(token)  # type: ignore[arg-type]
        entered.close(exc)

    def __call__(self, fn: F) -> F:
        return decorate(fn, self._open)


class TaskScope(_SpanScope):
    """See `task()`."""

    def __init__(
        self,
        name: str | None,
        *,
        task_id: AttributionValue | None,
        customer_id: AttributionValue | None,
        feature: AttributionValue | None,
        tracer_provider: TracerProvider | None,
    ) -> None:
        super().__init__(tracer_provider)
        self._name = _require_name("task", name) if name is not None else None
        # Cleaned (and type-checked) now, so a bad value fails where the scope is written.
        self._task_id = attribution_value(attrs.TASK_ID, task_id)
        self._customer_id = attribution_value(attrs.CUSTOMER_ID, customer_id)
        self._feature = attribution_value(attrs.FEATURE, feature)

    def _open(self, fn: Callable[..., Any] | None) -> _EnteredSpan:
        name = self._name or (_require_name("task", fn.__qualname__) if fn is not None else None)
        if name is None:
            raise TypeError("costspan.task used as a context manager needs a name: task('my-task')")
        task_id = self._task_id or clean_attribution(baggage.get_all()).get(attrs.TASK_ID) or uuid.uuid4().hex
        entries = _given(
            **{
                attrs.TASK: name,
                attrs.TASK_ID: task_id,
                attrs.CUSTOMER_ID: self._customer_id,
                attrs.FEATURE: self._feature,
            }
        )
        return _EnteredTask(name, entries, self._tracer_provider)


class _EnteredTask(_EnteredSpan):
    """A task's span, and its run in the context ledger (`costspan.attribution.outcome`)."""

    def __init__(self, name: str, entries: dict[str, str], tracer_provider: TracerProvider | None) -> None:
        super().__init__(name, entries, {}, tracer_provider)
        self.run = TaskRun(name, clean_attribution(baggage_of(self.context)), current_run(self.context))
        self.context = otel_context.set_value(RUN_KEY, self.run, self.context)

    def close(self, exc: BaseException | None) -> None:
        try:
            end_run(self.run, self.span, exc)
        except Exception as fault:
            INSTRUMENTATION_FAULTS.record("task run end", fault)
        super().close(exc)


@overload
def task(name: F) -> F: ...
@overload
def task(
    name: str | None = None,
    *,
    task_id: AttributionValue | None = None,
    customer_id: AttributionValue | None = None,
    feature: AttributionValue | None = None,
    tracer_provider: TracerProvider | None = None,
) -> TaskScope: ...
def task(
    name: str | Callable[..., Any] | None = None,
    *,
    task_id: AttributionValue | None = None,
    customer_id: AttributionValue | None = None,
    feature: AttributionValue | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Any:
    """A unit of work billed as a whole: span named by the task, `costspan.task`, `costspan.task_id`.

    `task_id` is the one given, else the enclosing task's, else a new uuid4 hex per run. The name
    defaults to the decorated function's qualified name. Usable as `@task`, `@task("name", ...)`
    and `with task("name", ...) as span:`.

    Each run keeps the exact cost of the calls inside it, sampled or not, and ends with an outcome
    (`costspan.task.outcome`: success, error, refused) recorded on the span and in the
    `costspan.task.cost` histogram (see `costspan.attribution.outcome`: `task_failed`, `attempt`).
    """
    if callable(name):
        bare = TaskScope(None, task_id=None, customer_id=None, feature=None, tracer_provider=None)
        return bare(name)
    return TaskScope(
        name, task_id=task_id, customer_id=customer_id, feature=feature, tracer_provider=tracer_provider
    )


class agent(_SpanScope):
    """An agent run: span `invoke_agent {name}`; `costspan.agent` baggage for everything inside."""

    def __init__(self, name: str, *, tracer_provider: TracerProvider | None = None) -> None:
        super().__init__(tracer_provider)
        self._name = _require_name("agent", name)

    def _open(self, fn: Callable[..., Any] | None) -> _EnteredSpan:
        return _EnteredSpan(
            f"{attrs.OPERATION_INVOKE_AGENT} {self._name}",
            {attrs.AGENT: self._name},
            {attrs.GEN_AI_OPERATION_NAME: attrs.OPERATION_INVOKE_AGENT, attrs.GEN_AI_AGENT_NAME: self._name},
            self._tracer_provider,
        )


class step(_SpanScope):
    """A step of a task or agent: span named by the step; `costspan.step` baggage inside."""

    def __init__(self, name: str, *, tracer_provider: TracerProvider | None = None) -> None:
        super().__init__(tracer_provider)
        self._name = _require_name("step", name)

    def _open(self, fn: Callable[..., Any] | None) -> _EnteredSpan:
        return _EnteredSpan(self._name, {attrs.STEP: self._name}, {}, self._tracer_provider)


class tool(_SpanScope):
    """A tool call: span `execute_tool {name}`, priced per call.

    The price is `cost_usd` when given, else the rate card's tool price for `name` (applied by the
    CostSpanProcessor). Inside the block, `span.set_attribute("gen_ai.usage.cost", usd)` sets a
    price known only after the call. On close the price is added to the `costspan.cost` metric and
    charged to the budgets and task runs in effect, sampled or not (`costspan.rollup.tool_spend`).
    """

    def __init__(
        self, name: str, *, cost_usd: float | None = None, tracer_provider: TracerProvider | None = None
    ) -> None:
        super().__init__(tracer_provider)
        name = _require_name("tool", name)
        if cost_usd is not None and (
            isinstance(cost_usd, bool)
            or not isinstance(cost_usd, int | float)
            or not cost_usd >= 0
            or cost_usd == float("inf")
        ):
            raise ValueError(
                f"costspan.tool({name!r}): cost_usd must be a finite number >= 0, got {cost_usd!r}"
            )
        self._name = name
        self._cost_usd = cost_usd

    def _open(self, fn: Callable[..., Any] | None) -> _EnteredSpan:
        span_attributes: dict[str, Any] = {
            attrs.GEN_AI_OPERATION_NAME: attrs.OPERATION_EXECUTE_TOOL,
            attrs.GEN_AI_TOOL_NAME: self._name,
        }
        if self._cost_usd is not None:
            span_attributes[attrs.GEN_AI_USAGE_COST] = float(self._cost_usd)
        entered = _EnteredSpan(
            f"{attrs.OPERATION_EXECUTE_TOOL} {self._name}", {}, span_attributes, self._tracer_provider
        )
        return _tool_spend[0](entered, self._name, self._cost_usd)  # its price: the cost metric, budgets


def current_attribution(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The costspan attribution in effect (from baggage, cleaned), e.g. to log or to pass to a queue."""
    return clean_attribution(baggage.get_all(ctx))
