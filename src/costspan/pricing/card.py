"""The rate card: prices LLM calls from genai-prices' bundled data plus user overrides."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from .bounded import BoundedCache
from .bundled import BundledPrices
from .money import PriceBreakdown, UsdCost
from .normalise import candidates, provider_hint
from .overrides import OverrideEntry, OverrideTable, load_overrides
from .pricers import CompiledPricer, FallbackPricer, Pricer
from .providers import map_provider

_ABSENT: Any = object()


class _Layered:
    """Override entries matching one (provider, model), best first, above the card underneath."""

    __slots__ = ("base", "entries")

    def __init__(self, entries: tuple[OverrideEntry, ...], base: Pricer | None) -> None:
        self.entries = entries
        self.base = base

    def cost(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> PriceBreakdown | None:
        pricer = self._in_force(ts_ns)
        return pricer.cost(inp, out, cr, cw, rs, ts_ns) if pricer is not None else None

    def cost_usd(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> UsdCost | None:
        pricer = self._in_force(ts_ns)
        return pricer.cost_usd(inp, out, cr, cw, rs, ts_ns) if pricer is not None else None

    def _in_force(self, ts_ns: int) -> OverrideEntry | Pricer | None:
        """The best entry in force at the call's start, else the card underneath."""
        for entry in self.entries:
            if entry.from_ns is None or entry.from_ns <= ts_ns:
                return entry
        return self.base


# Usages that meet every price a model can have: the lowest tier with a little of each kind, and above
# any tier start with every token kind (input, output, cache read, cache write, reasoning).
_FREE_PROBES = (
    (2, 2, 0, 0, 1),
    (2, 1, 1, 0, 0),
    (2, 1, 0, 1, 0),
    (10**10, 10**10, 0, 0, 10**9),
    (10**10, 1, 10**9, 10**9, 0),
)


def _check_usage(inp: int, out: int, cr: int, cw: int, rs: int) -> None:
    for name, value in (
        ("input_tokens", inp),
        ("output_tokens", out),
        ("cache_read_tokens", cr),
        ("cache_write_tokens", cw),
        ("reasoning_tokens", rs),
    ):
        if type(value) is not int:
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if cr + cw > inp:
        raise ValueError(
            f"cache_read_tokens + cache_write_tokens ({cr} + {cw}) exceed input_tokens ({inp}); "
            "input_tokens must include cached tokens"
        )
    if rs > out:
        raise ValueError(
            f"reasoning_tokens ({rs}) exceed output_tokens ({out}); output_tokens must include reasoning"
        )


