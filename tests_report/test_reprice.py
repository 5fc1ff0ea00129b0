"""--reprice: costs recomputed from recorded tokens, with the bundled card or an override file."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from conftest import Scenario, costspan_report, report_json


def test_reprice_with_bundled_card_reproduces_the_recorded_costs(scenario: Scenario) -> None:
    recorded = report_json(str(scenario.path), "--by", "model")
    repriced = report_json(str(scenario.path), "--by", "model", "--reprice")
    assert {k: v["cost_usd"] for k, v in repriced.items()} == {k: v["cost_usd"] for k, v in recorded.items()}
    done = costspan_report(str(scenario.path), "--reprice")
    notes = done.stdout.splitlines()[-2:]
    assert notes == [
        "re-priced 5 LLM calls with the bundled card; tool calls keep their recorded price",
        "could not re-price 1 LLM calls: 1 unknown model mystery-model-1",
    ]


def test_reprice_with_overrides_what_if(scenario: Scenario, tmp_path: Path) -> None:
    prices = tmp_path / "negotiated.yaml"
    prices.write_text(
        "models:\n"
        "  - model: gpt-4o\n    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n"
        "  - model: mystery-model-1\n    input_per_mtok: 10\n    output_per_mtok: 20\n"
    )
    models = report_json(str(scenario.path), "--by", "model", "--reprice", str(prices))
    # gpt-4o: 2 calls x (1,200 x $1 + 300 x $2) / 1M = $0.0036; the unknown model now priced:
    # 1,200 x $10 + 300 x $20 per million = $0.018, and no longer unpriced
    assert models["gpt-4o-2024-08-06"]["cost_usd"] == D("0.0036")
    mystery = models["mystery-model-1"]
    assert (mystery["cost_usd"], mystery["unpriced_calls"]) == (D("0.018"), 0)
    assert models["gpt-4o-mini-2024-07-18"]["cost_usd"] == D("0.00072")  # bundled price underneath
    tasks = report_json(str(scenario.path), "--reprice", str(prices))
    assert tasks["research"]["cost_usd"] == D("0.1053")  # 0.0018 + 0.0035 + tool 0.10


def test_bad_override_file_is_named(scenario: Scenario, tmp_path: Path) -> None:
    prices = tmp_path / "bad.yaml"
    prices.write_text("models:\n  - model: gpt-4o\n    input_per_mtok: -1\n    output_per_mtok: 2\n")
    done = costspan_report(str(scenario.path), "--reprice", str(prices), check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("costspan report: --reprice: ") and "bad.yaml" in done.stderr
