"""The default rate card reproduces genai-prices exactly, with integer money."""

from __future__ import annotations

import itertools
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import genai_prices
import pytest
from genai_prices import Usage
from genai_prices import types as gp
from genai_prices.data import providers as bundled_providers

from costspan.pricing import UNITS_PER_USD, PriceBreakdown, RateCard, map_provider, units_to_decimal
from costspan.pricing.bundled import SOURCE, BundledPrices
from costspan.pricing.compiled import CompiledModel, CompiledPrice, compile_model
from costspan.pricing.money import usd_cost
from costspan.pricing.pricers import CompiledPricer

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


def ns(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1) * 1000


def usd(breakdown: PriceBreakdown | None) -> Decimal:
    assert breakdown is not None
    return units_to_decimal(breakdown.total)


def reference(provider: str | None, model: str, usage: dict[str, int], when: datetime = NOW) -> Fraction:
    calc = genai_prices.calc_price(
        Usage(
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
            cache_read_tokens=usage.get("cache_read_tokens", 0),
            cache_write_tokens=usage.get("cache_write_tokens", 0),
            output_reasoning_tokens=usage.get("reasoning_tokens", 0),
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=when,
    )
    return Fraction(calc.total_price)


@pytest.fixture(scope="module")
def card() -> RateCard:
    return RateCard.default()


# --- exact dollar figures from published prices -------------------------------------------------


def test_gpt_4o_cached_example(card: RateCard) -> None:
    got = card.price(
        "openai",
        "gpt-4o",
        input_tokens=2480,
        cache_read_tokens=1024,
        output_tokens=514,
        start_time_ns=ns(NOW),
    )
    assert got is not None
    # (2480 - 1024) * $2.50 + 1024 * $1.25 + 514 * $10.00, per million tokens
    assert usd(got) == Decimal("0.01006")
    assert got.input == 1456 * 25 * 10**17
    assert got.cache_read == 1024 * 125 * 10**16
    assert got.output == 514 * 10 * 10**18
    assert got.cache_write == 0 and got.request_fee == 0
    assert got.total == got.input + got.output + got.cache_read + got.cache_write
    assert got.source == "genai-prices 0.2.3" == SOURCE


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        ("openai", "gpt-4o", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "12.5"),
        (
            "openai",
            "gpt-4o",
            {"input_tokens": 1_000_000, "cache_read_tokens": 1_000_000, "output_tokens": 0},
            "1.25",
        ),
        ("openai", "gpt-4o-mini", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "0.75"),
        (
            "openai",
            "gpt-4o-mini",
            {"input_tokens": 2000, "cache_read_tokens": 1000, "output_tokens": 100},
            "0.000285",
        ),
        ("openai", "gpt-4o-2024-05-13", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "20"),
        # claude-sonnet-4-6: $3 in, $0.30 cache read, $3.75 cache write, $15 out
        (
            "anthropic",
            "claude-sonnet-4-6",
            {
                "input_tokens": 10_000,
                "cache_read_tokens": 4000,
                "cache_write_tokens": 2000,
                "output_tokens": 1000,
            },
            "0.0357",
        ),
        # above 200k input tokens (cache included) every token is billed at the long-context tier:
        # $6 in, $0.60 cache read, $7.50 cache write, $22.50 out. claude-sonnet-4-5 (end of life
        # 2026-11-30) stays here: its tier applies at every date, claude-sonnet-4-6's only before
        # 2026-03-13 (see test_claude_sonnet_4_6_long_context_tier_ends_2026_03_13).
        (
            "anthropic",
            "claude-sonnet-4-5",
            {
                "input_tokens": 300_000,
                "cache_read_tokens": 100_000,
                "cache_write_tokens": 50_000,
                "output_tokens": 10_000,
            },
            "1.56",
        ),
        ("anthropic", "claude-sonnet-4-5", {"input_tokens": 200_000, "output_tokens": 0}, "0.6"),
        ("anthropic", "claude-sonnet-4-5", {"input_tokens": 200_001, "output_tokens": 0}, "1.200006"),
        # gemini-2.5-flash: $0.30 in, $0.03 cache read, $2.50 out
        (
            "google",
            "gemini-2.5-flash",
            {"input_tokens": 100_000, "cache_read_tokens": 50_000, "output_tokens": 2000},
            "0.0215",
        ),
        ("gcp.vertex_ai", "gemini-2.5-flash", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "2.8"),
        ("deepseek", "deepseek-chat", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "1.37"),
        ("x_ai", "grok-3", {"input_tokens": 1_000_000, "output_tokens": 1_000_000}, "18"),
    ],
)
def test_published_prices(
    card: RateCard, provider: str, model: str, usage: dict[str, int], expected: str
) -> None:
    got = card.price(provider, model, start_time_ns=ns(NOW), **usage)
    assert usd(got) == Decimal(expected)
    assert got is not None
    assert Fraction(got.total, UNITS_PER_USD) == reference(map_provider(provider), model, usage)


