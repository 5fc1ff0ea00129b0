"""GenAI client metrics (semconv names, units, bucket advice) and the `costspan.cost` counter.

Recorded for every call an instrumentor sees, whether or not its span is sampled. The attribution
dimensions of `costspan.cost` are bounded (`DimensionValueLimit`): a metric backend, and the SDK's
memory, hold one series per distinct combination, so past the limit new values are recorded as
`OVERFLOW_VALUE` (the sums stay exact; spans keep the real values).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from costspan import attributes as attrs
from costspan.telemetry.fork_safe import reopen_lock_after_fork

logger = logging.getLogger("costspan")

TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
COST = "costspan.cost"

# Bucket advice from the GenAI semantic conventions.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# Attribution keys that become cost-metric dimensions by default. `costspan.task_id` never does:
# one value per task would explode metric cardinality.
DEFAULT_COST_DIMENSIONS = (attrs.CUSTOMER_ID, attrs.TASK, attrs.FEATURE, attrs.AGENT, attrs.STEP)

_CALL_DIMENSIONS = (
    attrs.GEN_AI_OPERATION_NAME,
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
    attrs.GEN_AI_RESPONSE_MODEL,
    "server.address",
    "server.port",
)

_NO_OP_INSTRUMENTS = frozenset(
    kind for kind in (getattr(metrics, "NoOpCounter", None), getattr(metrics, "NoOpHistogram", None)) if kind
)

_COST_CALL_DIMENSIONS = (attrs.GEN_AI_PROVIDER_NAME, attrs.GEN_AI_REQUEST_MODEL, attrs.GEN_AI_RESPONSE_MODEL)


COST_DESCRIPTION = "Cost of LLM and tool calls in US dollars"

# Past the limit a new value of a dimension is recorded as this value, and the point also carries
# `otel.metric.overflow=true` (the attribute the OpenTelemetry metrics SDK specification gives the
# overflow series of a stream past its cardinality limit).
OVERFLOW_VALUE = "_overflow"
OVERFLOW_ATTRIBUTE = "otel.metric.overflow"
DEFAULT_DIMENSION_VALUE_LIMIT = 1000
# Distinct combinations of dimension values one recorder keeps, per allowed value of a dimension:
# the per-dimension caps alone would still allow their product.
COMBINATIONS_PER_VALUE = 10


class DimensionValueLimit:
    """At most `limit` distinct values of each attribution dimension on costspan's metrics (shared
    by every recorder in the process, so a customer keeps one series everywhere), and at most
    `limit * COMBINATIONS_PER_VALUE` distinct combinations per recorder. Memory is bounded by
    these; the first overflow of each dimension is logged once."""

    def __init__(self, limit: int = DEFAULT_DIMENSION_VALUE_LIMIT) -> None:
        self.limit = checked_dimension_value_limit(limit)
        self._lock = threading.Lock()
        self._values: dict[str, set[str]] = {}
        self._logged: set[str] = set()
        self.overflowed = 0  # measurements recorded with an overflow value
        reopen_lock_after_fork(self)

    def admit(
        self, dimensions: tuple[str, ...], values: tuple[Any, ...], admitted: set[Any]
    ) -> tuple[Any, ...]:
        """`values` (one per dimension, None when absent) as recorded: itself when every value and
        the combination fit (then added to `admitted`, the recorder's combinations), else with
        OVERFLOW_VALUE in place of each value that did not fit."""
        with self._lock:
            if values in admitted:
                return values
            limit = self.limit
            recorded = []
            for key, value in zip(dimensions, values, strict=True):
                if value is not None:
                    seen = self._values.setdefault(key, set())
                    if value not in seen:
                        if len(seen) < limit:
                            seen.add(value)
                        else:
                            self._log_once(key, f"{limit:,} distinct values of {key}")
                            value = OVERFLOW_VALUE
                recorded.append(value)
            out = tuple(recorded)
            if out == values:
                if len(admitted) < limit * COMBINATIONS_PER_VALUE:
                    admitted.add(values)
                    return values
                self._log_once(
                    "<combinations>",
                    f"{limit * COMBINATIONS_PER_VALUE:,} distinct combinations of {', '.join(dimensions)}",
                )
                out = tuple(None if value is None else OVERFLOW_VALUE for value in values)
            self.overflowed += 1
            return out

    def _log_once(self, what: str, reached: str) -> None:
        if what in self._logged:
            return
        self._logged.add(what)
        logger.warning(
            "costspan: the costspan.cost metric reached %s; further new values are recorded as %r "
            "(with %s=true), so the sums stay exact but are no longer split by them. Spans, "
            "`costspan report` and your tracing backend keep every value; raise the limit with "
            "COSTSPAN_METRIC_DIMENSION_LIMIT or configure(metric_dimension_limit=...)",
            reached,
            OVERFLOW_VALUE,
            OVERFLOW_ATTRIBUTE,
        )


def checked_dimension_value_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the metric dimension limit must be a whole number >= 1, got {limit!r}")
    return limit


# One for the process: every recorder of costspan.cost admits values through it.
DIMENSION_VALUES = DimensionValueLimit()


def set_dimension_value_limit(limit: int) -> None:
    """Distinct values per attribution dimension on costspan's metrics (values already admitted
    keep their series)."""
    checked = checked_dimension_value_limit(limit)
    with DIMENSION_VALUES._lock:
        DIMENSION_VALUES.limit = checked


def checked_cost_dimensions(cost_dimensions: Iterable[str]) -> tuple[str, ...]:
    dimensions = tuple(cost_dimensions)
    if attrs.TASK_ID in dimensions:
        raise ValueError("costspan.task_id cannot be a metric dimension: one series per task")
    unknown = set(dimensions) - set(attrs.ATTRIBUTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown cost metric dimensions {sorted(unknown)}; choose from {attrs.ATTRIBUTION_KEYS}"
        )
    return dimensions


class _CostCounter:
    """The `costspan.cost` counter on a MeterProvider, and the attribution keys its points carry."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS,
    ) -> None:
        self.cost_dimensions = checked_cost_dimensions(cost_dimensions)
        self.meter = metrics.get_meter("costspan", meter_provider=meter_provider)
        self.cost = self.meter.create_counter(COST, unit="USD", description=COST_DESCRIPTION)
        # Combinations of dimension values this recorder has admitted (see DimensionValueLimit).
        self.admitted: set[tuple[Any, ...]] = set()

    def add_cost(self, cost_usd: float, attributes: dict[str, Any], attribution: Mapping[str, str]) -> None:
        """Add to `costspan.cost` with the attribution dimensions, bounded."""
        dimensions = self.cost_dimensions
        values = tuple(map(attribution.get, dimensions))
        if values not in self.admitted:  # a new combination, or one past the limit
            recorded = DIMENSION_VALUES.admit(dimensions, values, self.admitted)
            if recorded is not values:
                values = recorded
                attributes[OVERFLOW_ATTRIBUTE] = True
        for key, value in zip(dimensions, values, strict=True):
            if value is not None:
                attributes[key] = value
        self.cost.add(cost_usd, attributes)


