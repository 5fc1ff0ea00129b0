"""Span workloads: the SDK's own per-span cost, and what CostSpanProcessor adds to it.

Each workload is a callable `run(n)` built by a factory; setup (provider, processors, warm-up) happens
in the factory so that a callgrind difference of two `n` cancels it out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from costspan import CostSpanProcessor

PLAIN_ATTRIBUTES = {"http.request.method": "GET", "url.path": "/v1/items", "http.response.status_code": 200}
LLM_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 2480,
    "gen_ai.usage.output_tokens": 514,
    "gen_ai.usage.cache_read.input_tokens": 1024,
}

Workload = Callable[[int], None]


class DropExporter(SpanExporter):
    """Accepts and discards spans: the exporter's own cost is not what is measured."""

    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def batch_processor() -> BatchSpanProcessor:
    """A BatchSpanProcessor whose export thread stays asleep until shutdown.

    Its wake-ups otherwise depend on wall-clock time, which makes instruction counts vary with the
    machine's load; this way every span costs the same enqueue, and export happens once at exit.
    """
    return BatchSpanProcessor(
        DropExporter(), max_queue_size=1 << 20, max_export_batch_size=1 << 20, schedule_delay_millis=1e9
    )


def queue_of(processor: BatchSpanProcessor) -> deque:
    """The processor's queue of ended spans (SDK 1.30: `queue`; 1.45: `_batch_processor._queue`)."""
    inner = getattr(processor, "_batch_processor", processor)
    queue = getattr(inner, "_queue", None)
    if queue is None:
        queue = inner.queue
    return queue


def tracer_provider(with_cost: bool) -> TracerProvider:
    """A provider as an app would set it up: (CostSpanProcessor) + BatchSpanProcessor."""
    provider = TracerProvider()
    if with_cost:
        provider.add_span_processor(CostSpanProcessor())
    provider.add_span_processor(batch_processor())
    return provider


def _span_loop(provider: TracerProvider, attributes: dict, with_baggage: bool) -> Workload:
    """Spans as an HTTP/DB instrumentation makes them: children of a current server span."""
    tracer = provider.get_tracer("bench")

    def run(n: int) -> None:
        ctx = baggage.set_baggage("costspan.customer_id", "acme") if with_baggage else None
        token = context.attach(ctx) if ctx is not None else None
        try:
            with tracer.start_as_current_span("root"):
                for _ in range(n):
                    with tracer.start_as_current_span("op", kind=SpanKind.CLIENT, attributes=attributes):
                        pass
        finally:
            if token is not None:
                context.detach(token)

    run(200)  # warm-up: imports, caches, first export batch
    return run


def _nested_tree(provider: TracerProvider) -> Workload:
    """task -> agent -> step -> (3 plain spans, 1 LLM span): rollup through non-call spans."""
    tracer = provider.get_tracer("bench")

    def run(n: int) -> None:
        for _ in range(n):
            with (
                tracer.start_as_current_span("task"),
                tracer.start_as_current_span("agent"),
                tracer.start_as_current_span("step"),
            ):
                for _ in range(3):
                    with tracer.start_as_current_span("http", attributes=PLAIN_ATTRIBUTES):
                        pass
                tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=LLM_ATTRIBUTES).end()

    run(50)
    return run


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "plain_bare": lambda: _span_loop(tracer_provider(False), PLAIN_ATTRIBUTES, False),
    "plain_cost": lambda: _span_loop(tracer_provider(True), PLAIN_ATTRIBUTES, False),
    "plain_baggage_bare": lambda: _span_loop(tracer_provider(False), PLAIN_ATTRIBUTES, True),
    "plain_baggage_cost": lambda: _span_loop(tracer_provider(True), PLAIN_ATTRIBUTES, True),
    "llm_bare": lambda: _span_loop(tracer_provider(False), LLM_ATTRIBUTES, False),
    "llm_cost": lambda: _span_loop(tracer_provider(True), LLM_ATTRIBUTES, False),
    "tree_bare": lambda: _nested_tree(tracer_provider(False)),
    "tree_cost": lambda: _nested_tree(tracer_provider(True)),
}
