"""Faults inside costspan or around it never change the application's calls or their return values.

A rate card that raises, malformed usage from a provider, an exporter that fails or hangs, a hook
that raises: the application sees exactly what it would see without costspan; each fault is
counted (processor `faults()`, instrumentation `FAULTS`, the `costspan.faults` metric) and logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind

import costspan
from conftest import Observed
from costspan import attributes as A
from costspan.instrumentation._call import FAULTS
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.pricing import RateCard
from costspan.setup.fault_metrics import FAULTS_METRIC, FaultMetrics
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from llm import llm_call


class BrokenCard(RateCard):
    """A rate card whose every lookup raises (a bug in a custom card, a corrupt data file)."""

    __slots__ = ()

    def price(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("rate card exploded")

    def tool_price(self, name: str) -> Any:
        raise RuntimeError("rate card exploded")


def broken_card() -> BrokenCard:
    return BrokenCard(_base=RateCard.default()._base)


def fault_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "costspan" and "the application is unaffected" in r.message
    ]


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


@dataclass
class Pipeline:
    provider: TracerProvider
    processor: costspan.CostSpanProcessor
    exporter: InMemorySpanExporter

    def spans(self) -> dict[str, ReadableSpan]:
        return {s.name: s for s in self.exporter.get_finished_spans()}


@pytest.fixture
def broken() -> Iterator[Pipeline]:
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor(rate_card=broken_card())
    exporter = InMemorySpanExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Pipeline(provider, processor, exporter)
    provider.shutdown()


# --- a rate card that raises -------------------------------------------------------------------


def test_raising_rate_card_leaves_the_app_unchanged_counted_and_logged_once(
    broken: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    tracer = broken.provider.get_tracer("app")

    @costspan.task("enrich", customer_id="cus_1", tracer_provider=broken.provider)
    def enrich(n: int) -> str:
        for i in range(n):
            llm_call(tracer, "gpt-4o-mini", 100, 10, name=f"llm{i}")
        with costspan.tool("search", tracer_provider=broken.provider):
            pass
        return f"done {n}"

    tool_faults_before = FAULTS.counts().get("tool price", 0)
    with caplog.at_level(logging.WARNING, logger="costspan"):
        assert enrich(3) == "done 3"
        assert enrich(2) == "done 2"
    assert broken.processor.faults() == {"span end": 7}  # 5 LLM calls + 2 tools
    # The tools' close prices them too (for the cost metric and budgets), from the same card.
    assert FAULTS.counts()["tool price"] == tool_faults_before + 2
    logged = [record.args[0] for record in fault_logs(caplog)]  # type: ignore[index]
    assert logged.count("span end") == 1
    assert logged.count("tool price") <= 1  # once per process
    assert len(logged) <= 2
    assert len(broken.exporter.get_finished_spans()) == 2 + 5 + 2  # no span lost
    assert broken.spans()["llm0"].attributes[A.CUSTOMER_ID] == "cus_1"


def test_fault_metric_counts_processor_faults(broken: Pipeline) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    FaultMetrics(meter_provider, processors=[broken.processor])
    llm_call(broken.provider.get_tracer("app"), "gpt-4o-mini", 100, 10)
    llm_call(broken.provider.get_tracer("app"), "gpt-4o-mini", 100, 10)
    points = {
        (p.attributes["costspan.fault.component"], p.attributes["costspan.fault.where"]): p.value
        for p in metric_points(reader, FAULTS_METRIC)
    }
    assert points[("processor", "span end")] == 2
    meter_provider.shutdown()


@dataclass
class WeirdUsage(OpenAIUsage):
    """Usage fields as a broken provider or proxy might send them."""

    @property
    def total_tokens(self) -> int:
        return 0


@pytest.fixture
def openai_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        add_openai_routes(server)
        yield server


def instrumented(observed: Observed, card: RateCard | None = None) -> OpenAIInstrumentor:
    inst = OpenAIInstrumentor()
    inst.instrument(
        tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider, rate_card=card
    )
    return inst


def chat(server: FakeProviderServer) -> Any:
    with OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0) as client:
        return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_raising_rate_card_in_the_instrumentor_returns_the_sdk_response_unchanged(
    observed: Observed, openai_server: FakeProviderServer
) -> None:
    expected = chat(openai_server).model_dump(warnings=False)
    before = FAULTS.counts().get("LLM call pricing", 0)
    inst = instrumented(observed, broken_card())
    try:
        got = chat(openai_server).model_dump(warnings=False)
    finally:
        inst.uninstrument()
    assert got == expected
    assert FAULTS.counts()["LLM call pricing"] == before + 1
    (span,) = observed.llm_spans()
    assert span.name == "chat gpt-4o"  # the span still ends and is exported


def test_raising_rate_card_keeps_usage_on_the_span(
    observed: Observed, openai_server: FakeProviderServer
) -> None:
    inst = instrumented(observed, broken_card())
    try:
        chat(openai_server)
    finally:
        inst.uninstrument()
    (span,) = observed.llm_spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    # The CostSpanProcessor (its own, working card) prices the span the instrumentor could not:
    # gpt-4o, 120 in / 40 out at $2.50 / $10 per million tokens.
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx((120 * 2.5 + 40 * 10) / 1e6, rel=1e-12)
    assert sorted(p.sum for p in observed.metric_points("gen_ai.client.token.usage")) == [40, 120]


# --- malformed usage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt_tokens", "status"),
    [
        (None, "no_usage"),  # and no output count either: no usage at all
        ("120", "priced"),  # the SDK's model turns it into 120, as the application reads it
        (-5, "invalid_usage"),
        (1.5, "invalid_usage"),
        (120.0, "priced"),
        (10**30, "invalid_usage"),
        (2**63, "invalid_usage"),
    ],
)
def test_malformed_usage_from_the_provider(
    observed: Observed, prompt_tokens: Any, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProviderServer() as server:
        completion = None if prompt_tokens is None else 40
        usage = WeirdUsage(prompt_tokens=prompt_tokens, completion_tokens=completion)  # type: ignore[arg-type]
        add_openai_routes(server, usage=usage)
        expected = chat(server).model_dump(warnings=False)
        inst = instrumented(observed)
        try:
            with costspan.task("t", tracer_provider=observed.tracer_provider):
                got = chat(server).model_dump(warnings=False)
        finally:
            inst.uninstrument()
    assert got == expected
    (span,) = observed.llm_spans()
    assert span.attributes[A.COST_STATUS] == status
    spans = observed.finished()
    encode_spans(spans).SerializeToString()  # every span stays exportable over OTLP
    task_span = next(s for s in spans if s.name == "t")
    for key, value in task_span.attributes.items():
        if isinstance(value, int):
            assert -(2**63) <= value < 2**63, key


@pytest.mark.parametrize(
    ("value", "status"),
    [("12", "invalid_usage"), (-1, "invalid_usage"), (1.5, "invalid_usage"), (10**13, "invalid_usage")],
)
def test_malformed_usage_on_third_party_spans_is_marked_not_priced(
    value: Any, status: str, observed: Observed
) -> None:
    tracer = observed.tracer_provider.get_tracer("some.instrumentation")
    with tracer.start_as_current_span("task"):
        span = tracer.start_span(
            "chat",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": value,
                "gen_ai.usage.output_tokens": 10,
            },
        )
        span.end()
    spans = {s.name: s for s in observed.finished()}
    assert spans["chat"].attributes[A.COST_STATUS] == status
    assert A.GEN_AI_USAGE_COST not in spans["chat"].attributes
    assert spans["task"].attributes[A.ROLLUP_UNPRICED_CALLS] == 1
    assert observed.processor.faults() == {}


# --- exporters that fail or hang -----------------------------------------------------------------


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector down")

    def shutdown(self) -> None:
        pass


class HangingExporter(SpanExporter):
    def __init__(self) -> None:
        self.released = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.released.wait()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.released.set()


def run_app(provider: TracerProvider, n: int) -> list[str]:
    tracer = provider.get_tracer("app")
    results = []
    for i in range(n):
        with costspan.task("t", tracer_provider=provider):
            llm_call(tracer, "gpt-4o-mini", 100, 10)
            results.append(f"ok {i}")
    return results


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "simple"])
def test_failing_exporter_does_not_reach_the_app(batch: bool) -> None:
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor()
    exporter = RaisingExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    assert run_app(provider, 50) == [f"ok {i}" for i in range(50)]
    provider.force_flush()
    assert exporter.calls >= 1
    assert processor.faults() == {}
    provider.shutdown()


def test_hanging_exporter_does_not_block_the_app() -> None:
    """The BatchSpanProcessor's queue never blocks: a hung collector costs spans, not latency.

    (Its `force_flush` does wait for the exporter, whatever timeout it is given, in SDK 1.45: do
    not call `provider.force_flush()` on a request path.)
    """
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor()
    exporter = HangingExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=64, max_export_batch_size=8, schedule_delay_millis=1)
    )
    started = time.monotonic()
    assert run_app(provider, 2000) == [f"ok {i}" for i in range(2000)]  # the queue fills; spans dropped
    assert time.monotonic() - started < 10
    started = time.monotonic()
    assert processor.force_flush(timeout_millis=100) is True  # costspan holds nothing back
    assert time.monotonic() - started < 1
    assert processor.faults() == {}
    exporter.released.set()
    provider.shutdown()


# --- hooks that raise ----------------------------------------------------------------------------


class HostileSpan(NonRecordingSpan):
    """A foreign span implementation (a proxy, a vendor SDK) that raises on attributes it lacks."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no attribute {name}")