class RateCard:
    """Prices for LLM calls and tool calls, immutable once built.

    * ``RateCard.default()``: genai-prices' bundled data (standard prices; service-tier and batch
      ``price_variants`` are not applied).
    * ``RateCard.from_file(path)``: only the prices in an override file.
    * ``card.with_overrides(path_or_mapping)``: a new card whose overrides win over ``card``.

    Each (provider, model) pair is resolved once and cached (at most ``CACHE_SIZE`` pairs, unknown
    models included), so repeated calls are integer arithmetic only.
    """

    CACHE_SIZE: ClassVar[int] = 4096
    _default: ClassVar[RateCard | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    __slots__ = ("_base", "_cache", "_layers", "_tools")

    def __init__(
        self,
        *,
        _layers: tuple[OverrideTable, ...] = (),
        _base: BundledPrices | None = None,
    ) -> None:
        self._layers = _layers
        self._base = _base
        tools: dict[str, tuple[int, str]] = {}
        for layer in reversed(_layers):  # oldest first, so newer layers overwrite
            for name, units in layer.tools.items():
                tools[name] = (units, layer.source)
        self._tools = tools
        self._cache: BoundedCache[tuple[str | None, str], Pricer | _Layered | None] = BoundedCache(
            self.CACHE_SIZE
        )

    @classmethod
    def default(cls) -> RateCard:
        """The shared card of genai-prices' bundled prices (no network, no global state touched)."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls(_base=BundledPrices())
        return cls._default

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RateCard:
        """A card with only the file's prices: models not in the file are unknown."""
        return cls(_layers=(load_overrides(path),))

    def with_overrides(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> RateCard:
        """A new card where entries from ``source`` win over this card's prices."""
        return RateCard(_layers=(load_overrides(source), *self._layers), _base=self._base)

    def _resolve(self, provider: str | None, model: str) -> Pricer | _Layered | None:
        base = self._base.resolve(provider, model) if self._base is not None else None
        if not self._layers:
            return base
        names = candidates(model)
        hint = provider_hint(model)
        providers = frozenset(
            p for p in (provider.strip().lower() if provider else None, map_provider(provider), hint) if p
        )
        entries: tuple[OverrideEntry, ...] = ()
        for layer in self._layers:
            entries += layer.matching(names, providers)
        if not entries:
            return base
        return _Layered(entries, base)

    def _lookup(self, provider: str | None, model: str) -> Pricer | _Layered | None:
        key = (provider, model)
        found = self._cache.get(key, _ABSENT)
        if found is _ABSENT:
            found = self._resolve(provider, model)
            self._cache.put(key, found)
        return found

    def price(
        self,
        provider: str | None,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        start_time_ns: int,
    ) -> PriceBreakdown | None:
        """Cost of one call, or None if the model is unknown to this card.

        Token counts follow the OpenTelemetry GenAI conventions: ``input_tokens`` includes cache
        read and cache write tokens, ``output_tokens`` includes ``reasoning_tokens``. Raises
        ValueError for impossible usage. ``start_time_ns`` (epoch ns) selects dated prices.
        """
        _check_usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
        pricer = self._lookup(provider, model)
        if pricer is None:
            return None
        return pricer.cost(
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            start_time_ns,
        )

    def pricer_for(self, provider: str | None, model: str) -> Pricer | None:
        """The (cached) price object for a model, or None if unknown: ``.cost(input, output,
        cache_read, cache_write, reasoning, start_time_ns)`` with counts already validated as
        ``price()`` validates them (``.cost_usd(...)``: the same figures in USD, see
        ``costspan.pricing.money.usd_cost``)."""
        return self._lookup(provider, model)

    def tier_start(
        self, provider: str | None, model: str, *, input_tokens: int, start_time_ns: int
    ) -> int | None:
        """The input-token count above which the price tier that prices this call begins, e.g.
        200000 for a claude-sonnet-4-5 call with more than 200k input tokens (cache included); None
        when the model's base prices apply (or the card does not know it)."""
        pricer: Any = self._lookup(provider, model)
        if isinstance(pricer, _Layered):
            pricer = pricer._in_force(start_time_ns)
        if isinstance(pricer, CompiledPricer):
            compiled = pricer.model
            price = compiled.first if not compiled.conditional else compiled.select(start_time_ns)
            for start, _ in price.tiers:  # highest start first
                if input_tokens > start:
                    return start
        elif isinstance(pricer, FallbackPricer):
            return pricer.tier_start(input_tokens, start_time_ns)
        return None

    def is_free(self, provider: str | None, model: str, *, start_time_ns: int) -> bool:
        """Whether a call to the model costs $0 whatever its usage: the card prices it, and every
        price in force at ``start_time_ns`` (each token kind, each tier, any per-call fee) is zero,
        as for a model priced at 0 in an override file. False for a model the card does not know."""
        pricer = self._lookup(provider, model)
        if pricer is None:
            return False
        for usage in _FREE_PROBES:
            cost = pricer.cost(*usage, start_time_ns)
            if cost is None or cost.total != 0:
                return False
        return True

    def is_known(self, provider: str | None, model: str) -> bool:
        """Whether this card has any price for the model (at some time)."""
        return self._lookup(provider, model) is not None

    def tool_price(self, name: str) -> PriceBreakdown | None:
        """Per-call price of a tool from the overrides' ``tools:`` table, in ``request_fee``/``total``."""
        found = self._tools.get(name)
        if found is None:
            return None
        units, source = found
        return PriceBreakdown(request_fee=units, source=source)
