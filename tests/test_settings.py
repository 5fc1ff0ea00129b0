"""COSTSPAN_* environment variables: parsing, validation, and one message per bad value."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.pricing import UNITS_PER_USD
from costspan.setup.settings import Settings, parse_cost_dimensions, read_settings, report

OVERRIDE = 'models:\n  - model: "gpt-4o"\n    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n'


def test_nothing_set_means_defaults() -> None:
    settings = read_settings({"PATH": "/bin", "OTEL_TRACES_EXPORTER": "otlp"})
    assert settings == Settings()
    assert settings.problems == ()


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("YES", True), (" on ", True)])
def test_true_values(raw: str, value: bool) -> None:
    settings = read_settings({"COSTSPAN_DISABLED": raw, "COSTSPAN_CONSOLE": raw})
    assert (settings.disabled, settings.console_tree, settings.problems) == (value, value, ())


@pytest.mark.parametrize("raw", ["false", "0", "No", "off", ""])
def test_false_values(raw: str) -> None:
    settings = read_settings({"COSTSPAN_DISABLED": raw, "COSTSPAN_CONSOLE": raw})
    assert (settings.disabled, settings.console_tree, settings.problems) == (False, False, ())


def test_a_bad_boolean_names_variable_and_value_and_keeps_the_default() -> None:
    settings = read_settings({"COSTSPAN_DISABLED": "maybe", "COSTSPAN_CONSOLE": "2"})
    assert settings.disabled is False
    assert settings.console_tree is None
    assert settings.problems == (
        "COSTSPAN_DISABLED='maybe' is not a boolean (use true or false); costspan stays enabled",
        "COSTSPAN_CONSOLE='2' is not a boolean (use true or false); the console cost tree stays off",
    )


def test_prices_file_is_layered_over_the_bundled_card(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDE)
    settings = read_settings({"COSTSPAN_PRICES": str(path)})
    assert settings.problems == ()
    assert settings.rate_card is not None
    priced = settings.rate_card.price(
        "openai", "gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000, start_time_ns=0
    )
    assert priced is not None
    assert (Decimal(priced.total) / UNITS_PER_USD, priced.source) == (Decimal(3), "override:prices.yaml")
    # Models the file does not name keep the bundled prices.
    mini = settings.rate_card.price(
        "openai", "gpt-4o-mini", input_tokens=1_000_000, output_tokens=0, start_time_ns=0
    )
    assert mini is not None and Decimal(mini.total) / UNITS_PER_USD == Decimal("0.15")


def test_missing_prices_file_names_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    settings = read_settings({"COSTSPAN_PRICES": str(missing)})
    assert settings.rate_card is None
    assert settings.prices_path is None
    (problem,) = settings.problems
    assert problem.startswith(
        f"COSTSPAN_PRICES={str(missing)!r} is not used: {missing}: <file>: cannot read file"
    )
    assert problem.endswith("calls are priced from the bundled card only")


def test_bad_prices_entry_names_file_entry_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDE.replace("output_per_mtok: 2.0", "output_per_mtok: lots"))
    (problem,) = read_settings({"COSTSPAN_PRICES": str(path)}).problems
    assert f"{path}: models[0].output_per_mtok" in problem
    assert "'lots'" in problem


def test_disabled_does_not_read_the_prices_file(tmp_path: Path) -> None:
    settings = read_settings({"COSTSPAN_DISABLED": "true", "COSTSPAN_PRICES": str(tmp_path / "nope.yaml")})
    assert settings.disabled is True
    assert settings.problems == ()


@pytest.mark.parametrize(
    ("raw", "dimensions"),
    [
        ("customer_id,feature", ("costspan.customer_id", "costspan.feature")),
        (" costspan.agent , step ", ("costspan.agent", "costspan.step")),
        ("task,task", ("costspan.task",)),
        ("none", ()),
        ("", ()),
    ],
)
def test_cost_dimensions(raw: str, dimensions: tuple[str, ...]) -> None:
    assert parse_cost_dimensions(raw) == dimensions
    assert read_settings({"COSTSPAN_COST_DIMENSIONS": raw}).cost_dimensions == dimensions


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("customer_id,task_id", "'task_id' cannot be a metric dimension (one time series per task)"),
        ("costspan.task_id", "'costspan.task_id' cannot be a metric dimension"),
        (
            "tenant",
            "'tenant' is not an attribution key (choose from customer_id, task, feature, agent, step)",
        ),
    ],
)
def test_bad_cost_dimensions_keep_the_default(raw: str, message: str) -> None:
    settings = read_settings({"COSTSPAN_COST_DIMENSIONS": raw})
    assert settings.cost_dimensions is None
    (problem,) = settings.problems
    assert problem.startswith(f"COSTSPAN_COST_DIMENSIONS={raw!r}: {message}")
    assert problem.endswith("the default dimensions apply")


def test_unknown_costspan_variable_is_named() -> None:
    (problem,) = read_settings({"COSTSPAN_PRICE": "prices.yaml"}).problems
    assert problem.startswith(
        "COSTSPAN_PRICE is not a costspan setting (known: COSTSPAN_DISABLED, COSTSPAN_PRICES,"
    )


def test_trusted_baggage_peers() -> None:
    settings = read_settings({"COSTSPAN_TRUSTED_BAGGAGE_PEERS": "10.0.0.0/8, ::1"})
    assert settings.problems == ()
    assert settings.baggage_policy.trusts_peer("10.1.2.3")
    assert not settings.baggage_policy.trusts_peer("192.0.2.1")
    assert not Settings().baggage_policy.trusts_peer("10.1.2.3")  # default: no one


def test_bad_trusted_baggage_peers_trust_no_one() -> None:
    settings = read_settings({"COSTSPAN_TRUSTED_BAGGAGE_PEERS": "10.0.0.0/8,intranet"})
    (problem,) = settings.problems
    assert problem.startswith("COSTSPAN_TRUSTED_BAGGAGE_PEERS: 'intranet' is not an IP address or network")
    assert problem.endswith("inbound costspan.* baggage is trusted from no caller")
    assert not settings.baggage_policy.trusts_peer("10.1.2.3")


def test_report_logs_each_problem_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = read_settings({"COSTSPAN_CONSOLE": "sometimes-for-report"})
    with caplog.at_level(logging.ERROR, logger="costspan"):
        report(settings)
        report(read_settings({"COSTSPAN_CONSOLE": "sometimes-for-report"}))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "costspan: COSTSPAN_CONSOLE='sometimes-for-report' is not a boolean (use true or false); "
        "the console cost tree stays off"
    ]


def test_budgets_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("tasks:\n  summarize: 0.10\ncustomers:\n  '*': {usd: 50, window: day}\n")
    settings = read_settings({"COSTSPAN_BUDGETS": str(path)})
    assert settings.problems == ()
    assert settings.budgets is not None
    assert set(settings.budgets.tasks) == {"summarize"}
    assert set(settings.budgets.customers) == {"*"}


def test_bad_budgets_file_names_variable_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("tasks:\n  summarize: {usd: lots}\n")
    settings = read_settings({"COSTSPAN_BUDGETS": str(path)})
    assert settings.budgets is None
    (problem,) = settings.problems
    assert problem.startswith(f"COSTSPAN_BUDGETS={str(path)!r} is not used: {path}: tasks.summarize")
    assert "'lots'" in problem
    assert problem.endswith("no budgets are declared by configuration")


def test_bad_budget_ledger_is_named() -> None:
    settings = read_settings({"COSTSPAN_BUDGET_LEDGER": "postgres://db"})
    assert settings.budgets is None
    (problem,) = settings.problems
    assert problem.startswith("COSTSPAN_BUDGET_LEDGER='postgres://db' is not used:")
    assert "redis://" in problem
