"""Price one call (LLM or tool) from its span attributes: cost, status, and its rollup tally.

Shared by the CostSpanProcessor and the instrumentors, so a call is priced the same way, once,
whoever prices it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from costspan import attributes as attrs
from costspan.pricing import BUNDLED_SOURCE, UNITS_PER_USD, RateCard
from costspan.pricing.money import usd_cost
from costspan.rollup.backend_costs import ACTIVE_WRITERS, WRITERS, set_cost_attributes, write_backend_costs
from costspan.rollup.usage import InvalidUsage, model_of, provider_of, usage_of
from costspan.telemetry.faults import LogOnce

STATUS_INVALID_USAGE = "invalid_usage"

# Tally slots: one list of ints per call or span subtree. REMOTE_CALLS and REMOTE_COST: the part of
# LLM_CALLS and COST that other services reported spending for this subtree (costspan.rollup.remote_cost).
(COST, LLM_CALLS, FAILED, UNPRICED, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, REASONING, TOOL_CALLS) = range(10)
REMOTE_CALLS, REMOTE_COST = 10, 11
TALLY_SIZE = 12
_UNRESOLVED: Any = object()
_UNPRICED_STATUSES = frozenset(
    {attrs.STATUS_UNKNOWN_MODEL, STATUS_INVALID_USAGE, attrs.STATUS_INCOMPLETE_USAGE}
)

# Optional cost attributes a priced call span can carry beyond `gen_ai.usage.cost` and
# `costspan.cost.status` (COSTSPAN_COST_ATTRIBUTES, `configure(cost_attributes=)`,
# `CostSpanProcessor(cost_attributes=)`). Each adds bytes to every call span on the wire: none by
# default. The choice is process-wide, like the shared rate card: instrumentors and the processor
# price with it.
COST_ATTRIBUTE_SETS = {
    "parts": "costspan.cost.input_usd, .output_usd, .cache_read_usd, .cache_write_usd",
    # The cost in the names other backends read (costspan.rollup.backend_costs).
    "mlflow": "mlflow.llm.cost (JSON: input_cost, output_cost, total_cost)",
    "openinference": "llm.cost.total, .prompt, .completion, .prompt_details.input/.cache_read/.cache_write",
    "semconv": "gen_ai.usage.cost.amount, .currency, .source (semantic-conventions-genai PR #443)",
}
COST_PARTS = [False]  # a one-element list: read on every priced call


def parse_cost_attributes(raw: str | Iterable[str]) -> tuple[str, ...]:
    """`"parts"` or `["parts"]` (names from COST_ATTRIBUTE_SETS); `none` or empty: none.

    Raises ValueError naming the bad entry."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    chosen: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name in ("", "none"):
            continue
        if name not in COST_ATTRIBUTE_SETS:
            known = ", ".join(COST_ATTRIBUTE_SETS)
            raise ValueError(f"{str(item).strip()!r} is not a cost attribute set (choose from {known})")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def apply_cost_attributes(chosen: tuple[str, ...]) -> None:
    """Make priced calls carry these optional cost attributes from now on, process-wide."""
    COST_PARTS[0] = "parts" in chosen
    set_cost_attributes(name for name in chosen if name in WRITERS)


def write_cost_parts(on: bool) -> None:
    COST_PARTS[0] = bool(on)


def usd(units: int) -> float:
    return units / UNITS_PER_USD


def units_from_usd(value: float) -> int:
    return round(Decimal(repr(value)).scaleb(24))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_valid_cost(value: int | float) -> bool:
    """A cost someone else wrote: NaN, infinite or negative is not a cost (and NaN cannot be summed)."""
    return math.isfinite(value) and value >= 0