def test_on_start_fault_is_counted_and_the_span_still_works(
    traced: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = HostileSpan(trace.INVALID_SPAN_CONTEXT)
    with caplog.at_level(logging.WARNING, logger="costspan"):
        for _ in range(3):
            with trace.use_span(hostile):
                llm_call(traced.tracer, "gpt-4o-mini", 100, 10, name="llm")
    assert traced.processor.faults() == {"on_start": 3}
    assert len(fault_logs(caplog)) == 1
    assert len(traced.exporter.get_finished_spans()) == 3


def test_force_flush_and_shutdown_pass_through(traced: Any) -> None:
    llm_call(traced.tracer, "gpt-4o-mini", 100, 10)
    assert traced.processor.force_flush() is True
    assert traced.provider.force_flush() is True
    traced.provider.shutdown()
    traced.processor.shutdown()  # twice is harmless
    llm_call(traced.tracer, "gpt-4o-mini", 100, 10)  # after shutdown: no exception


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_impossible_cost_written_by_someone_else_is_not_summed(bad: float, traced: Any) -> None:
    with traced.tracer.start_as_current_span("task"):
        with costspan.tool("search", tracer_provider=traced.provider) as tool_span:
            tool_span.set_attribute(A.GEN_AI_USAGE_COST, bad)
        with costspan.tool("fetch", cost_usd=0.25, tracer_provider=traced.provider):
            pass
        llm_call(traced.tracer, "gpt-4o-mini", 1000, 100, name="llm")
        span = traced.tracer.start_span(
            "chat x", attributes={"gen_ai.request.model": "x", A.GEN_AI_USAGE_COST: bad}
        )
        span.end()
    spans = traced.spans()
    assert spans["execute_tool search"].attributes[A.COST_STATUS] == "invalid_usage"
    assert spans["chat x"].attributes[A.COST_STATUS] == "invalid_usage"
    task = spans["task"].attributes
    assert task[A.ROLLUP_COST_USD] == pytest.approx(0.25 + (1000 * 0.15 + 100 * 0.6) / 1e6, rel=1e-12)
    assert task[A.ROLLUP_UNPRICED_CALLS] == 1
    assert traced.processor.faults() == {}


def test_inbound_baggage_outcomes_are_a_metric() -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.context import Context

    from costspan.attribution.baggage_trust import AttributionBaggageGuard, InboundBaggagePolicy

    guard = AttributionBaggageGuard(W3CBaggagePropagator(), InboundBaggagePolicy.of("10.0.0.0/8"))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    FaultMetrics(meter_provider, guard=guard)
    forged = {"baggage": "costspan.customer_id=cus_victim"}
    for peer in ("203.0.113.9", "203.0.113.9", "10.1.1.1"):
        guard.extract({**forged, "wsgi.version": (1, 0), "REMOTE_ADDR": peer}, Context())
    guard.extract({"baggage": "other=1"}, Context())  # no costspan entries: neither kept nor dropped
    points = {
        p.attributes["costspan.baggage.outcome"]: p.value
        for p in metric_points(reader, "costspan.baggage.inbound")
    }
    assert points == {"dropped": 2, "kept": 1}
    meter_provider.shutdown()


def test_observe_faults_registers_once_per_meter_provider(broken: Pipeline) -> None:
    from costspan.setup.fault_metrics import observe_faults

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    first = observe_faults(meter_provider, broken.processor)
    assert observe_faults(meter_provider, broken.processor) is first  # a second setup: same instruments
    llm_call(broken.provider.get_tracer("app"), "gpt-4o-mini", 100, 10)
    points = [
        p
        for p in metric_points(reader, FAULTS_METRIC)
        if p.attributes["costspan.fault.component"] == "processor"
    ]
    assert [(p.attributes["costspan.fault.where"], p.value) for p in points] == [("span end", 1)]
    meter_provider.shutdown()


def test_configure_exports_fault_and_inbound_baggage_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import propagate
    from opentelemetry.context import Context

    monkeypatch.delenv("COSTSPAN_TRUSTED_BAGGAGE_PEERS", raising=False)
    before = propagate.get_global_textmap()
    tracer_provider = TracerProvider()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        costspan.configure(tracer_provider=tracer_provider, meter_provider=meter_provider, instrument=False)
        forged = {
            "baggage": "costspan.customer_id=cus_victim",
            "wsgi.version": (1, 0),
            "REMOTE_ADDR": "1.2.3.4",
        }
        propagate.extract(forged, Context())
        points = metric_points(reader, "costspan.baggage.inbound")
        assert [(p.attributes["costspan.baggage.outcome"], p.value) for p in points] == [("dropped", 1)]
    finally:
        propagate.set_global_textmap(before)
        tracer_provider.shutdown()
        meter_provider.shutdown()