def test_reasoning_is_part_of_output(card: RateCard) -> None:
    # o4-mini has no separate reasoning price: reasoning tokens are output tokens.
    a = card.price(
        "openai", "o4-mini", input_tokens=100, output_tokens=1000, reasoning_tokens=800, start_time_ns=ns(NOW)
    )
    b = card.price("openai", "o4-mini", input_tokens=100, output_tokens=1000, start_time_ns=ns(NOW))
    assert a == b
    # sonar-deep-research prices reasoning at $3 vs $8 output.
    got = card.price(
        "perplexity",
        "sonar-deep-research",
        input_tokens=0,
        output_tokens=1_000_000,
        reasoning_tokens=400_000,
        start_time_ns=ns(NOW),
    )
    assert usd(got) == Decimal("6")  # 600k * $8 + 400k * $3


def test_request_fee(card: RateCard) -> None:
    got = card.price("perplexity", "sonar", input_tokens=1000, output_tokens=1000, start_time_ns=ns(NOW))
    assert got is not None
    assert got.request_fee == 12 * UNITS_PER_USD // 1000
    assert usd(got) == Decimal("0.014")


def test_o3_price_change_by_date(card: RateCard) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    before = datetime(2025, 6, 9, 23, 59, 59, 999999, tzinfo=UTC)
    after = datetime(2025, 6, 10, 0, 0, tzinfo=UTC)
    assert usd(card.price("openai", "o3", start_time_ns=ns(before), **usage)) == Decimal("50")
    assert usd(card.price("openai", "o3", start_time_ns=ns(after), **usage)) == Decimal("10")


def test_claude_sonnet_4_6_long_context_tier_ends_2026_03_13(card: RateCard) -> None:
    usage = {"input_tokens": 200_001, "output_tokens": 1000}
    before = datetime(2026, 3, 12, 23, 59, 59, 999999, tzinfo=UTC)
    after = datetime(2026, 3, 13, 0, 0, tzinfo=UTC)
    # 200,001 x $6 + 1,000 x $22.50 per million tokens: the long-context tier
    got = card.price("anthropic", "claude-sonnet-4-6", start_time_ns=ns(before), **usage)
    assert usd(got) == Decimal("1.222506")
    # 200,001 x $3 + 1,000 x $15 per million tokens: flat from 2026-03-13
    got = card.price("anthropic", "claude-sonnet-4-6", start_time_ns=ns(after), **usage)
    assert usd(got) == Decimal("0.615003")
    for when, expected in ((before, "1.222506"), (after, "0.615003")):
        assert reference("anthropic", "claude-sonnet-4-6", usage, when) == Fraction(expected)


def test_deepseek_off_peak(card: RateCard) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    peak = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    off_peak = datetime(2025, 3, 1, 0, 29, 59, 999999, tzinfo=UTC)
    assert usd(card.price("deepseek", "deepseek-chat", start_time_ns=ns(peak), **usage)) == Decimal("1.37")
    assert usd(card.price("deepseek", "deepseek-chat", start_time_ns=ns(off_peak), **usage)) == Decimal(
        "0.685"
    )
    end = datetime(2025, 3, 1, 16, 30, tzinfo=UTC)
    assert usd(card.price("deepseek", "deepseek-chat", start_time_ns=ns(end), **usage)) == Decimal("0.685")


