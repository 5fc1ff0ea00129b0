from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from costspan import CostSpanProcessor, RateCard
from costspan.rollup.call_pricing import write_cost_parts


@dataclass
class Traced:
    provider: TracerProvider
    tracer: Tracer
    exporter: InMemorySpanExporter
    processor: CostSpanProcessor

    def spans(self) -> dict[str, ReadableSpan]:
        """Finished spans by name (names are unique within a test)."""
        finished = self.exporter.get_finished_spans()
        by_name = {span.name: span for span in finished}
        assert len(by_name) == len(finished), "span names must be unique in a test"
        return by_name


def make_traced(cost_processor_first: bool, rate_card: RateCard | None = None) -> Traced:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor(rate_card)
    if cost_processor_first:
        provider.add_span_processor(processor)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(processor)
    return Traced(provider, provider.get_tracer("test"), exporter, processor)


@dataclass
class Observed:
    """Spans and metrics as an OTLP backend would receive them."""

    tracer_provider: TracerProvider
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    processor: CostSpanProcessor

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def llm_spans(self) -> list[ReadableSpan]:
        """CLIENT spans (the LLM calls), in end order."""
        return [s for s in self.finished() if s.kind is SpanKind.CLIENT]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def observed() -> Iterator[Observed]:
    """A TracerProvider (CostSpanProcessor + in-memory exporter) and a MeterProvider with a reader,
    to pass to `Instrumentor().instrument(tracer_provider=..., meter_provider=...)`."""
    tracer_provider = TracerProvider()
    processor = CostSpanProcessor()
    tracer_provider.add_span_processor(processor)
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Observed(tracer_provider, exporter, meter_provider, reader, processor)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(autouse=True)
def _restore_shared_rate_card() -> Iterator[None]:
    """A processor given a card makes it the shared card: keep that from leaking between tests."""
    from costspan.pricing import shared

    before = shared._shared
    yield
    shared._shared = before


@pytest.fixture(autouse=True)
def _restore_tool_cost_metric() -> Iterator[None]:
    """configure() points tool spend at its MeterProvider: keep that from leaking between tests."""
    from costspan.telemetry import metrics

    before = list(metrics._TOOL_COST)
    yield
    metrics._TOOL_COST[:] = before


@pytest.fixture(autouse=True)
def _fresh_metric_dimension_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound on distinct metric dimension values is process-wide: each test starts with none
    admitted and the default limit (a whole suite uses more customer ids than the limit)."""
    from costspan.telemetry import metrics

    monkeypatch.setattr(metrics, "DIMENSION_VALUES", metrics.DimensionValueLimit())


@pytest.fixture
def cost_parts() -> Iterator[None]:
    """Priced calls also carry their cost parts (as with COSTSPAN_COST_ATTRIBUTES=parts)."""
    write_cost_parts(True)
    yield
    write_cost_parts(False)


@pytest.fixture(autouse=True)
def _restore_cost_parts() -> Iterator[None]:
    yield
    write_cost_parts(False)


@pytest.fixture(autouse=True)
def _restore_task_run_metrics() -> Iterator[None]:
    """configure() points task-run metrics at its MeterProvider: keep that from leaking too."""
    from costspan.telemetry import task_metrics

    before = list(task_metrics._TASK_METRICS)
    yield
    task_metrics._TASK_METRICS[:] = before


@pytest.fixture
def no_configured_budgets() -> Iterator[None]:
    """No budgets from configure_budgets() before or after the test (tests that set some)."""
    import costspan

    costspan.configure_budgets(None)
    yield
    costspan.configure_budgets(None)


@pytest.fixture(params=[True, False], ids=["cost-first", "cost-last"])
def traced(request: pytest.FixtureRequest) -> Iterator[Traced]:
    """A provider with the cost processor added before, then after, an in-memory exporter."""
    t = make_traced(request.param)
    yield t
    t.provider.shutdown()
