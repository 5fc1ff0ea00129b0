from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from costspan import CostSpanProcessor, RateCard


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


@pytest.fixture(autouse=True)
def _restore_shared_rate_card() -> Iterator[None]:
    """A processor given a card makes it the shared card: keep that from leaking between tests."""
    from costspan.pricing import shared

    before = shared._shared
    yield
    shared._shared = before


@pytest.fixture(params=[True, False], ids=["cost-first", "cost-last"])
def traced(request: pytest.FixtureRequest) -> Iterator[Traced]:
    """A provider with the cost processor added before, then after, an in-memory exporter."""
    t = make_traced(request.param)
    yield t
    t.provider.shutdown()
