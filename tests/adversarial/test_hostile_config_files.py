"""Hostile price-override and budget files: each ends in under two seconds, with a short
`RateCardError` / `BudgetConfigError` naming the file and what is wrong, or loads quickly when it is
simply large and valid (issue 23, item 5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.budget import BudgetConfigError
from costspan.budget.config import load_budgets
from costspan.pricing import RateCard, RateCardError, units_to_decimal
from costspan.pricing.config_files import MAX_FILE_BYTES

# The longest message a user should have to read; a value is quoted as a short excerpt only.
MAX_MESSAGE = 300
SECONDS = 2.0


def laughs(indent: str) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded; about 350 bytes."""
    lines = [f'{indent}- &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        ref = f"*a{level - 1}"
        lines.append(f"{indent}- &a{level} [{','.join([ref] * 9)}]")
    return "\n".join(lines) + "\n"


def timed(load: Callable[[], object], error: type[Exception]) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        load()
    return str(caught.value), time.perf_counter() - started


def override_error(path: Path) -> tuple[str, float]:
    return timed(lambda: RateCard.default().with_overrides(path), RateCardError)


def budget_error(path: Path) -> tuple[str, float]:
    return timed(lambda: load_budgets(path), BudgetConfigError)


# --- alias expansion ("billion laughs") ------------------------------------------------------------


def test_billion_laughs_in_a_price_field_is_refused_fast_and_short(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n  - model: acme-llm\n    output_per_mtok: 1\n    input_per_mtok:\n" + laughs("      ")
    )
    assert len(path.read_bytes()) < 600
    message, seconds = override_error(path)
    assert seconds < SECONDS
    assert len(message) < MAX_MESSAGE
    assert message.startswith(f"{path}: ")
    assert "alias" in message and "billion laughs" in message


def test_billion_laughs_in_a_budget_file_is_refused_fast_and_short(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("tasks:\n  summarize:\n    usd:\n" + laughs("      "))
    message, seconds = budget_error(path)
    assert seconds < SECONDS
    assert len(message) < MAX_MESSAGE
    assert message.startswith(f"{path}: ") and "alias" in message


def test_a_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models: &m [*m]\n")
    message, _ = override_error(path)
    assert "refers to a value that contains it" in message


def test_anchors_and_merge_keys_that_do_not_blow_up_still_load(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  - &base {model: acme-small, input_per_mtok: 1, output_per_mtok: 2}\n"
        "  - <<: *base\n"
        "    model: acme-large\n"
        "    output_per_mtok: 4\n"
    )
    card = RateCard.from_file(path)
    got = card.price("acme", "acme-large", input_tokens=1_000_000, output_tokens=1_000_000, start_time_ns=0)
    assert got is not None and units_to_decimal(got.total) == Decimal(5)


# --- a value too long to quote -------------------------------------------------------------------


def test_a_megabyte_value_is_quoted_as_a_short_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        f"models:\n  - model: m\n    input_per_mtok: '{'9' * 1_000_000}x'\n    output_per_mtok: 1\n"
    )
    message, seconds = override_error(path)
    assert seconds < SECONDS
    assert len(message) < MAX_MESSAGE
    assert "models[0].input_per_mtok: must be a number (got '99999" in message


def test_a_long_unknown_field_name_is_cut_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(f"[tasks.t]\nusd = 1\n{'k' * 100_000} = 1\n")
    message, _ = budget_error(path)
    assert len(message) < MAX_MESSAGE and "unknown field 'kkk" in message


# --- size ------------------------------------------------------------------------------------------

ENTRY = "  - model: acme-model-{i}\n    provider: acme\n    input_per_mtok: 1.5\n    output_per_mtok: 2.25\n"


def test_a_50_mb_override_is_refused_by_its_size_at_once(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    entry = ENTRY.format(i="x")
    with path.open("w") as file:
        file.write("models:\n")
        for i in range(729_721):
            file.write(ENTRY.format(i=i))
    assert path.stat().st_size > 50_000_000 > MAX_FILE_BYTES
    assert entry
    message, seconds = override_error(path)
    assert seconds < SECONDS
    assert len(message) < MAX_MESSAGE
    assert message.startswith(f"{path}: ") and f"larger than {MAX_FILE_BYTES:,} bytes" in message


def test_an_oversized_budget_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text("[tasks]\n" + "".join(f"t{i} = 1\n" for i in range(MAX_FILE_BYTES // 8)))
    message, seconds = budget_error(path)
    assert seconds < SECONDS and "larger than" in message


def test_a_large_valid_override_loads_quickly_and_prices_its_last_entry(tmp_path: Path) -> None:
    """Loading is linear: 10,000 entries in well under two seconds of CPU (it took 5 s and more)."""
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n" + "".join(ENTRY.format(i=i) for i in range(10_000)))
    started = time.process_time()
    card = RateCard.default().with_overrides(path)
    assert time.process_time() - started < SECONDS
    got = card.price(
        "acme", "acme-model-9999", input_tokens=2_000_000, output_tokens=1_000_000, start_time_ns=0
    )
    assert got is not None and units_to_decimal(got.total) == Decimal("5.25")
    # A model outside the table is looked up by name, not matched against 10,000 entries one by one.
    started = time.process_time()
    for n in range(200):
        assert not card.is_known("acme", f"unknown-{n}")
    assert time.process_time() - started < 0.5


# --- duplicate keys --------------------------------------------------------------------------------


def test_a_duplicate_field_in_a_yaml_override_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n  - model: m\n    input_per_mtok: 1\n    output_per_mtok: 2\n    input_per_mtok: 0.01\n"
    )
    message, _ = override_error(path)
    assert message == (
        f"{path}: <file>: line 5: key 'input_per_mtok' appears twice in one mapping "
        "(YAML would keep the last silently)"
    )


def test_a_duplicate_tool_in_a_yaml_override_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("tools:\n  clearbit.enrich: 0.10\n  clearbit.enrich: 0.01\n")
    message, _ = override_error(path)
    assert "line 3: key 'clearbit.enrich' appears twice" in message


def test_a_duplicate_customer_in_a_yaml_budget_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("customers:\n  cus_1: 50\n  cus_2: 10\n  cus_1: 500\n")
    message, _ = budget_error(path)
    assert message == (
        f"{path}: line 4: key 'cus_1' appears twice in one mapping (YAML would keep the last silently)"
    )
