"""benchmarks/framework_workloads.py runs and measures what it claims (a few runs, no timing)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import framework_workloads

from zero_code import uninstrument_all

# 2,480 input tokens (1,024 cached), 514 output, gpt-4o: $2.50, $1.25 cached, $10 per million.
PYDANTIC_CHAT = ("pydantic-ai", "chat gpt-4o")
CALL_COST = (1456 * 2.50 + 1024 * 1.25 + 514 * 10) / 1_000_000  # $0.01006


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    uninstrument_all()
    yield
    uninstrument_all()


@pytest.mark.parametrize("name", sorted(framework_workloads.WORKLOADS))
def test_framework_workloads_run(name: str) -> None:
    framework_workloads.WORKLOADS[name]()(2)


@pytest.mark.parametrize("contender", framework_workloads.CONTENDERS)
def test_each_contender_makes_the_spans_it_claims(contender: str) -> None:
    setup = framework_workloads.FrameworkSetup(contender)
    if setup.tracer_provider is None:
        assert contender == "bare"
        setup.run(2)
        return
    exporter = InMemorySpanExporter()
    setup.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    setup.run(2)
    spans = exporter.get_finished_spans()
    names = sorted((s.instrumentation_scope.name, s.name) for s in spans)
    per_run = [PYDANTIC_CHAT, ("pydantic-ai", "invoke_agent bench_agent")]
    if contender == "costspan":
        per_run.insert(0, ("costspan.instrumentation.openai", "chat gpt-4o"))
    assert names == sorted(per_run * 2)
    priced = [s for s in spans if "gen_ai.usage.cost" in s.attributes]
    if contender == "costspan":
        # costspan's call is priced; pydantic-ai's chat span above it is matched as its duplicate.
        assert [s.instrumentation_scope.name for s in priced] == ["costspan.instrumentation.openai"] * 2
        assert all(s.attributes["gen_ai.usage.cost"] == pytest.approx(CALL_COST) for s in priced)
        wrappers = [s for s in spans if (s.instrumentation_scope.name, s.name) == PYDANTIC_CHAT]
        assert [s.attributes["costspan.cost.status"] for s in wrappers] == ["duplicate"] * 2
    elif contender == "processor":
        # The processor alone: pydantic-ai's chat span is the call, and is priced.
        assert [(s.instrumentation_scope.name, s.name) for s in priced] == [PYDANTIC_CHAT] * 2
        assert all(s.attributes["gen_ai.usage.cost"] == pytest.approx(CALL_COST) for s in priced)
    else:
        assert priced == []