class CallPricer:
    """Prices calls from span attributes with one rate card; logs each unknown model once."""

    def __init__(self, rate_card: RateCard) -> None:
        self.rate_card = rate_card
        # A card whose `price` or `pricer_for` is overridden (a subclass) is always asked through `price`.
        kind = type(rate_card)
        self._price_objects = kind.price is RateCard.price and kind.pricer_for is RateCard.pricer_for
        # (provider, model) -> the card's price object's `cost_usd`: the card is immutable.
        self._pricers: dict[tuple[str | None, str], Any] = {}
        self._unknown_models = LogOnce()
        self._invalid_usage = LogOnce()

    def price_llm(self, attributes: Any, failed: bool, start_time_ns: int, out: dict[str, Any]) -> list[int]:
        """The call's tally; the pricing attributes to write go into `out`.

        A call already priced (it carries `gen_ai.usage.cost` or `costspan.cost.status`) is not
        priced again: its figure is what rolls up.
        """
        tally = [0] * TALLY_SIZE
        tally[LLM_CALLS] = 1
        if failed:
            tally[FAILED] = 1
        try:
            usage = usage_of(attributes)
        except InvalidUsage as exc:
            self._invalid_usage.warn(
                str(exc), "costspan: invalid usage attribute %s; the call is left unpriced", exc
            )
            out[attrs.COST_STATUS] = STATUS_INVALID_USAGE
            tally[UNPRICED] = 1
            return tally
        if usage is not None:
            tally[INPUT], tally[OUTPUT], tally[CACHE_READ], tally[CACHE_WRITE], tally[REASONING] = usage
        existing_cost = attributes.get(attrs.GEN_AI_USAGE_COST)
        if _is_number(existing_cost):
            if self._rejects_cost(existing_cost, out):
                tally[UNPRICED] = 1
                return tally
            tally[COST] = units_from_usd(existing_cost)
            if ACTIVE_WRITERS:
                write_backend_costs(out, existing_cost, None, None)
            return tally
        reported_cost = attributes.get(attrs.GEN_AI_COST_TOTAL)
        if _is_number(reported_cost) and attrs.COST_STATUS not in attributes:
            # The recorder's own figure (LiteLLM's `gen_ai.cost.total_cost`): a span that carries its
            # cost, as with `gen_ai.usage.cost`, now written under the name backends add up.
            if self._rejects_cost(reported_cost, out):
                tally[UNPRICED] = 1
                return tally
            tally[COST] = units_from_usd(reported_cost)
            out[attrs.GEN_AI_USAGE_COST] = float(reported_cost)
            out[attrs.COST_STATUS] = attrs.STATUS_PRICED
            out[attrs.PRICE_SOURCE] = attrs.PRICE_SOURCE_REPORTED
            return tally
        existing_status = attributes.get(attrs.COST_STATUS)
        if existing_status is not None:
            if existing_status in _UNPRICED_STATUSES or (
                existing_status == attrs.STATUS_NO_USAGE and not failed
            ):
                tally[UNPRICED] = 1
            return tally
        if usage is None:
            out[attrs.COST_STATUS] = attrs.STATUS_NO_USAGE
            if not failed:
                tally[UNPRICED] = 1
            return tally
        return self.price_usage(
            provider_of(attributes), model_of(attributes), usage, start_time_ns, tally, out
        )

    def price_usage(
        self,
        provider: str | None,
        model: str | None,
        usage: tuple[int, int, int, int, int],
        start_time_ns: int,
        tally: list[int],
        out: dict[str, Any],
    ) -> list[int]:
        """Price a call's validated usage into its tally (counts already in it); attributes to `out`."""
        inp, outp, cache_read, cache_write, reasoning = usage
        try:
            if model is None:
                price = None
            elif not self._price_objects or cache_read + cache_write > inp or reasoning > outp:
                # Impossible usage: the card's own check raises the ValueError that names it.
                breakdown = self.rate_card.price(
                    provider,
                    model,
                    input_tokens=inp,
                    output_tokens=outp,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                    reasoning_tokens=reasoning,
                    start_time_ns=start_time_ns,
                )
                price = usd_cost(breakdown) if breakdown is not None else None
            else:
                key = (provider, model)
                cost_usd = self._pricers.get(key, _UNRESOLVED)
                if cost_usd is _UNRESOLVED:
                    pricer = self.rate_card.pricer_for(provider, model)
                    cost_usd = pricer.cost_usd if pricer is not None else None
                    if len(self._pricers) >= RateCard.CACHE_SIZE:
                        self._pricers.clear()
                    self._pricers[key] = cost_usd
                price = (
                    cost_usd(inp, outp, cache_read, cache_write, reasoning, start_time_ns)
                    if cost_usd is not None
                    else None
                )
        except ValueError as exc:
            self._invalid_usage.warn(
                f"{model}:{exc}",
                "costspan: usage of a %s call cannot be priced (%s); left unpriced",
                model,
                exc,
            )
            out[attrs.COST_STATUS] = STATUS_INVALID_USAGE
            tally[UNPRICED] = 1
            return tally
        if price is None:
            self._unknown_models.warn(
                f"{provider}/{model}",
                "costspan: no price for model %r (provider %r); its calls are marked "
                "costspan.cost.status=unknown_model. Add it to a rate-card override file.",
                model,
                provider,
            )
            out[attrs.COST_STATUS] = attrs.STATUS_UNKNOWN_MODEL
            tally[UNPRICED] = 1
            return tally
        total, total_usd, input_usd, output_usd, cache_read_usd, cache_write_usd, source = price
        tally[COST] = total
        out[attrs.GEN_AI_USAGE_COST] = total_usd
        if COST_PARTS[0]:  # only the parts that carry a cost (no zero attributes)
            if input_usd:
                out[attrs.COST_INPUT_USD] = input_usd
            if output_usd:
                out[attrs.COST_OUTPUT_USD] = output_usd
            if cache_read_usd:
                out[attrs.COST_CACHE_READ_USD] = cache_read_usd
            if cache_write_usd:
                out[attrs.COST_CACHE_WRITE_USD] = cache_write_usd
        out[attrs.COST_STATUS] = attrs.STATUS_PRICED
        if source != BUNDLED_SOURCE:  # the bundled card is the default: only other sources are named
            out[attrs.PRICE_SOURCE] = source
        if ACTIVE_WRITERS:  # backend cost attributes (COSTSPAN_COST_ATTRIBUTES), off by default
            write_backend_costs(out, total_usd, input_usd, output_usd, cache_read_usd, cache_write_usd)
        return tally

    def _rejects_cost(self, cost: float, out: dict[str, Any]) -> bool:
        """A cost written by someone else that is NaN, infinite or negative: marked, logged once."""
        if _is_valid_cost(cost):
            return False
        self._invalid_usage.warn(
            f"cost:{cost!r}", "costspan: invalid gen_ai.usage.cost %r; left unpriced", cost
        )
        out[attrs.COST_STATUS] = STATUS_INVALID_USAGE
        return True

    def price_tool(self, attributes: Any, out: dict[str, Any]) -> list[int] | None:
        """A tool call's tally, or None for a tool with no price (tools are often free)."""
        existing_cost = attributes.get(attrs.GEN_AI_USAGE_COST)
        if _is_number(existing_cost):
            if self._rejects_cost(existing_cost, out):
                return None
            units = units_from_usd(existing_cost)
            if ACTIVE_WRITERS:
                write_backend_costs(out, existing_cost, None, None)
            if attrs.COST_STATUS not in attributes:
                out[attrs.COST_STATUS] = attrs.STATUS_PRICED
                out[attrs.PRICE_SOURCE] = "cost_usd"
        else:
            name = attributes.get(attrs.GEN_AI_TOOL_NAME)
            price = self.rate_card.tool_price(name) if isinstance(name, str) else None
            if price is None:
                return None
            units = price.total
            out[attrs.GEN_AI_USAGE_COST] = usd(units)
            out[attrs.COST_STATUS] = attrs.STATUS_PRICED
            out[attrs.PRICE_SOURCE] = price.source
            if ACTIVE_WRITERS:
                write_backend_costs(out, usd(units), None, None)
        tally = [0] * TALLY_SIZE
        tally[COST] = units
        tally[TOOL_CALLS] = 1
        return tally
