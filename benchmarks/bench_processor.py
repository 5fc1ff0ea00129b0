"""CostSpanProcessor cost per span, A/B against the bare SDK in one process.

Run: python benchmarks/bench_processor.py [--spans N] [--rounds R]
Writes a table to benchmarks/RESULTS.md (section "processor per span").
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from costspan import CostSpanProcessor, RateCard

LLM_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 2480,
    "gen_ai.usage.output_tokens": 514,
    "gen_ai.usage.cache_read.input_tokens": 1024,
}
PLAIN_ATTRIBUTES = {"http.request.method": "GET", "url.path": "/v1/items", "http.response.status_code": 200}


class DropExporter(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def provider(with_cost: bool) -> TracerProvider:
    p = TracerProvider()
    if with_cost:
        p.add_span_processor(CostSpanProcessor())
    p.add_span_processor(SimpleSpanProcessor(DropExporter()))
    return p


def per_span_us(p: TracerProvider, attributes: dict, n: int) -> float:
    tracer = p.get_tracer("bench")
    with tracer.start_as_current_span("root"):
        start = time.process_time()
        for _ in range(n):
            tracer.start_span("op", kind=SpanKind.CLIENT, attributes=attributes).end()
        return (time.process_time() - start) / n * 1e6


def median_of(rounds: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(rounds))


def price_lookup_us(n: int) -> float:
    card = RateCard.default()
    kwargs = dict(input_tokens=2480, output_tokens=514, cache_read_tokens=1024, start_time_ns=time.time_ns())
    card.price("openai", "gpt-4o", **kwargs)
    start = time.perf_counter()
    for _ in range(n):
        card.price("openai", "gpt-4o", **kwargs)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    bare, cost = provider(False), provider(True)
    rows = []
    for label, attributes in (("plain span (3 attributes)", PLAIN_ATTRIBUTES), ("LLM span", LLM_ATTRIBUTES)):
        results = {"bare": [], "cost": []}
        for _ in range(args.rounds):  # interleave A and B so drift hits both
            results["bare"].append(per_span_us(bare, attributes, args.spans))
            results["cost"].append(per_span_us(cost, attributes, args.spans))
        a, b = statistics.median(results["bare"]), statistics.median(results["cost"])
        rows.append(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    lookup = median_of(args.rounds, lambda: price_lookup_us(50_000))
    text = "\n".join(
        [
            "## processor per span",
            "",
            f"{datetime.date.today()}, {platform.machine()} {platform.python_implementation()} "
            f"{platform.python_version()}, opentelemetry-sdk {version('opentelemetry-sdk')}, "
            f"genai-prices {version('genai-prices')}; process CPU time, median of {args.rounds} "
            f"interleaved rounds of {args.spans} spans, SimpleSpanProcessor + a dropping exporter.",
            "",
            "| span | bare SDK us/span | + CostSpanProcessor us/span | ratio |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Cached `RateCard.price()` (gpt-4o, cached input): median {lookup:.2f} us per call.",
            "",
        ]
    )
    print(text)
    results_file = Path(__file__).with_name("RESULTS.md")
    results_file.write_text("# Benchmark results\n\n" + text)


if __name__ == "__main__":
    main()