# --- a table of usages compared with genai_prices.calc_price ------------------------------------

TABLE_MODELS: list[tuple[str | None, str]] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-2024-05-13"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "o3"),
    ("openai", "o4-mini"),
    ("openai", "gpt-5"),
    ("anthropic", "claude-sonnet-4-5"),  # long-context tiers at every date (end of life 2026-11-30)
    ("anthropic", "claude-3-5-sonnet-20240620"),
    ("anthropic", "claude-3-5-haiku"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-sonnet-4-6"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.0-flash"),
    ("google", "gemini-3-pro-preview"),
    ("mistral", "mistral-large-latest"),
    ("mistral", "mistral-small-latest"),
    ("mistral", "ministral-8b-latest"),
    ("deepseek", "deepseek-chat"),
    ("deepseek", "deepseek-reasoner"),
    ("x-ai", "grok-3"),
    ("groq", "llama-3.3-70b-versatile"),
    ("cohere", "command-r-plus"),
    ("perplexity", "sonar"),
    ("perplexity", "sonar-deep-research"),
    ("aws", "us.anthropic.claude-sonnet-4-6-v1:0"),
    (None, "gpt-4o"),
    (None, "claude-sonnet-4-6"),
]
TABLE_USAGES: list[dict[str, int]] = [
    {"input_tokens": 1234, "output_tokens": 567},
    {"input_tokens": 50_000, "cache_read_tokens": 40_000, "output_tokens": 1200, "reasoning_tokens": 300},
    {
        "input_tokens": 250_000,
        "cache_read_tokens": 100_000,
        "cache_write_tokens": 20_000,
        "output_tokens": 9_999,
    },
    {"input_tokens": 180_000, "cache_write_tokens": 30_000, "output_tokens": 1, "reasoning_tokens": 1},
]
TABLE_TIMES = [datetime(2025, 1, 15, 3, 0, tzinfo=UTC), datetime(2026, 4, 1, 20, 15, tzinfo=UTC)]
TABLE = list(itertools.product(TABLE_MODELS, TABLE_USAGES, TABLE_TIMES))


def test_table_is_big_enough() -> None:
    assert len(TABLE_MODELS) >= 20
    assert len(TABLE) >= 100


@pytest.mark.parametrize(("model", "usage", "when"), TABLE)
def test_matches_genai_prices(
    card: RateCard, model: tuple[str | None, str], usage: dict[str, int], when: datetime
) -> None:
    provider, name = model
    got = card.price(provider, name, start_time_ns=ns(when), **usage)
    assert got is not None
    assert Fraction(got.total, UNITS_PER_USD) == reference(provider, name, usage, when)


# --- every model in the bundled data ------------------------------------------------------------

SWEEP_USAGES = [
    {
        "input_tokens": 250_000,
        "cache_read_tokens": 50_000,
        "cache_write_tokens": 10_000,
        "output_tokens": 3000,
        "reasoning_tokens": 1000,
    },
    {"input_tokens": 1000, "output_tokens": 10},
]
SWEEP_TIMES = [
    datetime(2024, 1, 1, 12, tzinfo=UTC),
    datetime(2026, 5, 1, 2, tzinfo=UTC),
    datetime(2027, 6, 1, 8, tzinfo=UTC),
]


def _gp_usage(usage: dict[str, int]) -> Usage:
    return Usage(
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage.get("cache_read_tokens", 0),
        cache_write_tokens=usage.get("cache_write_tokens", 0),
        output_reasoning_tokens=usage.get("reasoning_tokens", 0),
    )


def _args(usage: dict[str, int]) -> tuple[int, int, int, int, int]:
    return (
        usage["input_tokens"],
        usage["output_tokens"],
        usage.get("cache_read_tokens", 0),
        usage.get("cache_write_tokens", 0),
        usage.get("reasoning_tokens", 0),
    )


