"""Memory: the ledger lives on the spans, so what the processor keeps is bounded by the open spans.

There is no global table of open spans to cap: a span that never ends keeps only its own ledger
entry and those of its ancestors (a few small objects each), and only while the application keeps
the span itself alive; dropped, it is collected with its entry. RSS over many spans stays flat.
"""

from __future__ import annotations

import gc
import weakref

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import costspan
from costspan.rollup import processor as processor_module
from llm import llm_call
from test_load import RootsExporter


def live_nodes() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is processor_module._Node)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def pipeline() -> tuple[TracerProvider, costspan.CostSpanProcessor, RootsExporter]:
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor()
    exporter = RootsExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, processor, exporter


def test_spans_that_never_end_are_collected_with_their_ledger_entries() -> None:
    provider, _, exporter = pipeline()
    tracer = provider.get_tracer("app")
    before = live_nodes()
    refs = []
    for i in range(10_000):
        with costspan.task(f"t{i}", tracer_provider=provider):
            span = tracer.start_span("abandoned")  # never ended: a stream nobody closed, a bug
            refs.append(weakref.ref(span))
            del span
    assert exporter.count == 10_000  # the task spans ended; the abandoned ones never will
    assert live_nodes() <= before
    assert all(ref() is None for ref in refs)
    provider.shutdown()


def test_a_span_kept_open_holds_only_its_own_ancestry() -> None:
    provider, _, _ = pipeline()
    tracer = provider.get_tracer("app")
    before = live_nodes()
    kept = []
    for _ in range(1_000):
        with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child"):
            kept.append(tracer.start_span("stuck"))  # alive and open, e.g. held by a hung request
            root_ref = weakref.ref(root)
        del root
    assert root_ref() is None  # ended ancestors' spans are not kept by an open descendant
    assert live_nodes() - before == 3 * len(kept)  # stuck + child + root entries, nothing else
    for span in kept:
        span.end()
    kept.clear()
    assert live_nodes() <= before
    provider.shutdown()


def test_rss_stays_flat_over_50k_spans() -> None:
    """CI size (a leak of 100 bytes a span would show).

    benchmarks/bench_load.py runs 1,000,000 spans (README "Guarantees" has the figure).
    """
    provider, processor, exporter = pipeline()
    tracer = provider.get_tracer("app")

    def spans(n_tasks: int) -> None:
        for _ in range(n_tasks):
            with costspan.task("t", customer_id="cus_1", tracer_provider=provider):
                with costspan.agent("a", tracer_provider=provider):
                    llm_call(tracer, "gpt-4o-mini", 1000, 100)
                    llm_call(tracer, "gpt-4o", 1000, 100)
                llm_call(tracer, "gpt-4.1", 1000, 100)

    spans(2_000)  # warm-up: caches, interned strings, allocator arenas
    gc.collect()
    start = rss_bytes()
    spans(10_000)  # 5 spans each: 50,000 spans
    gc.collect()
    growth = rss_bytes() - start
    assert exporter.count == 60_000
    assert processor.faults() == {}
    assert growth < 5 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB over 50k spans"
    provider.shutdown()


def test_current_span_reference_does_not_pin_ledger() -> None:
    """`trace.get_current_span()` of a context kept after the span ended pins no ledger entry."""
    provider, _, _ = pipeline()
    tracer = provider.get_tracer("app")
    before = live_nodes()
    contexts = []
    for _ in range(1_000):
        with tracer.start_as_current_span("s") as span:
            contexts.append(trace.set_span_in_context(span))
    assert live_nodes() <= before
    provider.shutdown()
