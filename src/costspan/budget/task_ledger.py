"""Per task type totals of the runs that ended in this process: the exit summary's source.

Bounded whatever the number of runs: at most `MAX_TASK_TYPES` task types (later ones share one
row), and per task type a few integers, a cost sketch and a top-customers table of fixed size.

- Cost quantiles: exact (nearest rank) over the first 1,024 runs of a task type, kept as they are;
  past that, a log-bucket sketch (the DDSketch layout): bucket i counts costs in (g^(i-1), g^i]
  with g = 1.02, so a quantile is within 1% of a cost that was recorded at that rank. Costs are
  clamped to [$1e-7, $1e4], at most 1,280 buckets; $0 runs are counted apart.
- Top customers: the Space-Saving algorithm with `TOP_CAPACITY` counters. While a task type has
  seen at most that many customers the figures are exact; past it a customer's figure may be
  over-stated by at most the smallest counter (the summary marks such figures with "<=").
Money is int 1e-24 USD, so totals are exact.
"""

from __future__ import annotations

import math
import threading
from array import array
from dataclasses import dataclass, field

from costspan import attributes as attrs
from costspan.pricing import UNITS_PER_USD
from costspan.telemetry.fork_safe import reopen_lock_after_fork
from costspan.telemetry.task_metrics import OUTLIER_FACTOR, OUTLIER_MIN_RUNS

MAX_TASK_TYPES = 256
OTHER_TASK_TYPES = "(other task types)"
TOP_CAPACITY = 32
SKETCH_GAMMA = 1.02
_LOG_GAMMA = math.log(SKETCH_GAMMA)
MEDIAN_REFRESH_RUNS = 32
EXACT_RUNS = 1024
_MIN_USD = 1e-7
_MAX_USD = 1e4


class CostSketch:
    """Counts of costs in log buckets: quantiles within 1% relative error, bounded size. The first
    `EXACT_RUNS` costs are also kept as they are: until then quantiles are exact (nearest rank)."""

    __slots__ = ("buckets", "count", "exact", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.exact: array[float] | None = array("d")

    def add(self, usd: float) -> None:
        self.count += 1
        exact = self.exact
        if exact is not None:
            if len(exact) < EXACT_RUNS:
                exact.append(usd)
            else:
                self.exact = None
        if usd <= 0:
            self.zeros += 1
            return
        index = math.ceil(math.log(min(max(usd, _MIN_USD), _MAX_USD)) / _LOG_GAMMA)
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The cost at quantile q (nearest rank), None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        if rank <= self.zeros:
            return 0.0
        seen = self.zeros
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                # The bucket's midpoint in relative terms: within (g-1)/(g+1) of any cost in it.
                return 2 * SKETCH_GAMMA**index / (SKETCH_GAMMA + 1)
        return None  # not reached


class TopSpenders:
    """Space-Saving heavy hitters: the customers with the largest spend, in `capacity` counters."""

    __slots__ = ("capacity", "overstated", "spend")

    def __init__(self, capacity: int = TOP_CAPACITY) -> None:
        self.capacity = capacity
        self.spend: dict[str, int] = {}
        # Per counter: how much of it may belong to customers it replaced (Space-Saving's error).
        self.overstated: dict[str, int] = {}

    def add(self, customer: str, units: int) -> None:
        spend = self.spend
        if customer in spend:
            spend[customer] += units
        elif len(spend) < self.capacity:
            spend[customer] = units
        else:
            smallest = min(spend, key=spend.__getitem__)
            floor = spend.pop(smallest)
            self.overstated.pop(smallest, None)
            spend[customer] = floor + units
            self.overstated[customer] = floor

    def top(self, n: int) -> list[tuple[str, int, bool]]:
        """(customer, units, may be over-stated), largest first."""
        ranked = sorted(self.spend.items(), key=lambda item: (-item[1], item[0]))[:n]
        return [(customer, units, bool(self.overstated.get(customer))) for customer, units in ranked]


@dataclass
class TaskTypeStats:
    runs: int = 0
    successes: int = 0
    errors: int = 0
    refused: int = 0
    units: int = 0
    retry_units: int = 0
    sketch: CostSketch = field(default_factory=CostSketch)
    customers: TopSpenders = field(default_factory=TopSpenders)
    # The median the outlier check compares with: read from the sketch every MEDIAN_REFRESH_RUNS runs.
    median_usd: float | None = None


class TaskLedger:
    """Totals per task type of every run that ended; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        reopen_lock_after_fork(self)
        self._stats: dict[str, TaskTypeStats] = {}

    def add(self, task: str, outcome: str, customer: str | None, units: int, retry_units: int) -> bool:
        """Count one ended run; True when it cost more than OUTLIER_FACTOR x its task type's
        median (from OUTLIER_MIN_RUNS earlier runs on; the median is re-read every
        MEDIAN_REFRESH_RUNS runs)."""
        usd = units / UNITS_PER_USD
        with self._lock:
            stats = self._stats.get(task)
            if stats is None:
                if len(self._stats) >= MAX_TASK_TYPES:
                    task = OTHER_TASK_TYPES
                stats = self._stats.setdefault(task, TaskTypeStats())
            runs = stats.runs
            if runs == OUTLIER_MIN_RUNS or (runs > OUTLIER_MIN_RUNS and not runs % MEDIAN_REFRESH_RUNS):
                stats.median_usd = stats.sketch.quantile(0.5)
            median = stats.median_usd
            # The sketch's median is within 1% of a recorded cost: the margin keeps that out.
            outlier = median is not None and usd > OUTLIER_FACTOR * median * SKETCH_GAMMA
            stats.runs += 1
            if outcome == attrs.OUTCOME_SUCCESS:
                stats.successes += 1
            elif outcome == attrs.OUTCOME_REFUSED:
                stats.refused += 1
            else:
                stats.errors += 1
            stats.units += units
            stats.retry_units += retry_units
            stats.sketch.add(usd)
            if customer is not None and units:
                stats.customers.add(customer, units)
            return outlier

    def snapshot(self) -> dict[str, TaskTypeStats]:
        with self._lock:
            return dict(self._stats)

    def clear(self) -> None:
        with self._lock:
            self._stats.clear()


TASK_LEDGER = TaskLedger()
