"""genai-prices model prices compiled to integer arithmetic for our five token kinds.

Reproduces ``ModelPrice.calc_price`` for a usage made only of input, output, cache read, cache
write and output reasoning tokens:

* leaf decomposition: uncached input = input - cache_read - cache_write, subtracting only the cache
  kinds the model prices (an unpriced kind is charged at the input price); reasoning is split
  from output only when ``output_reasoning_mtok`` is priced;
* ``TieredPrices`` are cliff tiers chosen per price key by total input tokens (cache included),
  ``total_input > tier.start``;
* conditional prices: the last active one wins, else the first; ``StartDateConstraint`` compares
  the UTC date, ``TimeOfDateConstraint`` the UTC time of day (microsecond precision, like datetime);
* ``requests_kcount`` is a fee per call; every other priced unit gets zero usage from us.

``price_variants`` (service tier, batch...) are ignored: the standard prices are used, as
genai-prices does with ``price_context=None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal

from genai_prices import types as gp
from genai_prices.units import UnitRegistry, _get_registry
from genai_prices.validation import validate_priced_units

from .money import UNITS_PER_USD, units_from_usd

_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "output_reasoning_mtok")
_REQUESTS_KEY = "requests_kcount"
# Usage keys we report; a priced unit that is an ancestor of one of them would get a non-zero,
# inferred value in genai-prices, which the compiled form doesn't model.
_REPORTED = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)
_NS_PER_DAY = 86_400 * 10**9
_US_PER_DAY = 86_400 * 10**6
_EPOCH = date(1970, 1, 1)


class NotCompilable(Exception):
    """This model price needs genai-prices' generic calculation."""


Rates = tuple[int, int, int, int, int, int]  # input, cache_read, cache_write, output, reasoning, request_fee


class CompiledPrice:
    """One ``ModelPrice`` as integer rates (units per token; fee in units per call).

    The rates are kept divided by ``unit``, the largest power of ten (at most 10**24) that divides
    them all: a call's parts are then small ints, and ``part / usd_divisor`` (10**24 / unit) takes
    CPython's exact small-int division path to the same float as ``part * unit / 10**24``, at a
    third of the cost of dividing the 80-bit amounts.
    """

    __slots__ = ("base", "cr_priced", "cw_priced", "rs_priced", "tiers", "unit", "usd_divisor")

    def __init__(
        self, base: Rates, tiers: tuple[tuple[int, Rates], ...], priced: tuple[bool, bool, bool]
    ) -> None:
        exponent = min(
            (_trailing_zeros(rate) for rates in (base, *(r for _, r in tiers)) for rate in rates if rate),
            default=24,
        )
        self.unit = 10**exponent
        self.usd_divisor = UNITS_PER_USD // self.unit
        self.base = _divided(base, self.unit)
        self.tiers = tuple((start, _divided(rates, self.unit)) for start, rates in tiers)  # start descending
        self.cr_priced, self.cw_priced, self.rs_priced = priced

    def rates_for(self, input_tokens: int) -> Rates:
        """The rates (in units of ``unit``) for a call with this many input tokens."""
        for start, rates in self.tiers:
            if input_tokens > start:
                return rates
        return self.base


def _trailing_zeros(value: int) -> int:
    zeros = 0
    while zeros < 24 and value % 10 == 0:
        value //= 10
        zeros += 1
    return zeros


