"""`costspan.configure()`: manual setups, in this process with explicit providers, and in a child
process for the global providers (which a process can set only once)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import costspan
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from e2e.otlp_sink import OtlpHttpSink
from zero_code import clean_env, uninstrument_all, write_app

pytest.importorskip("openai")

from openai import OpenAI

MTOK = Decimal(1_000_000)
INPUT_TOKENS, OUTPUT_TOKENS = 1000, 200
CALL_COST = (INPUT_TOKENS * Decimal("2.50") + OUTPUT_TOKENS * Decimal("10")) / MTOK  # gpt-4o: $0.0045
OVERRIDE = 'models:\n  - model: "gpt-4o"\n    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n'
OVERRIDE_COST = (INPUT_TOKENS * Decimal(1) + OUTPUT_TOKENS * Decimal(2)) / MTOK  # $0.0014


@pytest.fixture(autouse=True)
def restore_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure() instruments SDKs and guards the global propagator: undo both after each test."""
    for name in (
        "COSTSPAN_DISABLED",
        "COSTSPAN_PRICES",
        "COSTSPAN_CONSOLE",
        "COSTSPAN_COST_DIMENSIONS",
        "COSTSPAN_BUDGETS",
        "COSTSPAN_BUDGET_LEDGER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    textmap = propagate.get_global_textmap()
    uninstrument_all()
    yield
    uninstrument_all()
    propagate.set_global_textmap(textmap)
    costspan.configure_budgets(None)


class Providers:
    def __init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def configure(self, **kwargs: Any) -> costspan.CostspanSetup:
        return costspan.configure(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def cost_processors(self) -> list[costspan.CostSpanProcessor]:
        processors = self.tracer_provider._active_span_processor._span_processors
        return [p for p in processors if isinstance(p, costspan.CostSpanProcessor)]

    def llm_spans(self) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]

    def cost_points(self) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "costspan.cost"
            for point in metric.data.data_points
        ]


@pytest.fixture
def providers() -> Iterator[Providers]:
    p = Providers()
    yield p
    p.tracer_provider.shutdown()
    p.meter_provider.shutdown()


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(prompt_tokens=INPUT_TOKENS, completion_tokens=OUTPUT_TOKENS))
        yield s


def call_gpt4o(server: FakeProviderServer) -> None:
    with OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_configure_prices_attributes_and_meters_real_sdk_calls(
    providers: Providers, server: FakeProviderServer
) -> None:
    setup = providers.configure()
    assert setup.tracer_provider is providers.tracer_provider
    assert setup.processor is not None and providers.cost_processors() == [setup.processor]
    assert {"costspan_openai", "costspan_google_genai", "threading"} <= set(setup.instrumented)
    with costspan.task("answer", customer_id="cus_cfg", tracer_provider=providers.tracer_provider):
        call_gpt4o(server)
    (span,) = providers.llm_spans()
    assert span.attributes["gen_ai.usage.cost"] == float(CALL_COST)
    assert span.attributes["costspan.customer_id"] == "cus_cfg"
    task = next(s for s in providers.exporter.get_finished_spans() if s.name == "answer")
    assert task.attributes["costspan.rollup.cost_usd"] == float(CALL_COST)
    (point,) = providers.cost_points()
    assert point.value == float(CALL_COST)
    assert point.attributes["costspan.customer_id"] == "cus_cfg"


