"""The benchmark suite's workloads run and measure what they claim (a handful of iterations, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import llm_workloads
import run as bench_run
import span_workloads


@pytest.mark.parametrize("name", sorted(span_workloads.WORKLOADS))
def test_span_workloads_run(name: str) -> None:
    span_workloads.WORKLOADS[name]()(3)


@pytest.mark.parametrize("call", sorted(llm_workloads.CALLS))
def test_costspan_contender_prices_each_benchmark_call(call: str) -> None:
    setup = llm_workloads.Contender(call, "costspan", with_meter=True)
    exporter = InMemorySpanExporter()
    setup.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    make_client, do_call = llm_workloads.CALLS[call]
    client = make_client()
    setup.on()
    try:
        do_call(client)
        do_call(client)
    finally:
        setup.off()
    do_call(client)  # uninstrumented: no span
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.attributes["gen_ai.usage.input_tokens"] == 2480
        assert span.attributes["gen_ai.usage.output_tokens"] == 514
        assert span.attributes["costspan.cost.status"] == "priced"
        assert span.attributes["gen_ai.usage.cost"] > 0


def test_pricing_section_reports_both_lookups() -> None:
    text, facts = bench_run.pricing_section(quick=True)
    assert "RateCard.price()" in text and "calc_price" in text
    assert facts["price_us"] > 0 and facts["calc_price_us"] > 0


@pytest.mark.parametrize(("call", "spans_per_op"), [("chat", 1), ("agent_task", 16)])
def test_export_workloads_send_every_span_to_rotel(call: str, spans_per_op: int, tmp_path: Path) -> None:
    import bench_export

    with bench_export.rotel_blackhole(tmp_path) as endpoint:
        import os

        os.environ["BENCH_OTLP_ENDPOINT"] = endpoint
        try:
            body_bytes, spans = bench_export.exported(sys.executable, f"{call}:costspan", 2)
        finally:
            del os.environ["BENCH_OTLP_ENDPOINT"]
    assert spans == (2 + bench_export.WARM_UP) * spans_per_op  # warm-up included: all reached rotel
    assert body_bytes > 300 * spans


@pytest.mark.parametrize("name", ["requests_today", "requests_returned_cost"])
def test_http_client_workloads_run(name: str) -> None:
    pytest.importorskip("opentelemetry.instrumentation.requests")
    import http_client_workloads
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    try:
        http_client_workloads.WORKLOADS[name]()(3)
    finally:
        RequestsInstrumentor().uninstrument()
