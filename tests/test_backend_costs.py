"""COSTSPAN_COST_ATTRIBUTES: a priced call also carries the cost in the names other backends read
(MLflow's `mlflow.llm.cost`, OpenInference's `llm.cost.*`, the proposed `gen_ai.usage.cost.*`), and
nothing extra when it names no backend. And `costspan push-prices`' input side: the Phoenix model
it would write for an override entry, and its errors. (The real Phoenix and MLflow servers are in
tests_backends/.)"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

import costspan
from costspan.exporters.phoenix_prices import name_pattern, phoenix_model
from costspan.pricing.overrides import load_overrides
from costspan.rollup import backend_costs
from costspan.rollup.call_pricing import apply_cost_attributes
from costspan.setup.settings import read_settings
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from llm import llm_call
from zero_code import uninstrument_all

MTOK = Decimal(1_000_000)
# gpt-4o list prices: 2.50 input, 1.25 cached input, 10 output per million tokens.
USAGE = OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=200)
INPUT_USD = 1000 * Decimal("2.5") / MTOK  # 0.0025
CACHE_READ_USD = 200 * Decimal("1.25") / MTOK  # 0.00025
OUTPUT_USD = 400 * Decimal(10) / MTOK  # 0.004
TOTAL_USD = INPUT_USD + CACHE_READ_USD + OUTPUT_USD  # 0.00675
BACKEND_KEYS = {
    "mlflow.llm.cost",
    "llm.cost.total",
    "llm.cost.prompt",
    "llm.cost.prompt_details.input",
    "llm.cost.prompt_details.cache_read",
    "llm.cost.completion",
    "gen_ai.usage.cost.amount",
    "gen_ai.usage.cost.currency",
    "gen_ai.usage.cost.source",
}


def approx(value: Decimal) -> Any:
    return pytest.approx(float(value), rel=1e-12)


@pytest.fixture(autouse=True)
def no_backend_attributes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("COSTSPAN_COST_ATTRIBUTES", raising=False)
    apply_cost_attributes(())
    yield
    apply_cost_attributes(())
    uninstrument_all()


def chat_span(observed: Any) -> dict[str, Any]:
    """One real openai SDK call to the fake server through costspan's instrumentor."""
    from costspan.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        with FakeProviderServer() as server:
            add_openai_routes(server, usage=USAGE)
            client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    (span,) = observed.llm_spans()
    return dict(span.attributes)


def test_no_backend_named_writes_nothing_extra(observed: Any) -> None:
    attributes = chat_span(observed)
    assert attributes["gen_ai.usage.cost"] == approx(TOTAL_USD)
    assert BACKEND_KEYS.isdisjoint(attributes)
    assert not any(key.startswith(("mlflow.", "llm.cost")) for key in attributes)


def test_each_backend_reads_the_same_cost_from_an_instrumented_call(observed: Any) -> None:
    apply_cost_attributes(("parts", "mlflow", "openinference", "semconv"))
    attributes = chat_span(observed)
    assert attributes["gen_ai.usage.cost"] == approx(TOTAL_USD)
    assert attributes["costspan.cost.input_usd"] == approx(INPUT_USD)  # `parts` goes along with them
    assert json.loads(attributes["mlflow.llm.cost"]) == {
        "input_cost": approx(INPUT_USD + CACHE_READ_USD),
        "output_cost": approx(OUTPUT_USD),
        "total_cost": approx(TOTAL_USD),
    }
    assert attributes["llm.cost.total"] == approx(TOTAL_USD)
    assert attributes["llm.cost.prompt"] == approx(INPUT_USD + CACHE_READ_USD)
    assert attributes["llm.cost.prompt_details.input"] == approx(INPUT_USD)
    assert attributes["llm.cost.prompt_details.cache_read"] == approx(CACHE_READ_USD)
    assert attributes["llm.cost.completion"] == approx(OUTPUT_USD)
    assert attributes["gen_ai.usage.cost.amount"] == approx(TOTAL_USD)
    assert attributes["gen_ai.usage.cost.currency"] == "USD"
    assert attributes["gen_ai.usage.cost.source"] == "local"


def test_spans_the_processor_prices_carry_them_too(traced: Any) -> None:
    """Another library's LLM span, and a tool and an LLM span already priced by someone else."""
    apply_cost_attributes(("mlflow",))
    with traced.tracer.start_as_current_span("task"):
        llm_call(traced.tracer, "gpt-4o", 1000, 100, name="llm")
        tool_attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "clearbit.enrich"}
        traced.tracer.start_span("tool", attributes={**tool_attributes, "gen_ai.usage.cost": 0.1}).end()
        chat_attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-llm-1"}
        traced.tracer.start_span("priced", attributes={**chat_attributes, "gen_ai.usage.cost": 0.25}).end()
    spans = traced.spans()
    llm_usd = (1000 * Decimal("2.5") + 100 * Decimal(10)) / MTOK  # 0.0035
    assert json.loads(spans["llm"].attributes["mlflow.llm.cost"]) == {
        "input_cost": approx(1000 * Decimal("2.5") / MTOK),
        "output_cost": approx(100 * Decimal(10) / MTOK),
        "total_cost": approx(llm_usd),
    }
    assert json.loads(spans["tool"].attributes["mlflow.llm.cost"])["total_cost"] == 0.1
    assert json.loads(spans["priced"].attributes["mlflow.llm.cost"])["total_cost"] == 0.25
    # The task's rollup is costspan's own: no backend attribute on it (MLflow would count it twice).
    assert "mlflow.llm.cost" not in spans["task"].attributes
    assert spans["task"].attributes["costspan.rollup.cost_usd"] == approx(llm_usd + Decimal("0.35"))