def _divided(rates: Rates, unit: int) -> Rates:
    r_in, r_cr, r_cw, r_out, r_rs, fee = (rate // unit for rate in rates)
    return (r_in, r_cr, r_cw, r_out, r_rs, fee)


def _validate_registry_keys(model_price: gp.ModelPrice, registry: UnitRegistry) -> set[str]:
    keys = {k for k, v in model_price.__dict__.items() if not k.startswith("_") and v is not None}
    units = []
    for key in keys:
        try:
            units.append(registry.unit_for_price_key(key))
        except KeyError as exc:
            raise NotCompilable(f"unknown price key {key}") from exc
    try:
        validate_priced_units(tuple(units), registry)
    except ValueError as exc:
        raise NotCompilable(str(exc)) from exc
    reported = [registry.units[k].dimensions.items() for k in _REPORTED]
    for unit in units:
        if unit.price_key in _KEYS or unit.price_key == _REQUESTS_KEY:
            continue
        if any(unit.dimensions.items() < dims for dims in reported):
            raise NotCompilable(f"{unit.price_key} covers tokens we report")
    return keys


def _scaled(value: object, per: int) -> int:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise NotCompilable(f"price {value!r} is not a finite non-negative Decimal")
    units = units_from_usd(value, per=per)
    if units is None:
        raise NotCompilable(f"price {value} has too many decimals")
    return units


def compile_model_price(model_price: gp.ModelPrice) -> CompiledPrice:
    registry = _get_registry()
    keys = _validate_registry_keys(model_price, registry)
    all_keys = (*_KEYS, _REQUESTS_KEY)
    starts: set[int] = set()
    for key in all_keys:
        value = getattr(model_price, key, None)
        if isinstance(value, gp.TieredPrices):
            starts.update(tier.start for tier in value.tiers)

    def rates_at(total_input: int | None) -> Rates:
        out: list[int] = []
        for key in all_keys:
            value = getattr(model_price, key, None)
            per = registry.unit_for_price_key(key).per
            if value is None:
                out.append(0)
                continue
            if isinstance(value, gp.TieredPrices):
                chosen = value.base
                if total_input is not None:
                    for tier in reversed(value.tiers):
                        if total_input > tier.start:
                            chosen = tier.price
                            break
                out.append(_scaled(chosen, per))
            else:
                out.append(_scaled(value, per))
        return (out[0], out[1], out[2], out[3], out[4], out[5])

    base = rates_at(None)
    # Between two consecutive tier starts every key's chosen tier is fixed; evaluate just above each.
    tiers = tuple((start, rates_at(start + 1)) for start in sorted(starts, reverse=True))
    priced = ("cache_read_mtok" in keys, "cache_write_mtok" in keys, "output_reasoning_mtok" in keys)
    return CompiledPrice(base, tiers, priced)


def _start_threshold_ns(start: date) -> int:
    return (start - _EPOCH).days * _NS_PER_DAY


def _utc_time_us(value: time) -> int:
    if value.tzinfo is not None:
        value = datetime.combine(_EPOCH, value).astimezone(UTC).time()
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 10**6 + value.microsecond


class Condition:
    """A precomputed ``StartDateConstraint`` / ``TimeOfDateConstraint`` (or none: always active)."""

    __slots__ = ("end_us", "kind", "start")

    def __init__(self, constraint: gp.StartDateConstraint | gp.TimeOfDateConstraint | None) -> None:
        if constraint is None:
            self.kind, self.start, self.end_us = 0, 0, 0
        elif isinstance(constraint, gp.StartDateConstraint):
            self.kind, self.start, self.end_us = 1, _start_threshold_ns(constraint.start_date), 0
        elif isinstance(constraint, gp.TimeOfDateConstraint):
            self.kind = 2
            self.start = _utc_time_us(constraint.start_time)
            self.end_us = _utc_time_us(constraint.end_time)
        else:
            raise NotCompilable(f"unknown constraint {constraint!r}")

    def active(self, ts_ns: int) -> bool:
        if self.kind == 0:
            return True
        if self.kind == 1:
            return ts_ns >= self.start
        tod = (ts_ns // 1000) % _US_PER_DAY
        if self.end_us < self.start:
            return tod >= self.start or tod < self.end_us
        return self.start <= tod < self.end_us


class CompiledModel:
    """All of a model's standard prices; ``select()`` picks the one in force at a time."""

    __slots__ = ("conditional", "first")

    def __init__(self, first: CompiledPrice, conditional: Sequence[tuple[Condition, CompiledPrice]]) -> None:
        self.first = first
        self.conditional = tuple(reversed(conditional))  # last active wins: scan from the end

    def select(self, ts_ns: int) -> CompiledPrice:
        for condition, price in self.conditional:
            if condition.active(ts_ns):
                return price
        return self.first


def compile_model(model: gp.ModelInfo) -> CompiledModel:
    """Compile a genai-prices model; raises NotCompilable if it needs the generic calculation."""
    if isinstance(model.prices, gp.ModelPrice):
        return CompiledModel(compile_model_price(model.prices), ())
    if not model.prices:
        raise NotCompilable("model has no prices")
    compiled = [(Condition(c.constraint), compile_model_price(c.prices)) for c in model.prices]
    return CompiledModel(compiled[0][1], compiled)
