"""`costspan.tool` spend on the `costspan.cost` counter, next to the LLM calls' cost: what a
dashboard of cost per customer built on metrics sums, whether or not the spans are sampled."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import costspan
from costspan import attributes as A
from costspan.instrumentation._call import FAULTS
from costspan.pricing import RateCard
from costspan.telemetry import metrics as costspan_metrics

TOOL_POINT = {A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_TOOL_NAME: "clearbit.enrich"}


def cost_points(reader: InMemoryMetricReader) -> dict[frozenset[tuple[str, Any]], float]:
    data = reader.get_metrics_data()
    out: dict[frozenset[tuple[str, Any]], float] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == costspan_metrics.COST:
                    assert metric.unit == "USD"
                    for point in metric.data.data_points:
                        out[frozenset(point.attributes.items())] = point.value
    return out


def point(**attributes: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(attributes.items())


@pytest.fixture
def tools_recorded(observed: Any) -> Iterator[Any]:
    costspan_metrics.record_tools_on(observed.meter_provider)
    yield observed


def test_priced_tool_adds_its_cost_with_tool_name_and_attribution(tools_recorded) -> None:
    observed = tools_recorded
    with (
        costspan.attribute(customer_id="cus_1", feature="enrich"),
        costspan.task("lead", tracer_provider=observed.tracer_provider),
    ):
        for _ in range(3):
            with costspan.tool("clearbit.enrich", cost_usd=0.10, tracer_provider=observed.tracer_provider):
                pass
    expected = {**TOOL_POINT, A.CUSTOMER_ID: "cus_1", A.FEATURE: "enrich", A.TASK: "lead"}
    assert cost_points(observed.reader) == {point(**expected): pytest.approx(0.30, abs=1e-15)}
    task = {s.name: s for s in observed.finished()}["lead"]
    assert task.attributes[A.ROLLUP_COST_USD] == pytest.approx(0.30, abs=1e-15)


def test_tool_priced_by_the_rate_card_or_on_its_span_and_free_tools(observed) -> None:
    card = RateCard.default().with_overrides({"tools": {"clearbit.enrich": "0.25"}})
    costspan.CostSpanProcessor(rate_card=card)  # makes it the shared card, as in an app
    costspan_metrics.record_tools_on(observed.meter_provider, cost_dimensions=[A.CUSTOMER_ID])
    with costspan.attribute(customer_id="cus_2", feature="not-a-dimension-here"):
        with costspan.tool("clearbit.enrich", tracer_provider=observed.tracer_provider):
            pass
        with costspan.tool("serp.search", tracer_provider=observed.tracer_provider) as span:
            span.set_attribute(A.GEN_AI_USAGE_COST, 0.004)  # known only after the call
        with costspan.tool("calculator", tracer_provider=observed.tracer_provider):
            pass  # no price anywhere: free, and no point
    assert cost_points(observed.reader) == {
        point(**TOOL_POINT, **{A.CUSTOMER_ID: "cus_2"}): 0.25,
        point(
            **{
                A.GEN_AI_OPERATION_NAME: "execute_tool",
                A.GEN_AI_TOOL_NAME: "serp.search",
                A.CUSTOMER_ID: "cus_2",
            }
        ): 0.004,
    }


def test_unsampled_tool_calls_still_count() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    costspan_metrics.record_tools_on(meter_provider)
    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    with (
        costspan.attribute(customer_id="cus_3"),
        costspan.tool("clearbit.enrich", cost_usd=0.10, tracer_provider=unsampled),
    ):
        pass
    assert cost_points(reader) == {point(**TOOL_POINT, **{A.CUSTOMER_ID: "cus_3"}): 0.10}
    meter_provider.shutdown()


def test_configure_points_tool_spend_at_its_meter_provider_and_dimensions(observed) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    costspan.configure(
        tracer_provider=TracerProvider(),
        meter_provider=meter_provider,
        cost_dimensions="customer_id",
        instrument=False,
    )
    with costspan.attribute(customer_id="cus_4", feature="f"), costspan.tool("clearbit.enrich", cost_usd=0.5):
        pass
    assert cost_points(reader) == {point(**TOOL_POINT, **{A.CUSTOMER_ID: "cus_4"}): 0.5}
    meter_provider.shutdown()


def test_a_failing_cost_counter_never_reaches_the_tool_and_budgets_still_charge(
    observed, no_configured_budgets
) -> None:
    class BrokenCounter:
        def add(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("exporter bug")

    costspan_metrics.record_tools_on(observed.meter_provider)
    costspan_metrics.tool_cost_metric().cost = BrokenCounter()
    before = FAULTS.counts().get("tool cost metric", 0)
    with costspan.budget(Decimal(1), scope="block") as budget:
        with costspan.tool("clearbit.enrich", cost_usd=0.10, tracer_provider=observed.tracer_provider):
            ran = True
        assert budget.spent_usd == Decimal("0.1")
    assert ran
    assert FAULTS.counts()["tool cost metric"] == before + 1
    tool_span = {s.name: s for s in observed.finished()}["execute_tool clearbit.enrich"]
    assert tool_span.end_time is not None


def test_cost_metric_sums_to_the_task_rollup_with_llm_calls_and_tools(tools_recorded) -> None:
    pytest.importorskip("openai")
    from openai import OpenAI

    from costspan.instrumentation.openai import OpenAIInstrumentor
    from costspan.testing import FakeProviderServer
    from costspan.testing.openai import OpenAIUsage, add_openai_routes

    observed = tools_recorded
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        with FakeProviderServer() as server:
            add_openai_routes(
                server, usage=OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=0)
            )
            client = OpenAI(base_url=server.base_url + "/v1", api_key="test")
            with costspan.task("lead", customer_id="cus_5", tracer_provider=observed.tracer_provider):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
                with costspan.tool(
                    "clearbit.enrich", cost_usd=0.10, tracer_provider=observed.tracer_provider
                ):
                    pass
    finally:
        instrumentor.uninstrument()
    # gpt-4o: $2.50 input, $10 output per million tokens.
    llm_usd = (1200 * Decimal("2.50") + 400 * Decimal("10")) / 1_000_000
    points = cost_points(observed.reader)
    by_kind = {dict(key).get(A.GEN_AI_TOOL_NAME, "llm"): value for key, value in points.items()}
    assert by_kind == {"llm": pytest.approx(float(llm_usd), abs=1e-15), "clearbit.enrich": 0.10}
    assert {dict(key)[A.CUSTOMER_ID] for key in points} == {"cus_5"}
    task = {s.name: s for s in observed.finished()}["lead"]
    assert sum(points.values()) == pytest.approx(task.attributes[A.ROLLUP_COST_USD], abs=1e-15)
    assert Decimal(str(task.attributes[A.ROLLUP_COST_USD])) == llm_usd + Decimal("0.10")