def test_setting_parsed_and_bad_values_reported() -> None:
    assert read_settings({"COSTSPAN_COST_ATTRIBUTES": " MLflow, semconv,mlflow"}).cost_attributes == (
        "mlflow",
        "semconv",
    )
    assert read_settings({"COSTSPAN_COST_ATTRIBUTES": "none"}).cost_attributes == ()
    assert read_settings({}).cost_attributes is None
    bad = read_settings({"COSTSPAN_COST_ATTRIBUTES": "mlflow,langfuse"})
    assert bad.cost_attributes is None
    assert bad.problems == (
        "COSTSPAN_COST_ATTRIBUTES='mlflow,langfuse': 'langfuse' is not a cost attribute set (choose "
        "from parts, mlflow, openinference, semconv); none are written",
    )


def test_configure_applies_the_setting_and_its_argument(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    monkeypatch.setenv("COSTSPAN_COST_ATTRIBUTES", "openinference")
    costspan.configure(tracer_provider=provider, instrument=False)
    assert backend_costs.active_cost_attributes() == ("openinference",)
    costspan.configure(tracer_provider=provider, instrument=False, cost_attributes=["mlflow", "semconv"])
    assert backend_costs.active_cost_attributes() == ("mlflow", "semconv")
    costspan.configure(tracer_provider=provider, instrument=False, cost_attributes="parts,mlflow,semconv")
    assert backend_costs.active_cost_attributes() == ("mlflow", "semconv")
    with pytest.raises(ValueError, match="'phoenix' is not a cost attribute set"):
        costspan.configure(tracer_provider=provider, instrument=False, cost_attributes="phoenix")
    monkeypatch.setenv("COSTSPAN_COST_ATTRIBUTES", "bogus")
    with caplog.at_level(logging.ERROR, logger="costspan"):
        costspan.configure(tracer_provider=provider, instrument=False)
    assert "COSTSPAN_COST_ATTRIBUTES='bogus'" in caplog.text
    assert backend_costs.active_cost_attributes() == ("mlflow", "semconv")  # a bad value changes nothing


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("gpt-4o", ["gpt-4o", "GPT-4o", "gpt-4o-2024-08-06", "openai/gpt-4o"], ["gpt-4o-mini", "xgpt-4o"]),
        ("acme-llm-*", ["acme-llm-1", "acme/acme-llm-2-latest"], ["acme-llm", "my-acme-llm-1"]),
        ("gemini-2.5-flash", ["gemini-2.5-flash-001", "models/gemini-2.5-flash"], ["gemini-2.5-flash-lite"]),
    ],
)
def test_phoenix_name_pattern_matches_the_names_costspan_prices(
    glob: str, matches: list[str], misses: list[str]
) -> None:
    import re

    pattern = re.compile(name_pattern(glob))  # Phoenix compiles it and calls .search(model name)
    assert [name for name in matches if pattern.search(name)] == matches
    assert [name for name in misses if pattern.search(name)] == []


def test_phoenix_model_of_an_override_entry(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  - model: claude-*\n    provider: anthropic\n    input_per_mtok: 3\n"
        "    output_per_mtok: 15\n    cache_read_per_mtok: 0.3\n    cache_write_per_mtok: 3.75\n"
        "    effective_from: 2026-03-01\n"
    )
    (entry,) = load_overrides(prices).entries
    model = phoenix_model(entry)
    assert model.name == "costspan claude-* [anthropic] from 2026-03-01"
    assert model.provider == "anthropic"
    assert model.prompt_prices == (("input", 3.0), ("cache_read", 0.3), ("cache_write", 3.75))
    assert model.completion_prices == (("output", 15.0),)
    assert model.start_time is not None and model.start_time.isoformat() == "2026-03-01T00:00:00+00:00"


def run_push_prices(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "costspan", "push-prices", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_push_prices_errors_are_short_and_name_the_problem(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "COSTSPAN_PRICES"}
    done = run_push_prices("--phoenix", "http://127.0.0.1:9", env=env)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "costspan push-prices: no price file: pass --prices FILE or set COSTSPAN_PRICES"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - model: gpt-4o\n    input_per_mtok: -1\n    output_per_mtok: 2\n")
    done = run_push_prices("--phoenix", "http://127.0.0.1:9", "--prices", str(bad), env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"costspan push-prices: {bad}: models[0].input_per_mtok: must not be negative (got -1)"
    )
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - model: gpt-4o\n    input_per_mtok: 1\n    output_per_mtok: 2\n")
    with FakeProviderServer() as nothing_there:  # answers 404 to /graphql
        url = nothing_there.base_url
    done = run_push_prices("--phoenix", url, "--prices", str(good), env=env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"costspan push-prices: {url}/graphql: ")


def test_zero_code_reads_the_setting(tmp_path: Path) -> None:
    """Under `opentelemetry-instrument` the pre-instrument hook applies COSTSPAN_COST_ATTRIBUTES."""
    from e2e.otlp_sink import OtlpHttpSink
    from test_auto import app_source, llm_spans, otlp_env, run_instrumented, write_app

    app = write_app(tmp_path, app_source())
    with FakeProviderServer() as server, OtlpHttpSink() as sink:
        add_openai_routes(server, usage=OpenAIUsage(prompt_tokens=1000, completion_tokens=200))
        result = run_instrumented(app, otlp_env(sink, server, COSTSPAN_COST_ATTRIBUTES="mlflow,semconv"))
        assert result.returncode == 0, result.stderr
        calls = llm_spans(sink)
    assert len(calls) == 2
    for call in calls:
        cost = call.attributes["gen_ai.usage.cost"]
        assert json.loads(call.attributes["mlflow.llm.cost"])["total_cost"] == cost
        assert call.attributes["gen_ai.usage.cost.amount"] == cost
        assert "llm.cost.total" not in call.attributes
