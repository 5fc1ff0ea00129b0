"""Exact money: every amount is a Python ``int`` in units of 1e-24 USD."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from operator import itemgetter

UNITS_PER_USD = 10**24
# A per-MTok price scaled by this is the cost of ONE token in units (1e-24 USD / 1e-6 tokens).
UNITS_PER_TOKEN_PER_USD_PER_MTOK = UNITS_PER_USD // 1_000_000


def units_from_usd(value: Decimal | Fraction | int, *, per: int = 1) -> int | None:
    """``value`` USD per ``per`` items as exact units per item, or None if not an exact int."""
    exact = Fraction(value) * UNITS_PER_USD / per
    if exact.denominator != 1:
        return None
    return exact.numerator


# A call's cost as a span carries it: (total in units, then total, uncached input, output, cache read
# and cache write in USD, and the price's source).
UsdCost = tuple[int, float, float, float, float, float, str]


def usd_cost(breakdown: PriceBreakdown) -> UsdCost:
    """A breakdown's figures in USD (each the float nearest the exact amount)."""
    input, output, cache_read, cache_write, _fee, total, source = breakdown
    return (
        total,
        total / UNITS_PER_USD,
        input / UNITS_PER_USD,
        output / UNITS_PER_USD,
        cache_read / UNITS_PER_USD,
        cache_write / UNITS_PER_USD,
        source,
    )


def units_to_decimal(units: int) -> Decimal:
    """Units as an exact Decimal number of USD (for display and tests)."""
    return Decimal(units).scaleb(-24)


class PriceBreakdown(tuple):  # type: ignore[type-arg]
    """Cost of one call, split by token kind, in units of 1e-24 USD.

    ``total == input + output + cache_read + cache_write + request_fee`` always holds.
    ``input`` is the uncached input only; ``output`` includes reasoning tokens; ``request_fee`` is
    a flat per-call fee (genai-prices ``requests_kcount``), 0 for almost every model.
    ``source`` says where the price came from: ``"genai-prices 0.2.3"``, ``"override:<file name>"``
    or ``"override:<mapping>"``.

    Immutable. A tuple underneath because one is built per priced call: setting seven attributes
    on a frozen object costs about ten times as much.
    """

    __slots__ = ()

    def __new__(
        cls,
        *,
        input: int = 0,
        output: int = 0,
        cache_read: int = 0,
        cache_write: int = 0,
        request_fee: int = 0,
        source: str,
    ) -> PriceBreakdown:
        total = input + output + cache_read + cache_write + request_fee
        return tuple.__new__(cls, (input, output, cache_read, cache_write, request_fee, total, source))

    @classmethod
    def of(
        cls, input: int, output: int, cache_read: int, cache_write: int, request_fee: int, source: str
    ) -> PriceBreakdown:
        """Positional constructor for the pricing hot path (keyword calls cost more)."""
        total = input + output + cache_read + cache_write + request_fee
        return tuple.__new__(cls, (input, output, cache_read, cache_write, request_fee, total, source))

    input = property(itemgetter(0), doc="uncached input tokens' cost")
    output = property(itemgetter(1), doc="output tokens' cost, reasoning included")
    cache_read = property(itemgetter(2))
    cache_write = property(itemgetter(3))
    request_fee = property(itemgetter(4))
    total = property(itemgetter(5))
    source = property(itemgetter(6))

    @property
    def total_usd(self) -> Decimal:
        return units_to_decimal(self.total)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceBreakdown):
            return NotImplemented
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, PriceBreakdown):
            return NotImplemented
        return tuple.__ne__(self, other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return (
            f"PriceBreakdown(input={self.input}, output={self.output}, cache_read={self.cache_read}, "
            f"cache_write={self.cache_write}, request_fee={self.request_fee}, total={self.total}, "
            f"source={self.source!r})"
        )