def test_every_bundled_model_compiles_to_the_same_price() -> None:
    """Each ModelInfo, priced directly: compiled integer result == ModelInfo.calc_price."""
    checked = 0
    for provider in bundled_providers:
        for model in provider.models:
            pricer = CompiledPricer(compile_model(model), SOURCE)
            for usage, when in itertools.product(SWEEP_USAGES, SWEEP_TIMES):
                expected = model.calc_price(
                    _gp_usage(usage), provider, genai_request_timestamp=when
                ).total_price
                got = pricer.cost(*_args(usage), ns(when))
                assert Fraction(got.total, UNITS_PER_USD) == Fraction(expected), (provider.id, model.id, when)
                checked += 1
    assert checked > 10_000


def test_cost_usd_is_the_float_nearest_each_exact_part_for_every_bundled_model() -> None:
    """The hot path's `cost_usd` (parts kept in the price's own power of ten) gives exactly the
    floats that dividing the exact 1e-24 USD amounts gives, for every model, usage and time."""
    checked = 0
    for provider in bundled_providers:
        for model in provider.models:
            pricer = CompiledPricer(compile_model(model), SOURCE)
            for usage, when in itertools.product(SWEEP_USAGES, SWEEP_TIMES):
                exact = pricer.cost(*_args(usage), ns(when))
                got = pricer.cost_usd(*_args(usage), ns(when))
                assert got == usd_cost(exact), (provider.id, model.id, when)
                assert got[0] == exact.total
                assert got[1] == float(Fraction(exact.total, UNITS_PER_USD))
                checked += 1
    assert checked > 10_000


def test_cost_usd_of_sub_micro_dollar_rates_is_exact() -> None:
    """Rates with few trailing zeros (a long divisor) and a large count still convert exactly."""
    price = CompiledPrice((3_000_000_000_017, 0, 0, 7, 0, 0), (), (False, False, False))
    pricer = CompiledPricer(CompiledModel(price, ()), SOURCE)
    got = pricer.cost_usd(10**9, 3, 0, 0, 0, 0)
    assert got[0] == 10**9 * 3_000_000_000_017 + 21
    assert got[1] == float(Fraction(got[0], UNITS_PER_USD))
    assert got[2] == float(Fraction(10**9 * 3_000_000_000_017, UNITS_PER_USD))
    assert got[3] == float(Fraction(21, UNITS_PER_USD))


def test_every_bundled_model_id_resolves_like_genai_prices(card: RateCard) -> None:
    """By name: wherever genai-prices resolves a model id, we price it identically."""
    usage = SWEEP_USAGES[0]
    when = SWEEP_TIMES[1]
    unresolvable = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for provider in bundled_providers:
            for model in provider.models:
                try:
                    expected = reference(provider.id, model.id, usage, when)
                except LookupError:
                    # Some ids don't satisfy their own match rules (e.g. fireworks ids only match
                    # as accounts/fireworks/models/<id>); genai-prices can't find them by id either.
                    unresolvable += 1
                    continue
                got = card.price(provider.id, model.id, start_time_ns=ns(when), **usage)
                assert got is not None, (provider.id, model.id)
                assert Fraction(got.total, UNITS_PER_USD) == expected, (provider.id, model.id)
    assert unresolvable < 150


def test_no_model_needs_the_fallback() -> None:
    prices = BundledPrices()
    for provider in bundled_providers:
        for model in provider.models:
            assert isinstance(prices.pricer_for(provider, model), CompiledPricer)
    assert prices.fallbacks == {}


def test_fallback_pricer_matches_genai_prices() -> None:
    from costspan.pricing.pricers import FallbackPricer

    provider = next(p for p in bundled_providers if p.id == "anthropic")
    # claude-sonnet-4-5: a long-context tier at every date, which 300,000 input tokens reach
    model = next(m for m in provider.models if m.id == "claude-sonnet-4-5")
    fallback = FallbackPricer(model, provider, SOURCE, "test")
    compiled = CompiledPricer(compile_model(model), SOURCE)
    args = (300_000, 1000, 1000, 2000, 0, ns(NOW))
    assert fallback.cost(*args).total == compiled.cost(*args).total