class CallMetrics(_CostCounter):
    """The three instruments, and how one finished call is recorded on them."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS,
    ) -> None:
        super().__init__(meter_provider, cost_dimensions)
        meter = self.meter
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def recording(self) -> bool:
        """False while the instruments record nowhere: no-op instruments, or the global meter
        provider's proxies before a real provider is set (then each call skips building the
        measurements' attributes)."""
        instrument = self.cost
        if type(instrument) in _NO_OP_INSTRUMENTS:
            return False
        return getattr(instrument, "_real_instrument", True) is not None

    def record(
        self,
        call_attributes: Mapping[str, Any],
        attribution: Mapping[str, str],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        error_type: str | None,
    ) -> None:
        common = {key: call_attributes[key] for key in _CALL_DIMENSIONS if key in call_attributes}
        # The current context, read once: each record would otherwise look it up again.
        context = context_api.get_current()
        if error_type is not None:
            self.duration.record(duration_s, {**common, attrs.ERROR_TYPE: error_type}, context)
        else:
            self.duration.record(duration_s, common, context)
        if input_tokens is not None:
            self.token_usage.record(input_tokens, {**common, "gen_ai.token.type": "input"}, context)
        if output_tokens is not None:
            self.token_usage.record(output_tokens, {**common, "gen_ai.token.type": "output"}, context)
        if cost_usd is not None:
            cost_attributes = {key: common[key] for key in _COST_CALL_DIMENSIONS if key in common}
            dimensions = self.cost_dimensions
            values = tuple(map(attribution.get, dimensions))
            if values not in self.admitted:  # a new combination, or one past the limit
                recorded = DIMENSION_VALUES.admit(dimensions, values, self.admitted)
                if recorded is not values:
                    values = recorded
                    cost_attributes[OVERFLOW_ATTRIBUTE] = True
            for key, value in zip(
                dimensions, values, strict=True
            ):  # inline, not `add_cost`: runs on every call
                if value is not None:
                    cost_attributes[key] = value
            self.cost.add(cost_usd, cost_attributes, context)


_TOOL_NAME = (attrs.GEN_AI_TOOL_NAME,)


class ToolCostMetric(_CostCounter):
    """The `costspan.cost` counter for priced `costspan.tool` calls: `gen_ai.operation.name`
    (`execute_tool`), `gen_ai.tool.name` and the attribution dimensions."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS,
    ) -> None:
        super().__init__(meter_provider, cost_dimensions)
        self.tool_names: set[tuple[Any, ...]] = set()

    def record(self, tool_name: str, attribution: Mapping[str, str], cost_usd: float) -> None:
        attributes: dict[str, Any] = {attrs.GEN_AI_OPERATION_NAME: attrs.OPERATION_EXECUTE_TOOL}
        # The tool name is the application's string: bounded like an attribution dimension.
        names = (tool_name,)
        if names not in self.tool_names:
            recorded = DIMENSION_VALUES.admit(_TOOL_NAME, names, self.tool_names)
            if recorded is not names:
                names = recorded
                attributes[OVERFLOW_ATTRIBUTE] = True
        attributes[attrs.GEN_AI_TOOL_NAME] = names[0]
        self.add_cost(cost_usd, attributes, attribution)


# Where tool spend is recorded: set by `costspan.configure()` and zero-code set-up (their
# MeterProvider and cost dimensions), else the global MeterProvider with the default dimensions.
_TOOL_COST: list[ToolCostMetric] = []


def record_tools_on(
    meter_provider: MeterProvider | None, cost_dimensions: Iterable[str] = DEFAULT_COST_DIMENSIONS
) -> None:
    """Record `costspan.tool` spend on `meter_provider` (None: the global one) with these dimensions."""
    metric = ToolCostMetric(meter_provider, cost_dimensions)
    _TOOL_COST[:] = [metric]


def tool_cost_metric() -> ToolCostMetric:
    if not _TOOL_COST:
        _TOOL_COST.append(ToolCostMetric())
    return _TOOL_COST[0]
