"""The task-run metrics: one `costspan.task.cost` histogram point per ended `costspan.task` run.

- `costspan.task.cost` (histogram, USD): the run's exact cost, every call inside it included.
- `costspan.task.retry_cost` (counter, USD): the part of it spent on attempts that were retried
  (added when not 0).
- `costspan.task.cost_outliers` (counter, {run}): runs that cost more than `OUTLIER_FACTOR` times
  the median of their task type's earlier runs in this process (once it has `OUTLIER_MIN_RUNS`).

Dimensions: `costspan.task`, `costspan.task.outcome` (success | error | refused) and the configured
cost dimensions (never `costspan.task_id`), from the run's attribution.

Bucket advice: log-spaced 1-2-5 steps from $0.0001 to $100. `explicit_bucket_boundaries_advisory`
came in opentelemetry-api 1.23 (the lowest this package admits, 1.30, has it); an API without it
gets the SDK's default buckets (0 to 10,000, too coarse below $5): set a View with `BUCKETS` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from costspan import attributes as attrs
from costspan.telemetry.metrics import DEFAULT_COST_DIMENSIONS, checked_cost_dimensions

TASK_COST = "costspan.task.cost"
TASK_RETRY_COST = "costspan.task.retry_cost"
TASK_COST_OUTLIERS = "costspan.task.cost_outliers"

OUTLIER_FACTOR = 3
OUTLIER_MIN_RUNS = 20

BUCKETS: tuple[float, ...] = (
    *(float(f"{mantissa}e{exponent}") for exponent in range(-4, 2) for mantissa in (1, 2, 5)),
    100.0,
)

_NO_OP = frozenset(kind for kind in (getattr(metrics, "NoOpHistogram", None),) if kind)


def _histogram(meter: metrics.Meter) -> Any:
    description = "Cost of one costspan.task run in US dollars (every call inside it)"
    try:
        return meter.create_histogram(
            TASK_COST, unit="USD", description=description, explicit_bucket_boundaries_advisory=list(BUCKETS)
        )
    except TypeError:  # an API older than 1.23: no bucket advice (see the module docstring)
        return meter.create_histogram(TASK_COST, unit="USD", description=description)


class TaskRunMetrics:
    """The three instruments on one MeterProvider, and the attribution keys their points carry."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS,
    ) -> None:
        self.dimensions = tuple(key for key in checked_cost_dimensions(cost_dimensions) if key != attrs.TASK)
        meter = metrics.get_meter("costspan", meter_provider=meter_provider)
        self.cost = _histogram(meter)
        self.retry_cost = meter.create_counter(
            TASK_RETRY_COST,
            unit="USD",
            description="Cost of task-run attempts that were retried, in US dollars",
        )
        self.outliers = meter.create_counter(
            TASK_COST_OUTLIERS,
            unit="{run}",
            description=f"Task runs costing over {OUTLIER_FACTOR}x their task type's median run",
        )

    def recording(self) -> bool:
        instrument = self.cost
        if type(instrument) in _NO_OP:
            return False
        return getattr(instrument, "_real_instrument", True) is not None

    def record(
        self,
        task: str,
        outcome: str,
        attribution: Mapping[str, str],
        cost_usd: float,
        retry_cost_usd: float,
        outlier: bool,
    ) -> None:
        point: dict[str, str] = {attrs.TASK: task, attrs.TASK_OUTCOME: outcome}
        for key in self.dimensions:
            value = attribution.get(key)
            if value is not None:
                point[key] = value
        self.cost.record(cost_usd, point)
        # Added only when not 0: each instrument record costs the SDK tens of thousands of
        # instructions, and most runs have neither (the rules and dashboard read a missing retry
        # series as 0, and a new outlier series as an outlier).
        if retry_cost_usd:
            self.retry_cost.add(retry_cost_usd, point)
        if outlier:
            self.outliers.add(1, point)


# Where task runs are recorded: set by `costspan.configure()` and zero-code set-up, else the
# global MeterProvider with the default dimensions.
_TASK_METRICS: list[TaskRunMetrics] = []


def record_task_runs_on(
    meter_provider: MeterProvider | None, cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS
) -> None:
    """Record task runs on `meter_provider` (None: the global one) with these dimensions."""
    _TASK_METRICS[:] = [TaskRunMetrics(meter_provider, cost_dimensions)]


def task_run_metrics() -> TaskRunMetrics:
    if not _TASK_METRICS:
        _TASK_METRICS.append(TaskRunMetrics())
    return _TASK_METRICS[0]
