"""Many customers must not grow memory without bound (issue 23, item 4): the attribution dimensions
of `costspan.cost` keep at most a limit of distinct values each, later values are recorded as
`_overflow` with `otel.metric.overflow=true`, the sums stay exact and the first overflow is logged."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import costspan
from costspan import attributes as A
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.setup import settings as costspan_settings
from costspan.telemetry import metrics as costspan_metrics
from costspan.telemetry.metrics import OVERFLOW_ATTRIBUTE, OVERFLOW_VALUE, CallMetrics
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

# gpt-4o: $2.50 input and $10 output per million tokens, so each call costs exactly $1.25 (a float
# with no rounding: sums of it are exact).
USAGE = OpenAIUsage(prompt_tokens=400_000, completion_tokens=25_000)
CALL_USD = 1.25
CALL_POINT = {A.GEN_AI_PROVIDER_NAME: "openai", A.GEN_AI_REQUEST_MODEL: "gpt-4o"}
SERVED = {**CALL_POINT, A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06"}


def cost_points(reader: InMemoryMetricReader) -> dict[frozenset[tuple[str, Any]], float]:
    data = reader.get_metrics_data()
    out: dict[frozenset[tuple[str, Any]], float] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == costspan_metrics.COST:
                    for point in metric.data.data_points:
                        out[frozenset(point.attributes.items())] = point.value
    return out


def by_customer(points: dict[frozenset[tuple[str, Any]], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for attributes, value in points.items():
        customer = dict(attributes)[A.CUSTOMER_ID]
        out[customer] = out.get(customer, 0.0) + value
    return out


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=USAGE)
        yield s


@pytest.fixture
def client(server: FakeProviderServer, observed: Any) -> Iterator[OpenAI]:
    costspan.configure(
        tracer_provider=observed.tracer_provider,
        meter_provider=observed.meter_provider,
        instrument=False,
        metric_dimension_limit=3,
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
    yield client
    client.close()
    instrumentor.uninstrument()


def call(client: OpenAI, customer: str) -> None:
    with costspan.attribute(customer_id=customer):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_customers_past_the_limit_share_one_overflow_series_and_the_sums_stay_exact(
    client: OpenAI, observed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="costspan")
    for customer in ("c0", "c1", "c0", "c2", "c3", "c4", "c3", "c5", "c1"):
        call(client, customer)
    points = cost_points(observed.reader)
    assert points == {
        frozenset({**SERVED, A.CUSTOMER_ID: "c0"}.items()): 2 * CALL_USD,
        frozenset({**SERVED, A.CUSTOMER_ID: "c1"}.items()): 2 * CALL_USD,
        frozenset({**SERVED, A.CUSTOMER_ID: "c2"}.items()): CALL_USD,
        frozenset({**SERVED, A.CUSTOMER_ID: OVERFLOW_VALUE, OVERFLOW_ATTRIBUTE: True}.items()): 4 * CALL_USD,
    }
    assert sum(points.values()) == 9 * CALL_USD
    # The spans keep every customer: that is where per-customer spend past the limit is read.
    assert sorted({s.attributes[A.CUSTOMER_ID] for s in observed.llm_spans()}) == [f"c{i}" for i in range(6)]
    warnings = [r.getMessage() for r in caplog.records if "metric reached" in r.getMessage()]
    assert len(warnings) == 1
    assert "reached 3 distinct values of costspan.customer_id" in warnings[0]
    assert "COSTSPAN_METRIC_DIMENSION_LIMIT" in warnings[0]


def test_combinations_are_bounded_too(observed: Any) -> None:
    """Each dimension under its limit, but their product is not: 20 customers x 20 features."""
    costspan_metrics.set_dimension_value_limit(20)
    recorder = CallMetrics(observed.meter_provider)
    for customer in range(20):
        for feature in range(20):
            attribution = {A.CUSTOMER_ID: f"c{customer}", A.FEATURE: f"f{feature}"}
            recorder.record(CALL_POINT, attribution, 0.1, 10, 10, 0.5, None)
    points = cost_points(observed.reader)
    limit = 20 * costspan_metrics.COMBINATIONS_PER_VALUE
    assert len(points) == limit + 1
    overflow = {k: v for k, v in points.items() if (OVERFLOW_ATTRIBUTE, True) in k}
    assert list(overflow.values()) == [(400 - limit) * 0.5]
    assert sum(points.values()) == 400 * 0.5


def test_tool_names_and_tool_attribution_are_bounded(observed: Any) -> None:
    costspan_metrics.set_dimension_value_limit(2)
    costspan_metrics.record_tools_on(observed.meter_provider)
    for n in range(5):
        with (
            costspan.attribute(customer_id=f"c{n}"),
            costspan.tool(f"tool-{n}", cost_usd=0.25, tracer_provider=observed.tracer_provider),
        ):
            pass
    points = cost_points(observed.reader)
    names = {dict(k)[A.GEN_AI_TOOL_NAME] for k in points}
    assert names == {"tool-0", "tool-1", OVERFLOW_VALUE}
    assert by_customer(points) == {"c0": 0.25, "c1": 0.25, OVERFLOW_VALUE: 0.75}


def test_memory_stays_flat_past_the_limit(observed: Any) -> None:
    """20,000 more customers past the limit add no series and (almost) no memory; without the bound
    each customer kept a series in the SDK (676 MiB for 200,000)."""
    recorder = CallMetrics(observed.meter_provider)
    limit = costspan_metrics.DEFAULT_DIMENSION_VALUE_LIMIT

    def record(first: int, count: int) -> None:
        for n in range(first, first + count):
            recorder.record(CALL_POINT, {A.CUSTOMER_ID: f"cus_{n:08d}"}, 0.1, 10, 10, 0.5, None)

    record(0, limit + 100)  # fills the limit and starts the overflow series
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        record(limit + 100, 20_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Without the bound: about 3.4 kB per customer (68 MB here).
    assert grown < 1024 * 1024, f"{grown:,} bytes for 20,000 customers past the limit"
    points = cost_points(observed.reader)
    assert len(points) == limit + 1
    assert sum(points.values()) == (limit + 100 + 20_000) * 0.5


def test_the_limit_is_a_setting_and_a_bad_value_is_reported() -> None:
    assert (
        costspan_settings.read_settings({"COSTSPAN_METRIC_DIMENSION_LIMIT": "5000"}).metric_dimension_limit
        == 5000
    )
    bad = costspan_settings.read_settings({"COSTSPAN_METRIC_DIMENSION_LIMIT": "lots"})
    assert bad.metric_dimension_limit is None
    assert bad.problems == (
        "COSTSPAN_METRIC_DIMENSION_LIMIT='lots': not a whole number; the default limit "
        "(1,000 distinct values per metric dimension) applies",
    )
    with pytest.raises(ValueError, match="metric dimension limit must be a whole number >= 1, got 0"):
        costspan.configure(metric_dimension_limit=0, instrument=False)


def test_configure_applies_the_variable_and_its_argument_wins(
    observed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTSPAN_METRIC_DIMENSION_LIMIT", "7")
    providers = {"tracer_provider": observed.tracer_provider, "meter_provider": observed.meter_provider}
    costspan.configure(instrument=False, **providers)
    assert costspan_metrics.DIMENSION_VALUES.limit == 7
    costspan.configure(instrument=False, metric_dimension_limit=40, **providers)
    assert costspan_metrics.DIMENSION_VALUES.limit == 40
