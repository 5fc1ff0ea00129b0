"""Override files: loading, validation errors, precedence, globs, providers, dates, tools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costspan.pricing import UNITS_PER_USD, RateCard, RateCardError, units_to_decimal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1) * 1000


NOW = ns(datetime(2026, 6, 1, tzinfo=UTC))
MTOK = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}

YAML = """\
models:
  - model: "acme-llm-*"
    provider: acme
    input_per_mtok: 1.0
    output_per_mtok: 2.0
    cache_read_per_mtok: 0.1
    cache_write_per_mtok: 1.25
  - model: gpt-4o
    input_per_mtok: 1
    output_per_mtok: 1
  - model: gpt-4o
    input_per_mtok: 0.5
    output_per_mtok: 0.5
    effective_from: 2026-01-01
tools:
  clearbit.enrich: 0.10
"""


def usd(card: RateCard, provider: str | None, model: str, when: int = NOW, **usage: int) -> Decimal | None:
    got = card.price(provider, model, start_time_ns=when, **(usage or MTOK))
    return None if got is None else units_to_decimal(got.total)


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(YAML)
    return path


def test_from_file_has_only_file_prices(yaml_file: Path) -> None:
    card = RateCard.from_file(yaml_file)
    assert usd(card, "acme", "acme-llm-large") == Decimal(3)
    assert usd(card, "openai", "claude-sonnet-4-6") is None
    assert usd(card, "openai", "gpt-4o-mini") is None
    got = card.price("acme", "acme-llm-large", start_time_ns=NOW, **MTOK)
    assert got is not None and got.source == "override:prices.yaml"


def test_from_file_without_effective_entry_in_force_is_unknown(yaml_file: Path) -> None:
    card = RateCard.from_file(yaml_file)
    # gpt-4o: undated $1/$1 entry applies before 2026, the dated one after.
    assert usd(card, "openai", "gpt-4o", ns(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))) == Decimal(2)
    assert usd(card, "openai", "gpt-4o", ns(datetime(2026, 1, 1, tzinfo=UTC))) == Decimal(1)


def test_from_file_gpt4o_unknown_without_entry(tmp_path: Path) -> None:
    path = tmp_path / "only-acme.yaml"
    path.write_text("models:\n  - {model: acme, input_per_mtok: 1, output_per_mtok: 1}\n")
    card = RateCard.from_file(path)
    assert usd(card, "openai", "gpt-4o") is None
    assert not card.is_known("openai", "gpt-4o")


def test_overrides_win_over_default(yaml_file: Path) -> None:
    card = RateCard.default().with_overrides(yaml_file)
    assert usd(card, "openai", "gpt-4o") == Decimal(1)
    assert usd(RateCard.default(), "openai", "gpt-4o") == Decimal("12.5")
    # unrelated models still come from genai-prices
    assert usd(card, "openai", "gpt-4o-mini") == Decimal("0.75")


def test_overrides_match_raw_and_normalised_names(yaml_file: Path) -> None:
    card = RateCard.default().with_overrides(yaml_file)
    assert usd(card, "openai", "gpt-4o-2024-08-06") == Decimal(1)
    assert usd(card, None, "openai/GPT-4o") == Decimal(1)


def test_glob_and_provider_filter(yaml_file: Path) -> None:
    card = RateCard.from_file(yaml_file)
    assert usd(card, "ACME", "ACME-LLM-small") == Decimal(3)
    assert usd(card, "other", "acme-llm-small") is None
    assert usd(card, None, "acme-llm-small") is None
    assert usd(card, None, "acme/acme-llm-small") is None  # "acme" is not a known prefix


def test_provider_filter_uses_mapped_ids() -> None:
    card = RateCard.default().with_overrides(
        {
            "models": [
                {"model": "gemini-2.5-flash", "provider": "google", "input_per_mtok": 9, "output_per_mtok": 1}
            ]
        }
    )
    assert usd(card, "gcp.vertex_ai", "gemini-2.5-flash") == Decimal(10)
    assert usd(card, "gcp.gemini", "models/gemini-2.5-flash") == Decimal(10)
    assert usd(card, "openai", "gemini-2.5-flash") != Decimal(10)


def test_cache_prices_and_defaults() -> None:
    with_cache = RateCard.default().with_overrides(
        {
            "models": [
                {
                    "model": "m1",
                    "input_per_mtok": 1,
                    "output_per_mtok": 2,
                    "cache_read_per_mtok": 0.1,
                    "cache_write_per_mtok": 1.25,
                }
            ]
        }
    )
    got = with_cache.price(
        None,
        "m1",
        input_tokens=1_000_000,
        cache_read_tokens=400_000,
        cache_write_tokens=100_000,
        output_tokens=10,
        reasoning_tokens=5,
        start_time_ns=NOW,
    )
    assert got is not None
    assert got.input == 500_000 * 10**18
    assert got.cache_read == 400_000 * 10**17
    assert got.cache_write == 100_000 * 125 * 10**16
    assert got.output == 10 * 2 * 10**18
    assert got.source == "override:<mapping>"
    no_cache = RateCard.default().with_overrides(
        {"models": [{"model": "m1", "input_per_mtok": 1, "output_per_mtok": 2}]}
    )
    got = no_cache.price(
        None,
        "m1",
        input_tokens=1_000_000,
        cache_read_tokens=400_000,
        cache_write_tokens=100_000,
        output_tokens=0,
        start_time_ns=NOW,
    )
    assert got is not None and got.total == UNITS_PER_USD and got.cache_read == 0


def test_effective_from_falls_through_to_card_below() -> None:
    card = RateCard.default().with_overrides(
        {
            "models": [
                {"model": "gpt-4o", "input_per_mtok": 0, "output_per_mtok": 0, "effective_from": "2026-03-01"}
            ]
        }
    )
    assert usd(card, "openai", "gpt-4o", ns(datetime(2026, 2, 28, 23, 59, tzinfo=UTC))) == Decimal("12.5")
    assert usd(card, "openai", "gpt-4o", ns(datetime(2026, 3, 1, tzinfo=UTC))) == Decimal(0)


def test_latest_effective_entry_wins() -> None:
    mapping = {
        "models": [
            {"model": "x", "input_per_mtok": 3, "output_per_mtok": 0, "effective_from": "2025-01-01"},
            {"model": "x", "input_per_mtok": 1, "output_per_mtok": 0},
            {"model": "x", "input_per_mtok": 2, "output_per_mtok": 0, "effective_from": "2024-01-01"},
        ]
    }
    card2 = RateCard.default().with_overrides(mapping)
    assert usd(card2, None, "x", ns(datetime(2023, 1, 1, tzinfo=UTC))) == Decimal(1)
    assert usd(card2, None, "x", ns(datetime(2024, 6, 1, tzinfo=UTC))) == Decimal(2)
    assert usd(card2, None, "x", ns(datetime(2025, 6, 1, tzinfo=UTC))) == Decimal(3)


def test_exact_beats_glob_and_newer_layer_wins() -> None:
    base = RateCard.default().with_overrides(
        {
            "models": [
                {"model": "y-*", "input_per_mtok": 5, "output_per_mtok": 0},
                {"model": "y-1", "input_per_mtok": 7, "output_per_mtok": 0},
            ]
        }
    )
    assert usd(base, None, "y-1") == Decimal(7)
    assert usd(base, None, "y-2") == Decimal(5)
    top = base.with_overrides({"models": [{"model": "y-*", "input_per_mtok": 9, "output_per_mtok": 0}]})
    assert usd(top, None, "y-1") == Decimal(9)


def test_tools(yaml_file: Path) -> None:
    card = RateCard.from_file(yaml_file)
    got = card.tool_price("clearbit.enrich")
    assert got is not None
    assert got.total == UNITS_PER_USD // 10
    assert got.input == got.output == got.cache_read == got.cache_write == 0
    assert got.source == "override:prices.yaml"
    assert card.tool_price("nope") is None
    assert RateCard.default().tool_price("clearbit.enrich") is None
    newer = card.with_overrides({"tools": {"clearbit.enrich": "0.25"}})
    assert newer.tool_price("clearbit.enrich").total == UNITS_PER_USD // 4  # type: ignore[union-attr]


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[models]]\nmodel = "t-*"\ninput_per_mtok = 0.000000000000000001\noutput_per_mtok = 2\n'
        'effective_from = 2025-01-01\n\n[tools]\n"web.search" = 0.01\n'
    )
    card = RateCard.from_file(path)
    got = card.price(None, "t-1", input_tokens=1, output_tokens=0, start_time_ns=NOW)
    assert got is not None and got.total == 1  # 1e-18 USD/MTok * 1 token = 1e-24 USD
    assert card.tool_price("web.search").total == UNITS_PER_USD // 100  # type: ignore[union-attr]
    assert card.price(None, "t-1", input_tokens=1, output_tokens=0, start_time_ns=0) is None


def test_empty_yaml_is_an_empty_card(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("")
    assert (
        RateCard.from_file(path).price(None, "gpt-4o", input_tokens=1, output_tokens=1, start_time_ns=0)
        is None
    )


# --- validation ---------------------------------------------------------------------------------

GOOD = {"model": "m", "input_per_mtok": 1, "output_per_mtok": 1}


def entry(**changes: Any) -> dict[str, Any]:
    out = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


BAD_MAPPINGS: list[tuple[Any, str, str]] = [
    ([], "<top level>", "mapping"),
    ({"model": []}, "<top level>.model", "unknown key"),
    ({"models": {"a": 1}}, "models", "list"),
    ({"models": ["x"]}, "models[0]", "mapping"),
    ({"models": [entry(colour="red")]}, "models[0].colour", "unknown field"),
    ({"models": [entry(model=...)]}, "models[0].model", "required"),
    ({"models": [GOOD, entry(input_per_mtok=...)]}, "models[1].input_per_mtok", "required"),
    ({"models": [entry(output_per_mtok=...)]}, "models[0].output_per_mtok", "required"),
    ({"models": [entry(input_per_mtok="abc")]}, "models[0].input_per_mtok", "'abc'"),
    ({"models": [entry(input_per_mtok=True)]}, "models[0].input_per_mtok", "True"),
    ({"models": [entry(input_per_mtok=None)]}, "models[0].input_per_mtok", "None"),
    ({"models": [entry(output_per_mtok=-1)]}, "models[0].output_per_mtok", "-1"),
    ({"models": [entry(cache_read_per_mtok=float("inf"))]}, "models[0].cache_read_per_mtok", "inf"),
    ({"models": [entry(cache_write_per_mtok=float("nan"))]}, "models[0].cache_write_per_mtok", "nan"),
    ({"models": [entry(input_per_mtok="0.0000000000000000001")]}, "models[0].input_per_mtok", "18 decimal"),
    ({"models": [entry(effective_from="2026-13-01")]}, "models[0].effective_from", "2026-13-01"),
    ({"models": [entry(effective_from="01/02/2026")]}, "models[0].effective_from", "01/02/2026"),
    ({"models": [entry(effective_from=20260101)]}, "models[0].effective_from", "20260101"),
    ({"models": [entry(effective_from=datetime(2026, 1, 1))]}, "models[0].effective_from", "datetime"),
    ({"models": [entry(model="")]}, "models[0].model", "''"),
    ({"models": [entry(model=5)]}, "models[0].model", "5"),
    ({"models": [entry(model="gpt-[45")]}, "models[0].model", "gpt-[45"),
    ({"models": [entry(provider=3)]}, "models[0].provider", "3"),
    ({"models": [GOOD, entry(input_per_mtok=2)]}, "models[1].model", "duplicates models[0]"),
    (
        {"models": [entry(effective_from="2026-01-01"), entry(effective_from="2026-01-01")]},
        "models[1].model",
        "duplicates",
    ),
    ({"tools": {5: 1}}, "tools.5", "name"),
    ({"tools": {"a.b": "x"}}, "tools.a.b", "'x'"),
    ({"tools": {"a.b": -0.5}}, "tools.a.b", "-0.5"),
    ({"tools": [1]}, "tools", "mapping"),
]


@pytest.mark.parametrize(("data", "place", "detail"), BAD_MAPPINGS)
def test_bad_mapping(data: Any, place: str, detail: str) -> None:
    with pytest.raises(RateCardError) as info:
        RateCard.default().with_overrides(data) if isinstance(data, dict) else _load_any(data)
    message = str(info.value)
    assert message.startswith("<mapping>: ")
    assert place in message
    assert detail in message
    assert "\n" not in message


def _load_any(data: Any) -> None:
    from costspan.pricing.overrides import parse_overrides

    parse_overrides(data, "<mapping>", "override:<mapping>")


def test_duplicates_differ_by_provider_or_date_are_fine() -> None:
    RateCard.default().with_overrides(
        {"models": [GOOD, entry(provider="acme"), entry(effective_from="2026-01-01")]}
    )


@pytest.mark.parametrize(
    ("name", "text", "place", "detail"),
    [
        ("bad.yaml", "models: [\n", "<file>", "cannot parse YAML"),
        ("bad.toml", "models = [\n", "<file>", "cannot parse TOML"),
        ("list.yaml", "- 1\n", "<top level>", "mapping"),
        ("scalar.yaml", "3\n", "<top level>", "mapping"),
        (
            "price.yaml",
            "models:\n  - {model: a, input_per_mtok: x1, output_per_mtok: 1}\n",
            "models[0].input_per_mtok",
            "x1",
        ),
        (
            "date.yaml",
            "models:\n  - {model: a, input_per_mtok: 1, output_per_mtok: 1, effective_from: 2026-02-30}\n",
            "models[0].effective_from",
            "2026-02-30",
        ),
        (
            "glob.toml",
            '[[models]]\nmodel = "a["\ninput_per_mtok = 1\noutput_per_mtok = 1\n',
            "models[0].model",
            "a[",
        ),
        ("tool.yaml", "tools:\n  clearbit.enrich: true\n", "tools.clearbit.enrich", "True"),
        ("prices.json", "{}", "<file>", ".json"),
    ],
)
def test_bad_file(tmp_path: Path, name: str, text: str, place: str, detail: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RateCardError) as info:
        RateCard.from_file(path)
    message = str(info.value)
    assert name in message
    assert place in message
    assert detail in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RateCardError, match=r"nope\.yaml: <file>: cannot read file"):
        RateCard.from_file(tmp_path / "nope.yaml")
    with pytest.raises(RateCardError, match=r"dir\.yaml: <file>: cannot read file"):
        (tmp_path / "dir.yaml").mkdir()
        RateCard.default().with_overrides(tmp_path / "dir.yaml")


def test_rate_card_error_is_value_error() -> None:
    assert issubclass(RateCardError, ValueError)
