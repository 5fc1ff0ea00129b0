"""Full-size load and memory runs for issue 6 (tests/test_load.py runs a smaller size in CI).

    python benchmarks/bench_load.py            # all three
    python benchmarks/bench_load.py memory     # one of: threads, asyncio, memory

- threads: 100 threads x 1,000 tasks of random span trees; every task's rolled-up cost equals the
  exact sum of its leaves, no span lost, no ledger entry left.
- asyncio: 10,000 concurrent asyncio tasks, same checks.
- memory: 1,000,000 spans (200,000 tasks of 5 spans) through CostSpanProcessor and an exporter that
  keeps nothing; RSS growth after a 50,000-span warm-up.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import costspan
from llm import llm_call
from test_load import check, live_nodes, run_asyncio, run_threads


def bench_threads() -> None:
    before = live_nodes()
    started = time.perf_counter()
    run = run_threads(100, 1000)
    elapsed = time.perf_counter() - started
    check(run, before)
    print(
        f"threads: 100 x 1,000 tasks, {run.exporter.count:,} spans in {elapsed:.1f} s "
        f"({elapsed / run.exporter.count * 1e6:.0f} us/span, tracing included); "
        "exact, none lost, ledger empty"
    )


def bench_asyncio() -> None:
    before = live_nodes()
    started = time.perf_counter()
    run = run_asyncio(10_000)
    elapsed = time.perf_counter() - started
    check(run, before)
    print(
        f"asyncio: 10,000 concurrent tasks, {run.exporter.count:,} spans in {elapsed:.1f} s; exact, none lost"
    )


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def bench_memory() -> None:
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor()
    exporter = CountingExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def tasks(n: int) -> None:
        for i in range(n):
            with costspan.task("t", customer_id=f"cus_{i % 100}", tracer_provider=provider):
                with costspan.agent("a", tracer_provider=provider):
                    llm_call(tracer, "gpt-4o-mini", 1000, 100)
                    llm_call(tracer, "gpt-4o", 1000, 100)
                llm_call(tracer, "gpt-4.1", 1000, 100)

    tasks(10_000)
    gc.collect()
    start_rss, start_count = rss_bytes(), exporter.count
    started = time.perf_counter()
    tasks(200_000)
    elapsed = time.perf_counter() - started
    gc.collect()
    growth = rss_bytes() - start_rss
    spans = exporter.count - start_count
    assert processor.faults() == {}
    print(
        f"memory: {spans:,} spans in {elapsed:.1f} s, RSS {start_rss / 2**20:.1f} -> "
        f"{(start_rss + growth) / 2**20:.1f} MiB (growth {growth / 2**20:.2f} MiB)"
    )


BENCHES = {"threads": bench_threads, "asyncio": bench_asyncio, "memory": bench_memory}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
