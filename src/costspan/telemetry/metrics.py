"""GenAI client metrics (semconv names, units, bucket advice) and the `costspan.cost` counter.

Recorded for every call an instrumentor sees, whether or not its span is sampled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from costspan import attributes as attrs

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


def _with_attribution(
    out: dict[str, Any], attribution: Mapping[str, str], dimensions: tuple[str, ...]
) -> dict[str, Any]:
    for key in dimensions:
        value = attribution.get(key)
        if value is not None:
            out[key] = value
    return out


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
            for key in self.cost_dimensions:  # inline, not `_with_attribution`: runs on every call
                value = attribution.get(key)
                if value is not None:
                    cost_attributes[key] = value
            self.cost.add(cost_usd, cost_attributes, context)


class ToolCostMetric(_CostCounter):
    """The `costspan.cost` counter for priced `costspan.tool` calls: `gen_ai.operation.name`
    (`execute_tool`), `gen_ai.tool.name` and the attribution dimensions."""

    def record(self, tool_name: str, attribution: Mapping[str, str], cost_usd: float) -> None:
        attributes = {
            attrs.GEN_AI_OPERATION_NAME: attrs.OPERATION_EXECUTE_TOOL,
            attrs.GEN_AI_TOOL_NAME: tool_name,
        }
        self.cost.add(cost_usd, _with_attribution(attributes, attribution, self.cost_dimensions))


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
