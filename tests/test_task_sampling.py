"""Task-run figures come from the context ledger, not from spans: exact under a 1% ratio sampler."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

import costspan
from budget_support import GPT4O_CALL, MESSAGES, USAGE
from costspan import attributes as attrs
from costspan.budget.task_ledger import TASK_LEDGER
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.telemetry.metrics import record_tools_on
from costspan.telemetry.task_metrics import record_task_runs_on
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

RUNS = 10_000
# Dyadic prices: every partial float sum is exact, so "equal" means equal.
PRICES = (0.015625, 0.03125, 0.25, 1.5)


class Sampled:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()  # its sampler from OTEL_TRACES_SAMPLER(_ARG)
        self.tracer_provider.add_span_processor(costspan.CostSpanProcessor())
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def sampled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sampled]:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
    s = Sampled()
    assert isinstance(s.tracer_provider.sampler, TraceIdRatioBased)
    assert s.tracer_provider.sampler.rate == 0.01
    record_task_runs_on(s.meter_provider)
    record_tools_on(s.meter_provider)
    TASK_LEDGER.clear()
    yield s
    s.tracer_provider.shutdown()
    s.meter_provider.shutdown()
    TASK_LEDGER.clear()


def test_ten_thousand_runs_sum_and_count_exactly_under_one_percent_sampling(sampled: Sampled) -> None:
    expected: dict[str, float] = {"success": 0.0, "error": 0.0}
    counts = {"success": 0, "error": 0}
    for number in range(RUNS):
        price = PRICES[number % len(PRICES)]
        outcome = "error" if number % 7 == 0 else "success"
        with costspan.task("bulk", customer_id=f"cus_{number % 3}", tracer_provider=sampled.tracer_provider):
            with costspan.tool("enrich", cost_usd=price, tracer_provider=sampled.tracer_provider):
                pass
            if outcome == "error":
                costspan.task_failed("rejected")
        expected[outcome] += price
        counts[outcome] += 1

    task_spans = [s for s in sampled.exporter.get_finished_spans() if s.name == "bulk"]
    assert 0 < len(task_spans) < RUNS // 20, "the sampler kept about 1% of the runs"

    points = sampled.points("costspan.task.cost")
    for outcome in ("success", "error"):
        mine = [p for p in points if p.attributes[attrs.TASK_OUTCOME] == outcome]
        assert sum(p.count for p in mine) == counts[outcome]
        assert sum(p.sum for p in mine) == expected[outcome]
    assert sum(p.count for p in points) == RUNS
    total = sum(p.sum for p in points)
    assert Decimal(repr(total)) == sum((Decimal(repr(PRICES[n % 4])) for n in range(RUNS)), Decimal(0))
    # The summary ledger agrees to the dollar.
    stats = TASK_LEDGER.snapshot()["bulk"]
    assert stats.runs == RUNS and stats.successes == counts["success"]
    assert Decimal(stats.units) / Decimal(10**24) == Decimal(repr(total))


def test_llm_calls_through_the_openai_sdk_are_counted_whether_sampled_or_not(
    sampled: Sampled, no_configured_budgets: None
) -> None:
    runs = 300
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=sampled.tracer_provider, meter_provider=sampled.meter_provider)
    try:
        with FakeProviderServer() as server:
            add_openai_routes(server, usage=OpenAIUsage(**vars(USAGE)))
            client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
            for _ in range(runs):
                with costspan.task("chat", tracer_provider=sampled.tracer_provider):
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            client.close()
    finally:
        inst.uninstrument()
    sampled_calls = [s for s in sampled.exporter.get_finished_spans() if s.name.startswith("chat gpt-4o")]
    assert len(sampled_calls) < runs // 10
    (point,) = sampled.points("costspan.task.cost")
    assert point.count == runs
    assert point.sum == pytest.approx(float(runs * GPT4O_CALL), rel=1e-12, abs=0)
    assert Decimal(TASK_LEDGER.snapshot()["chat"].units) / Decimal(10**24) == runs * GPT4O_CALL
