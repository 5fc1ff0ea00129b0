"""How a `costspan.task` run ends: its outcome, the task-run metrics and the task ledger.

Installed into `costspan.attribution` on import (the package root imports it). When a run ends:
- outcome: `refused` when what it raised is (or was caused by) `BudgetExceeded`, `error` when it
  raised anything else or `costspan.task_failed()` marked it, else `success`;
- the task span gets `costspan.task.outcome`, `costspan.rollup.retry_cost_usd` (when not 0),
  `costspan.task.failure_reason` and `costspan.task.cost_outlier` (when they apply);
- `costspan.task.cost` and `costspan.task.retry_cost` are recorded with the run's exact cost from
  the context ledger (every call inside it, sampled or not), and the run is counted in
  `TASK_LEDGER` (the exit summary).
Nothing here raises into the application: faults are counted with the instrumentation's.
"""

from __future__ import annotations

from opentelemetry.trace import Span

from costspan import attributes as attrs
from costspan.attribution.outcome import (
    TaskRun,
    close_run,
    mark_span_failed,
    outcome_of,
    set_task_run_end,
    span_outcome_attributes,
)
from costspan.budget.errors import BudgetExceeded
from costspan.budget.task_ledger import TASK_LEDGER
from costspan.otel_internals.spans import attributes_of, put_valid
from costspan.pricing import UNITS_PER_USD
from costspan.telemetry.faults import INSTRUMENTATION_FAULTS
from costspan.telemetry.task_metrics import task_run_metrics

TASK_COST_OUTLIER = "costspan.task.cost_outlier"
_MAX_CHAIN = 16


def refused_by_budget(exc: BaseException | None) -> bool:
    """`exc` is a BudgetExceeded, or one is its cause or context (tenacity's RetryError, an
    application's own exception raised while handling the refusal)."""
    for _ in range(_MAX_CHAIN):
        if exc is None:
            return False
        if isinstance(exc, BudgetExceeded):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _put(span: Span, attributes: dict[str, object]) -> bool:
    """Straight into an SDK span's attributes (plain values: no SDK validation), else False."""
    try:
        return put_valid(span, attributes)  # type: ignore[arg-type]
    except AttributeError:  # not the SDK's span
        return False


def _outcome_set_by_app(span: Span) -> str | None:
    """An outcome the application wrote on the task span itself wins (as a `costspan.agent` it sets
    does): it knows what its run achieved."""
    try:
        outcome = attributes_of(span).get(attrs.TASK_OUTCOME)
    except AttributeError:  # not the SDK's span
        return None
    return outcome if outcome in attrs.TASK_OUTCOMES else None


def end_task_run(run: TaskRun, span: Span, exc: BaseException | None) -> None:
    units, retry_units = close_run(run)
    outcome = _outcome_set_by_app(span)
    if outcome is None:
        outcome = outcome_of(run, exc)
        if outcome == attrs.OUTCOME_ERROR and exc is not None and refused_by_budget(exc):
            outcome = attrs.OUTCOME_REFUSED
    outlier = False
    try:
        outlier = TASK_LEDGER.add(
            run.name, outcome, run.attribution.get(attrs.CUSTOMER_ID), units, retry_units
        )
    except Exception as fault:
        INSTRUMENTATION_FAULTS.record("task ledger", fault)
    try:
        if span.is_recording():
            if run.failed and exc is None:
                mark_span_failed(span, run)
            attributes = span_outcome_attributes(run, outcome, retry_units)
            if outlier:
                attributes[TASK_COST_OUTLIER] = True
            if not _put(span, attributes):
                span.set_attributes(attributes)
    except Exception as fault:
        INSTRUMENTATION_FAULTS.record("task span outcome", fault)
    try:
        metrics = task_run_metrics()
        if metrics.recording():
            metrics.record(
                run.name,
                outcome,
                run.attribution,
                units / UNITS_PER_USD,
                retry_units / UNITS_PER_USD,
                outlier,
            )
    except Exception as fault:
        INSTRUMENTATION_FAULTS.record("task run metric", fault)


set_task_run_end(end_task_run)
