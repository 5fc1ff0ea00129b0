"""Task runs in progress: what a `costspan.task` run has spent, how it ends, which attempts were retried.

Each run of a task puts a `TaskRun` in the OpenTelemetry context. Every priced call made inside it
(an LLM call through costspan's instrumentors, a priced `costspan.tool`) is charged to it and to
the runs enclosing it, whether or not any span is sampled: this is the context ledger that the
task-run metric and the exit summary read (`costspan.budget.task_runs`).

The application's side:
- `task_failed(reason)`: the innermost run ends as `error` without raising (an answer rejected by
  validation). A run that raises ends as `error` anyway (`refused` when a budget refused a call).
- `attempt()`: `with costspan.attempt():` around one try of a retried piece of work. An attempt
  that failed (raised, or `.fail()`) and was followed by another attempt in the same run is retry
  waste: its cost goes to `costspan.rollup.retry_cost_usd` and the retry-cost metric. The last
  attempt of a run, failed or not, is not waste: it was not retried.
- `before_attempt`: the same for tenacity, as its `before=` hook (`@retry(before=costspan.before_attempt)`),
  or `costspan.retrying(...)`, tenacity's `retry` with the hook set. Tenacity calls the hook before
  each attempt; the next one starting means the previous one failed and is waste.

Attempts of one run are tracked in order: attempts of the same run running concurrently (threads,
asyncio tasks) are each charged what the run spent while they ran, so their waste may overlap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, Status, StatusCode

from costspan import attributes as attrs
from costspan.attribution.values import clean_text
from costspan.pricing import UNITS_PER_USD
from costspan.telemetry.fork_safe import reopen_lock_after_fork

logger = logging.getLogger("costspan")

RUN_KEY = otel_context.create_key("costspan.task_run")


class _Sums:
    """One lock for every run's sums: a charge is a few additions, and calls of one run may end in
    different threads. Given back to a forked child (`reopen_lock_after_fork`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()


_SUMS = _Sums()
reopen_lock_after_fork(_SUMS)
MAX_REASON_CHARS = 256


class TaskRun:
    """One run of a task: its spend so far (int, 1e-24 USD), retry waste and failure mark."""

    __slots__ = (
        "attribution",
        "failed",
        "failure_reason",
        "name",
        "open",
        "parent",
        "pending_units",
        "retry_units",
        "units",
    )

    def __init__(self, name: str, attribution: dict[str, str], parent: TaskRun | None) -> None:
        self.name = name
        self.attribution = attribution
        self.parent = parent
        self.units = 0
        self.retry_units = 0
        # The cost of the last attempt, when it failed: waste once another attempt starts.
        self.pending_units = 0
        self.failed = False
        self.failure_reason: str | None = None
        self.open = True


def charge_run(run: TaskRun | None, units: int) -> None:
    """Add a priced call's cost to `run` and every open run enclosing it (a run that already ended,
    e.g. a stream drained after its task returned, keeps the figure it ended with)."""
    if units <= 0:
        return
    with _SUMS._lock:
        while run is not None:
            if run.open:
                run.units += units
            run = run.parent


def close_run(run: TaskRun) -> tuple[int, int]:
    """Mark the run ended; its final (cost, retry cost) in units."""
    with _SUMS._lock:
        run.open = False
        return run.units, run.retry_units


def current_run(ctx: otel_context.Context | None = None) -> TaskRun | None:
    run = otel_context.get_value(RUN_KEY, ctx)
    return run if isinstance(run, TaskRun) else None


def outcome_of(run: TaskRun, exc: BaseException | None) -> str:
    """`error` for a run that raised (GeneratorExit aside) or was marked failed, else `success`."""
    if (exc is not None and not isinstance(exc, GeneratorExit)) or run.failed:
        return attrs.OUTCOME_ERROR
    return attrs.OUTCOME_SUCCESS


def span_outcome_attributes(run: TaskRun, outcome: str, retry_units: int) -> dict[str, Any]:
    out: dict[str, Any] = {attrs.TASK_OUTCOME: outcome}
    if run.failure_reason is not None:
        out[attrs.TASK_FAILURE_REASON] = run.failure_reason
    if retry_units:
        out[attrs.ROLLUP_RETRY_COST_USD] = retry_units / UNITS_PER_USD
    return out


def mark_span_failed(span: Span, run: TaskRun) -> None:
    """A run marked failed without raising: the task span's status is ERROR, like a raised one."""
    span.set_status(Status(StatusCode.ERROR, run.failure_reason or "task failed"))
    span.set_attribute(attrs.ERROR_TYPE, "costspan.task_failed")


def _end_run_bare(run: TaskRun, span: Span, exc: BaseException | None) -> None:
    """Until `costspan.budget.task_runs` installs the full hook: the outcome on the span only."""
    _cost, retry_units = close_run(run)
    if run.failed and exc is None:
        mark_span_failed(span, run)
    span.set_attributes(span_outcome_attributes(run, outcome_of(run, exc), retry_units))


# How a run ends (outcome on the span, the task-run metric, the summary ledger): stages above this
# one install it (`costspan.budget.task_runs`), as `costspan.rollup.tool_spend` does for tools.
TaskRunEnd = Callable[[TaskRun, Span, "BaseException | None"], None]
_run_end: list[TaskRunEnd] = [_end_run_bare]


def set_task_run_end(hook: TaskRunEnd) -> None:
    _run_end[0] = hook


def end_run(run: TaskRun, span: Span, exc: BaseException | None) -> None:
    _run_end[0](run, span, exc)


_warned_outside: list[bool] = []


def _outside_task(what: str) -> None:
    if not _warned_outside:
        _warned_outside.append(True)
        logger.warning("costspan: %s called outside any costspan.task run; nothing is marked", what)


def task_failed(reason: str | None = None) -> None:
    """End the innermost `costspan.task` run in effect as failed (`costspan.task.outcome=error`)
    without raising: e.g. a validation rejected the model's answer. `reason` (short, low
    cardinality: "invalid_json") goes on the task span as `costspan.task.failure_reason` and its
    status description. Outside a task run it does nothing (logged once)."""
    run = current_run()
    if run is None:
        _outside_task("costspan.task_failed()")
        return
    run.failed = True
    if reason is not None:
        cleaned = clean_text(str(reason))
        run.failure_reason = cleaned[:MAX_REASON_CHARS] if cleaned else None


class attempt:
    """`with costspan.attempt():` (or `async with`) around one try of retried work in a task run.

    A failed attempt (it raised, or `.fail()` was called) followed by another attempt in the same
    run is retry waste. Nothing happens outside a task run.
    """

    __slots__ = ("_failed", "_mark", "_run")

    def __init__(self) -> None:
        self._run: TaskRun | None = None
        self._mark = 0
        self._failed = False

    def fail(self) -> None:
        """This attempt failed without raising (its result was rejected and it will be retried)."""
        self._failed = True

    def __enter__(self) -> attempt:
        run = self._run = current_run()
        self._failed = False
        if run is not None:
            with _SUMS._lock:
                run.retry_units += run.pending_units
                run.pending_units = 0
                self._mark = run.units
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        run = self._run
        if run is None:
            return
        self._run = None
        failed = self._failed or (exc is not None and not isinstance(exc, GeneratorExit))
        with _SUMS._lock:
            run.pending_units = run.units - self._mark if failed else 0

    async def __aenter__(self) -> attempt:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


_TENACITY_MARK = "_costspan_attempt_mark"


def before_attempt(retry_state: Any) -> None:
    """tenacity's `before=` hook: `@tenacity.retry(..., before=costspan.before_attempt)`.

    Called before every attempt; from the second one on, what the run spent since the previous
    attempt started is that attempt's cost, retried: retry waste. Never raises."""
    try:
        run = current_run()
        if run is None:
            return
        with _SUMS._lock:
            previous = getattr(retry_state, _TENACITY_MARK, None)
            if previous is not None and previous[0] is run and getattr(retry_state, "attempt_number", 1) > 1:
                run.retry_units += run.units - previous[1]
            setattr(retry_state, _TENACITY_MARK, (run, run.units))
    except Exception as exc:  # a retry_state without attributes: count nothing, never break the loop
        logger.debug("costspan: before_attempt: %r", exc)


def retrying(*args: Any, **kwargs: Any) -> Any:
    """`tenacity.retry(...)` with `before=costspan.before_attempt` (chained after a `before=` given).

    `@costspan.retrying(stop=stop_after_attempt(3))` in place of `@tenacity.retry(stop=...)`; bare
    `@costspan.retrying` works too. Needs tenacity installed."""
    import tenacity

    given = kwargs.pop("before", None)
    if given is None:
        kwargs["before"] = before_attempt
    else:

        def before(retry_state: Any) -> Any:
            before_attempt(retry_state)
            return given(retry_state)

        kwargs["before"] = before
    if len(args) == 1 and callable(args[0]) and not kwargs.keys() - {"before"}:
        return tenacity.retry(**kwargs)(args[0])
    return tenacity.retry(*args, **kwargs)
