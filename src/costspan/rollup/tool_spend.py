"""Where a `costspan.tool(...)` call's price goes when it closes: the `costspan.cost` metric and
the budgets in effect where it was opened.

Both see every priced tool call, whether or not its span is sampled: the price set on the span
(when it is recording), else `cost_usd`, else the rate card's tool price; a tool with none is free
and records nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from opentelemetry import baggage

from costspan import attributes as attrs
from costspan.attribution.api import set_tool_spend
from costspan.attribution.outcome import charge_run, current_run
from costspan.attribution.values import clean_attribution
from costspan.budget.gate import CallBudget, plan
from costspan.pricing import shared_rate_card
from costspan.rollup.call_pricing import units_from_usd, usd
from costspan.telemetry.faults import INSTRUMENTATION_FAULTS
from costspan.telemetry.metrics import tool_cost_metric

E = TypeVar("E")


def _is_usd(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def tool_units(span: Any, name: str, cost_usd: float | None) -> int:
    attributes = getattr(span, "attributes", None)
    on_span = attributes.get(attrs.GEN_AI_USAGE_COST) if attributes is not None else None
    if _is_usd(on_span):
        return units_from_usd(float(on_span))
    if cost_usd is not None:
        return units_from_usd(float(cost_usd))
    price = shared_rate_card().tool_price(name)
    return price.total if price is not None else 0


class _SpentTool:
    """An entered tool scope whose close also records its price and charges the budgets."""

    __slots__ = ("_budget", "_cost_usd", "_entered", "_name", "context", "span")

    def __init__(self, entered: Any, budget: CallBudget | None, name: str, cost_usd: float | None) -> None:
        self._entered = entered
        self._budget = budget
        self._name = name
        self._cost_usd = cost_usd
        self.context = entered.context
        self.span = entered.span

    def close(self, exc: BaseException | None) -> None:
        try:
            units = tool_units(self.span, self._name, self._cost_usd)
        except Exception as fault:
            units = 0
            _fault("tool price", fault)
        self._entered.close(exc)
        if not units:
            return
        charge_run(current_run(self.context), units)  # the task runs it is part of, sampled or not
        try:
            attribution = clean_attribution(baggage.get_all(self.context))
            tool_cost_metric().record(self._name, attribution, usd(units))
        except Exception as fault:
            _fault("tool cost metric", fault)
        if self._budget is not None:
            try:
                self._budget.charge(units)
            except Exception as fault:
                _fault("budget charge (tool)", fault)


def _fault(where: str, exc: Exception) -> None:
    INSTRUMENTATION_FAULTS.record(where, exc)


def spent_tool(entered: E, name: str, cost_usd: float | None) -> E:
    """`entered` (a tool's span scope), recording its price and charging the budgets on close."""
    try:
        budget = plan(ctx=entered.context)  # type: ignore[attr-defined]
    except Exception as fault:
        _fault("budget plan (tool)", fault)
        budget = None
    return cast(E, _SpentTool(entered, budget, name, cost_usd))


set_tool_spend(spent_tool)