# --- speed path: no generic calculation ---------------------------------------------------------


def test_cached_path_never_calls_generic_calculation(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"model_price": 0, "model_info": 0, "find": 0}
    original_mp = gp.ModelPrice.calc_price
    original_mi = gp.ModelInfo.calc_price
    original_find = BundledPrices.find_model

    def spy_mp(self: gp.ModelPrice, usage: object) -> object:
        calls["model_price"] += 1
        return original_mp(self, usage)

    def spy_mi(self: gp.ModelInfo, *args: object, **kwargs: object) -> object:
        calls["model_info"] += 1
        return original_mi(self, *args, **kwargs)  # type: ignore[arg-type]

    def spy_find(self: BundledPrices, provider: str | None, model: str) -> object:
        calls["find"] += 1
        return original_find(self, provider, model)

    monkeypatch.setattr(gp.ModelPrice, "calc_price", spy_mp)
    monkeypatch.setattr(gp.ModelInfo, "calc_price", spy_mi)
    monkeypatch.setattr(BundledPrices, "find_model", spy_find)
    card = RateCard(_base=BundledPrices())
    for _ in range(3):
        for provider, model in TABLE_MODELS:
            card.price(
                provider,
                model,
                input_tokens=300_000,
                cache_read_tokens=1000,
                output_tokens=10,
                start_time_ns=ns(NOW),
            )
    assert calls["model_price"] == 0
    assert calls["model_info"] == 0
    assert calls["find"] == len(TABLE_MODELS)  # resolved once each


def test_unknown_models_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RateCard, "CACHE_SIZE", 64)
    card = RateCard(_base=BundledPrices())
    for i in range(500):
        assert card.price(None, f"junk-{i}", input_tokens=1, output_tokens=1, start_time_ns=0) is None
    assert len(card._cache) == 64
    assert card._base is not None
    snapshot = card._base._snapshot
    assert len(snapshot._provider_misses) <= 4096


# --- unknown models and bad usage ---------------------------------------------------------------


def test_unknown_model_is_none(card: RateCard) -> None:
    assert card.price("openai", "no-such-model-xyz", input_tokens=1, output_tokens=1, start_time_ns=0) is None
    assert card.price(None, "no-such-model-xyz", input_tokens=1, output_tokens=1, start_time_ns=0) is None
    assert card.price("acme", "no-such-model-xyz", input_tokens=1, output_tokens=1, start_time_ns=0) is None
    assert not card.is_known(None, "no-such-model-xyz")
    assert card.is_known("openai", "gpt-4o")


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 8, "cache_write_tokens": 3},
        {"input_tokens": 10, "output_tokens": 1, "reasoning_tokens": 2},
        {"input_tokens": -1, "output_tokens": 1},
        {"input_tokens": 1, "output_tokens": -1},
        {"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": -1},
    ],
)
def test_impossible_usage_raises(card: RateCard, usage: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        card.price("openai", "gpt-4o", start_time_ns=0, **usage)


def test_non_int_tokens_rejected(card: RateCard) -> None:
    with pytest.raises(TypeError):
        card.price("openai", "gpt-4o", input_tokens=1.5, output_tokens=1, start_time_ns=0)  # type: ignore[arg-type]


def test_default_is_shared() -> None:
    assert RateCard.default() is RateCard.default()


def test_default_does_not_touch_global_snapshot() -> None:
    from genai_prices import data_snapshot

    RateCard.default().price("openai", "gpt-4o", input_tokens=1, output_tokens=1, start_time_ns=0)
    assert data_snapshot._custom_snapshot is None


def test_breakdown_is_immutable(card: RateCard) -> None:
    got = card.price("openai", "gpt-4o", input_tokens=1, output_tokens=1, start_time_ns=0)
    assert got is not None
    with pytest.raises(AttributeError):
        got.total = 0  # type: ignore[misc]
