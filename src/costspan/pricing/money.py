"""Exact money: every amount is a Python ``int`` in units of 1e-24 USD."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

UNITS_PER_USD = 10**24
# A per-MTok price scaled by this is the cost of ONE token in units (1e-24 USD / 1e-6 tokens).
UNITS_PER_TOKEN_PER_USD_PER_MTOK = UNITS_PER_USD // 1_000_000


def units_from_usd(value: Decimal | Fraction | int, *, per: int = 1) -> int | None:
    """``value`` USD per ``per`` items as exact units per item, or None if not an exact int."""
    exact = Fraction(value) * UNITS_PER_USD / per
    if exact.denominator != 1:
        return None
    return exact.numerator


def units_to_decimal(units: int) -> Decimal:
    """Units as an exact Decimal number of USD (for display and tests)."""
    return Decimal(units).scaleb(-24)


class PriceBreakdown:
    """Cost of one call, split by token kind, in units of 1e-24 USD.

    ``total == input + output + cache_read + cache_write + request_fee`` always holds.
    ``input`` is the uncached input only; ``output`` includes reasoning tokens; ``request_fee`` is
    a flat per-call fee (genai-prices ``requests_kcount``), 0 for almost every model.
    ``source`` says where the price came from: ``"genai-prices 0.2.3"``, ``"override:<file name>"``
    or ``"override:<mapping>"``.
    """

    __slots__ = ("cache_read", "cache_write", "input", "output", "request_fee", "source", "total")

    input: int
    output: int
    cache_read: int
    cache_write: int
    request_fee: int
    total: int
    source: str

    def __init__(
        self,
        *,
        input: int = 0,
        output: int = 0,
        cache_read: int = 0,
        cache_write: int = 0,
        request_fee: int = 0,
        source: str,
    ) -> None:
        setter = object.__setattr__
        setter(self, "input", input)
        setter(self, "output", output)
        setter(self, "cache_read", cache_read)
        setter(self, "cache_write", cache_write)
        setter(self, "request_fee", request_fee)
        setter(self, "total", input + output + cache_read + cache_write + request_fee)
        setter(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def total_usd(self) -> Decimal:
        return units_to_decimal(self.total)

    def _key(self) -> tuple[int, int, int, int, int, str]:
        return (self.input, self.output, self.cache_read, self.cache_write, self.request_fee, self.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceBreakdown):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"PriceBreakdown(input={self.input}, output={self.output}, cache_read={self.cache_read}, "
            f"cache_write={self.cache_write}, request_fee={self.request_fee}, total={self.total}, "
            f"source={self.source!r})"
        )
