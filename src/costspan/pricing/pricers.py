"""Price objects that turn validated token counts into a ``PriceBreakdown``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from genai_prices import types as gp

from .compiled import CompiledModel, CompiledPrice
from .money import UNITS_PER_USD, PriceBreakdown, UsdCost, usd_cost

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Pricer(Protocol):
    def cost(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> PriceBreakdown: ...

    def cost_usd(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> UsdCost: ...


class CompiledPricer:
    """A genai-prices model priced with integer arithmetic only."""

    __slots__ = ("model", "source")

    def __init__(self, model: CompiledModel, source: str) -> None:
        self.model = model
        self.source = source

    def cost(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> PriceBreakdown:
        price, uncached, output, cache_read, cache_write, fee = self._parts(inp, out, cr, cw, rs, ts_ns)
        unit = price.unit
        return PriceBreakdown.of(
            uncached * unit, output * unit, cache_read * unit, cache_write * unit, fee * unit, self.source
        )

    def cost_usd(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> UsdCost:
        """``usd_cost(self.cost(...))``, without the big-int divisions (the pricing hot path)."""
        price, uncached, output, cache_read, cache_write, fee = self._parts(inp, out, cr, cw, rs, ts_ns)
        total = uncached + output + cache_read + cache_write + fee
        divisor = price.usd_divisor
        return (
            total * price.unit,
            total / divisor,
            uncached / divisor,
            output / divisor,
            cache_read / divisor,
            cache_write / divisor,
            self.source,
        )

    def _parts(
        self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int
    ) -> tuple[CompiledPrice, int, int, int, int, int]:
        """The price in force and the call's parts in its `unit`: uncached input, output (reasoning
        included), cache read, cache write, request fee."""
        model = self.model
        price = model.first if not model.conditional else model.select(ts_ns)
        r_in, r_cr, r_cw, r_out, r_rs, fee = price.rates_for(inp) if price.tiers else price.base
        uncached = inp
        cache_read = cache_write = reasoning = 0
        if price.cr_priced:
            uncached -= cr
            cache_read = cr * r_cr
        if price.cw_priced:
            uncached -= cw
            cache_write = cw * r_cw
        plain_out = out
        if price.rs_priced:
            plain_out -= rs
            reasoning = rs * r_rs
        return price, uncached * r_in, plain_out * r_out + reasoning, cache_read, cache_write, fee


def _to_units(value: Decimal) -> int:
    return int((value * UNITS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def datetime_from_ns(ts_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


class FallbackPricer:
    """A model whose prices the compiled form can't express: genai-prices computes each call.

    genai-prices only reports input and output totals, so cache costs stay inside ``input`` and
    anything without a direction (a per-request fee) goes to ``request_fee``.
    """

    __slots__ = ("model", "provider", "reason", "source")

    def __init__(self, model: gp.ModelInfo, provider: gp.Provider, source: str, reason: str) -> None:
        self.model = model
        self.provider = provider
        self.source = source
        self.reason = reason

    def cost(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> PriceBreakdown:
        usage = gp.Usage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            output_reasoning_tokens=rs,
        )
        calc = self.model.calc_price(usage, self.provider, genai_request_timestamp=datetime_from_ns(ts_ns))
        input_units = _to_units(calc.input_price)
        output_units = _to_units(calc.output_price)
        return PriceBreakdown(
            input=input_units,
            output=output_units,
            request_fee=_to_units(calc.total_price) - input_units - output_units,
            source=self.source,
        )

    def cost_usd(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> UsdCost:
        return usd_cost(self.cost(inp, out, cr, cw, rs, ts_ns))

    def tier_start(self, inp: int, ts_ns: int) -> int | None:
        """The start of the highest price tier that `inp` input tokens cross, else None."""
        price = self.model.get_prices(datetime_from_ns(ts_ns))
        crossed = [
            tier.start
            for value in vars(price).values()
            if isinstance(value, gp.TieredPrices)
            for tier in value.tiers
            if inp > tier.start
        ]
        return max(crossed, default=None)