def test_configure_twice_adds_nothing_twice(
    providers: Providers, server: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = providers.configure(console_tree=True)
    with caplog.at_level(logging.WARNING):
        second = providers.configure(console_tree=True)
    assert second == first
    assert len(providers.cost_processors()) == 1
    assert "already instrumented" not in caplog.text
    call_gpt4o(server)
    assert len(providers.llm_spans()) == 1


def test_keeps_a_cost_processor_the_application_added(providers: Providers) -> None:
    own = costspan.CostSpanProcessor()
    providers.tracer_provider.add_span_processor(own)
    assert providers.configure(instrument=False).processor is own
    assert providers.cost_processors() == [own]


def test_rate_card_path_is_layered_over_bundled_prices(
    providers: Providers, server: FakeProviderServer, tmp_path: Path
) -> None:
    (tmp_path / "prices.yaml").write_text(OVERRIDE)
    providers.configure(rate_card=tmp_path / "prices.yaml")
    call_gpt4o(server)
    (span,) = providers.llm_spans()
    assert span.attributes["gen_ai.usage.cost"] == float(OVERRIDE_COST)
    assert span.attributes["costspan.price.source"] == "override:prices.yaml"


def test_prices_from_env(
    providers: Providers, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "prices.yaml").write_text(OVERRIDE)
    monkeypatch.setenv("COSTSPAN_PRICES", str(tmp_path / "prices.yaml"))
    providers.configure()
    call_gpt4o(server)
    assert providers.llm_spans()[0].attributes["gen_ai.usage.cost"] == float(OVERRIDE_COST)


def test_a_second_rate_card_is_not_silently_dropped(
    providers: Providers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "prices.yaml").write_text(OVERRIDE)
    first = providers.configure(instrument=False)
    with caplog.at_level(logging.WARNING, logger="costspan"):
        second = providers.configure(rate_card=tmp_path / "prices.yaml", instrument=False)
    assert second.processor is first.processor
    assert "a CostSpanProcessor is already on this TracerProvider" in caplog.text
    assert "the rate card given now is not used" in caplog.text


def test_bad_explicit_arguments_raise(providers: Providers, tmp_path: Path) -> None:
    with pytest.raises(costspan.RateCardError, match=r"nope\.yaml"):
        providers.configure(rate_card=tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="'task_id' cannot be a metric dimension"):
        providers.configure(cost_dimensions=["task_id"])
    assert providers.cost_processors() == []


def test_console_tree(
    providers: Providers, server: FakeProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    providers.configure(console_tree=True)
    providers.configure(console_tree=True)
    with costspan.task("answer", customer_id="cus_cfg", tracer_provider=providers.tracer_provider):
        call_gpt4o(server)
    out = capsys.readouterr().out
    assert out.count("answer  $0.0045 total  1 call") == 1
    assert "└─ chat gpt-4o  $0.0045  1,000 in / 200 out" in out


def test_cost_dimensions(providers: Providers, server: FakeProviderServer) -> None:
    providers.configure(cost_dimensions=["feature"])
    with costspan.task(
        "answer", customer_id="cus_cfg", feature="search", tracer_provider=providers.tracer_provider
    ):
        call_gpt4o(server)
    (point,) = providers.cost_points()
    assert point.attributes["costspan.feature"] == "search"
    assert "costspan.customer_id" not in point.attributes


def test_other_cost_dimensions_later_are_not_silently_dropped(
    providers: Providers, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="costspan"):
        providers.configure(cost_dimensions=["feature"])
        providers.configure(cost_dimensions="feature")  # the same, as one string
        assert caplog.text == ""
        providers.configure(cost_dimensions=["customer_id"])
    assert "costspan_openai was already instrumented" in caplog.text
    assert "cost_dimensions= is not applied to it; set COSTSPAN_COST_DIMENSIONS" in caplog.text


def test_costspan_disabled(
    providers: Providers, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTSPAN_DISABLED", "true")
    setup = providers.configure()
    assert setup.disabled and setup.processor is None and setup.instrumented == ()
    assert providers.cost_processors() == []
    call_gpt4o(server)
    assert providers.llm_spans() == []


def test_disabled_instrumentations(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "costspan_openai, threading")
    instrumented = set(providers.configure().instrumented)
    assert "costspan_openai" not in instrumented and "threading" not in instrumented
    assert "costspan_google_genai" in instrumented
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    uninstrument_all()
    assert Providers().configure().instrumented == ()


GLOBAL_APP = """
import os

from openai import OpenAI
from opentelemetry import metrics, trace

import costspan

{before}
setup = costspan.configure()
print("global:", setup.tracer_provider is trace.get_tracer_provider(),
      setup.meter_provider is metrics.get_meter_provider())
client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)
with costspan.task("answer", customer_id="cus_global"):
    client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
"""


def run_python(app: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("exporter_env", ["otlp", "unset"])
def test_configure_builds_global_providers_from_otel_settings(
    exporter_env: str, server: FakeProviderServer, tmp_path: Path
) -> None:
    """Unset OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER mean otlp (the specification's default)."""
    with OtlpHttpSink() as sink:
        env = clean_env(
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_SERVICE_NAME="configured-app",
            FAKE_OPENAI_URL=server.base_url,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_anthropic,costspan_google_genai",
        )
        if exporter_env == "otlp":
            env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp")
        else:
            del env["OTEL_TRACES_EXPORTER"], env["OTEL_METRICS_EXPORTER"]
        result = run_python(write_app(tmp_path, GLOBAL_APP.format(before="")), env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "global: True True\n"
        (llm,) = [s for s in sink.spans() if s.kind == "CLIENT"]
        assert llm.attributes["gen_ai.usage.cost"] == float(CALL_COST)
        assert llm.attributes["costspan.customer_id"] == "cus_global"
        assert llm.resource["service.name"] == "configured-app"
        (task,) = [s for s in sink.spans() if s.name == "answer"]
        assert task.attributes["costspan.rollup.cost_usd"] == float(CALL_COST)
        assert [p.value for p in sink.points() if p.metric == "costspan.cost"] == [float(CALL_COST)]


def test_configure_extends_the_provider_the_application_set(
    server: FakeProviderServer, tmp_path: Path
) -> None:
    before = """
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

own = TracerProvider()
def line(span):
    cost, rollup = span.attributes.get("gen_ai.usage.cost"), span.attributes.get("costspan.rollup.cost_usd")
    return f"exported {span.name} cost={cost} rollup={rollup}\\n"

own.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=line)))
trace.set_tracer_provider(own)
"""
    env = clean_env(
        FAKE_OPENAI_URL=server.base_url,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_anthropic,costspan_google_genai",
    )
    result = run_python(write_app(tmp_path, GLOBAL_APP.format(before=before)), env)
    assert result.returncode == 0, result.stderr
    assert "Overriding" not in result.stderr
    cost = float(CALL_COST)
    assert result.stdout == (
        "global: True True\n"
        f"exported chat gpt-4o cost={cost} rollup=None\n"  # a call with nothing under it: no rollup
        f"exported answer cost=None rollup={cost}\n"
    )


def test_budgets_from_env_stop_a_task_before_the_request_leaves(
    providers: Providers, server: FakeProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(f"[tasks]\nanswer = {float(CALL_COST * 2)}\n")  # two gpt-4o calls
    monkeypatch.setenv("COSTSPAN_BUDGETS", str(path))
    providers.configure()
    with (
        costspan.task("answer", customer_id="cus_cfg", tracer_provider=providers.tracer_provider),
        pytest.raises(costspan.BudgetExceeded) as refused,
    ):
        for _ in range(3):
            call_gpt4o(server)
    assert len(server.requests) == 2
    assert refused.value.limit_usd == CALL_COST * 2
    assert refused.value.spent_usd == CALL_COST * 2
