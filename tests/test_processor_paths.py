"""The processor finalises spans in `_on_ending` where the SDK allows it and wraps `end` otherwise;
every set-up below must export the same priced, rolled-up, attributed spans."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    Span,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costspan import CostSpanProcessor
from costspan import attributes as A
from llm import llm_call


class OnlyStartAndEnd(SpanProcessor):
    """A wrapping processor that forwards on_start/on_end but not the SDK's `_on_ending`."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(span)


def plain(processor: CostSpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider


def wrapped(processor: CostSpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(OnlyStartAndEnd(processor))
    return provider


def concurrent(processor: CostSpanProcessor) -> TracerProvider:
    multi = ConcurrentMultiSpanProcessor(num_threads=2)
    provider = TracerProvider(active_span_processor=multi)
    provider.add_span_processor(processor)
    return provider


def few_attributes(processor: CostSpanProcessor) -> TracerProvider:
    # Too few attribute slots for everything the processor writes: the SDK must evict, so the
    # processor has to go through it rather than write into the attribute dict.
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=6))
    provider.add_span_processor(processor)
    return provider


def short_values(processor: CostSpanProcessor) -> TracerProvider:
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=4))
    provider.add_span_processor(processor)
    return provider


@pytest.mark.parametrize("make_provider", [plain, wrapped])
def test_priced_rolled_up_and_stamped_whatever_the_processor_chain(
    make_provider: Callable[[CostSpanProcessor], TracerProvider],
) -> None:
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor()
    provider = make_provider(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    token = context.attach(baggage.set_baggage(A.CUSTOMER_ID, "acme"))
    try:
        with tracer.start_as_current_span("task"), tracer.start_as_current_span("step"):
            with tracer.start_as_current_span("http"):
                pass
            llm_call(tracer, "gpt-4o-mini", 1_000_000, 0, name="a")
            llm_call(tracer, "gpt-4o-mini", 0, 1_000_000, name="b")
    finally:
        context.detach(token)
    provider.shutdown()
    spans = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert spans["a"][A.GEN_AI_USAGE_COST] == 0.15
    assert spans["b"][A.GEN_AI_USAGE_COST] == 0.6
    for name in ("task", "step"):
        assert spans[name][A.ROLLUP_COST_USD] == 0.75
        assert spans[name][A.ROLLUP_LLM_CALLS] == 2
    assert A.ROLLUP_COST_USD not in spans["http"]
    assert all(attributes[A.CUSTOMER_ID] == "acme" for attributes in spans.values())
    assert processor.faults() == {}


def test_concurrent_multi_processor_prices_calls() -> None:
    # ConcurrentMultiSpanProcessor runs on_start in worker threads, where the caller's current context
    # (parent span, baggage) is not visible: calls are priced, but rollup and stamping need the
    # parent context passed explicitly. Known limitation, same before the _on_ending path.
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor()
    provider = concurrent(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm_call(provider.get_tracer("test"), "gpt-4o-mini", 1_000_000, 1_000_000, name="a")
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.GEN_AI_USAGE_COST] == 0.75
    assert A.ROLLUP_COST_USD not in span.attributes  # a call with nothing under it
    assert processor.faults() == {}


def test_span_limits_still_apply_to_what_the_processor_writes() -> None:
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor()
    provider = few_attributes(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm_call(provider.get_tracer("test"), "gpt-4o-mini", 1_000_000, 1_000_000, name="a")
    (span,) = exporter.get_finished_spans()
    assert len(span.attributes) == 6  # 5 of the call's own + 2 written by the processor: 1 evicted
    assert span.dropped_attributes == 1
    assert span.attributes[A.GEN_AI_USAGE_COST] == 0.75  # written last, so kept
    assert span.attributes[A.COST_STATUS] == "priced"
    assert processor.faults() == {}


def test_attribute_length_limit_truncates_stamped_attribution() -> None:
    exporter = InMemorySpanExporter()
    processor = CostSpanProcessor()
    provider = short_values(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    token = context.attach(baggage.set_baggage(A.CUSTOMER_ID, "acme-corporation"))
    try:
        with provider.get_tracer("test").start_as_current_span("http"):
            pass
    finally:
        context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.CUSTOMER_ID] == "acme"
