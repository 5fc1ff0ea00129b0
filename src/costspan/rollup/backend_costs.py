"""A call's cost in the attribute names other backends read, for the backends a user names.

MLflow keeps a span's `mlflow.llm.cost` instead of pricing its tokens; OpenInference names cost
`llm.cost.*` (Phoenix does not read it yet, Arize-ai/phoenix#15240); the GenAI semantic
conventions' proposal (semantic-conventions-genai PR #443) names it `gen_ai.usage.cost.amount`.
Nothing is written unless COSTSPAN_COST_ATTRIBUTES or `configure(cost_attributes=...)` names a
backend (`costspan.rollup.call_pricing.apply_cost_attributes` sets them), so spans sent elsewhere
carry costspan's own attributes only. The pricer checks `ACTIVE_WRITERS` (a list, empty by
default) and calls the writers only when it is not empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from costspan import attributes as attrs

# (out, total, input, output, cache_read, cache_write): the parts in USD, None where not known (a
# cost someone else wrote has a total only). Cache parts are part of the input, as costspan prices them.
CostWriter = Callable[[dict[str, Any], float, float | None, float | None, float, float], None]


def _mlflow(
    out: dict[str, Any],
    total: float,
    input_usd: float | None,
    output_usd: float | None,
    cache_read: float,
    cache_write: float,
) -> None:
    # MLflow stores span attributes as JSON text and reads this one back with json.loads.
    prompt = (input_usd or 0.0) + cache_read + cache_write
    out[attrs.MLFLOW_LLM_COST] = json.dumps(
        {
            "input_cost": prompt if input_usd is not None else 0.0,
            "output_cost": output_usd if output_usd is not None else 0.0,
            "total_cost": total,
        }
    )


def _openinference(
    out: dict[str, Any],
    total: float,
    input_usd: float | None,
    output_usd: float | None,
    cache_read: float,
    cache_write: float,
) -> None:
    out[attrs.LLM_COST_TOTAL] = total
    if input_usd is None:
        return
    out[attrs.LLM_COST_PROMPT] = input_usd + cache_read + cache_write
    out[attrs.LLM_COST_PROMPT_DETAILS_INPUT] = input_usd
    if cache_read:
        out[attrs.LLM_COST_PROMPT_DETAILS_CACHE_READ] = cache_read
    if cache_write:
        out[attrs.LLM_COST_PROMPT_DETAILS_CACHE_WRITE] = cache_write
    out[attrs.LLM_COST_COMPLETION] = output_usd or 0.0


def _semconv(
    out: dict[str, Any],
    total: float,
    input_usd: float | None,
    output_usd: float | None,
    cache_read: float,
    cache_write: float,
) -> None:
    out[attrs.GEN_AI_USAGE_COST_AMOUNT] = total
    out[attrs.GEN_AI_USAGE_COST_CURRENCY] = "USD"
    out[attrs.GEN_AI_USAGE_COST_SOURCE] = "local"


WRITERS: dict[str, CostWriter] = {
    "mlflow": _mlflow,
    "openinference": _openinference,
    "semconv": _semconv,
}

# The writers in force, in place (the pricers hold this very list). Empty: nothing extra is written.
ACTIVE_WRITERS: list[CostWriter] = []


def set_cost_attributes(backends: Iterable[str]) -> None:
    """Write the cost attributes of these backends (names from `WRITERS`) on every priced call."""
    writers = [WRITERS[name] for name in backends]
    ACTIVE_WRITERS[:] = writers


def active_cost_attributes() -> tuple[str, ...]:
    return tuple(name for name, writer in WRITERS.items() if writer in ACTIVE_WRITERS)


def write_backend_costs(
    out: dict[str, Any],
    total: float,
    input_usd: float | None,
    output_usd: float | None,
    cache_read: float = 0.0,
    cache_write: float = 0.0,
) -> None:
    for writer in ACTIVE_WRITERS:
        writer(out, total, input_usd, output_usd, cache_read, cache_write)


__all__ = [
    "ACTIVE_WRITERS",
    "WRITERS",
    "active_cost_attributes",
    "set_cost_attributes",
    "write_backend_costs",
]
