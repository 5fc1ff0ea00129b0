"""Agent frameworks and their instrumentations beside costspan, on a fake OpenAI and a fake Anthropic
Messages API (one server) that play a two-turn tool-calling agent (a tool call, then the answer),
every reply with cached tokens.

Run by .ci/stages/40-frameworks.sh in a virtualenv of its own (`pip install -e ".[test,frameworks,litellm]"`).
One global TracerProvider for the session (LiteLLM's callback and the Agents SDK bridges take the
global one); each test gets a fresh exporter content, a MeterProvider and `costspan.configure()`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan
from costspan.testing.agent_turns import add_agent_turn_routes, add_anthropic_agent_turn_routes
from costspan.testing.anthropic import AnthropicUsage
from costspan.testing.openai import OpenAIUsage
from costspan.testing.server import FakeProviderServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from zero_code import uninstrument_all

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of LiteLLM's prices

# Each turn: 1000 input tokens (400 of them cached), 200 output, gpt-4o (2024-08-06 snapshot):
# $2.50/M input, $1.25/M cached input, $10/M output.
USAGE = OpenAIUsage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
MTOK = Decimal(1_000_000)
TURN_COST = (600 * Decimal("2.50") + 400 * Decimal("1.25") + 200 * Decimal(10)) / MTOK  # $0.004
AGENT_COST = 2 * TURN_COST  # two requests: $0.008
# The same turn from Anthropic (whose `input_tokens` excludes cache reads: 600 + 400 read = 1000),
# claude-haiku-4-5 (answered as claude-haiku-4-5-20251001): $1/M input, $0.10/M cache read, $5/M output.
CLAUDE = "claude-haiku-4-5"
ANTHROPIC_USAGE = AnthropicUsage(input_tokens=600, output_tokens=200, cache_read_input_tokens=400)
CLAUDE_TURN_COST = (600 * Decimal(1) + 400 * Decimal("0.10") + 200 * Decimal(5)) / MTOK  # $0.00164
CLAUDE_AGENT_COST = 2 * CLAUDE_TURN_COST  # $0.00328
AGENT_COSTS = {"openai": AGENT_COST, "anthropic": CLAUDE_AGENT_COST}
TOOL = "get_weather"

_PROVIDER = TracerProvider()
_EXPORTER = InMemorySpanExporter()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


@dataclass
class Run:
    """One test's spans, metric points and fake server."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    server: FakeProviderServer
    setup: costspan.CostspanSetup

    @property
    def openai_base_url(self) -> str:
        return self.server.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Where the anthropic SDK (and frameworks built on it) go: it appends `/v1/messages`."""
        return self.server.base_url

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def span_by_id(self, span_id: int) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.context.span_id == span_id]
        return found

    def trace_cost_sum(self) -> Decimal:
        """What a backend adding `gen_ai.usage.cost` over the trace gets."""
        return sum(
            (
                Decimal(repr(s.attributes["gen_ai.usage.cost"]))
                for s in self.spans()
                if "gen_ai.usage.cost" in s.attributes
            ),
            Decimal(0),
        )

    def cost_points(self) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "costspan.cost"
            for point in metric.data.data_points
        ]

    def metric_cost(self) -> Decimal:
        return sum((Decimal(repr(p.value)) for p in self.cost_points()), Decimal(0))

    def model_requests(self) -> int:
        paths = ("/chat/completions", "/responses", "/v1/messages")
        return sum(1 for r in self.server.requests if r.path.split("?", 1)[0].endswith(paths))

    def sdk_spans(self) -> list[ReadableSpan]:
        """Spans the anthropic SDK made itself (anthropic 2.x traces its calls unless told not to)."""
        return [s for s in self.spans() if s.instrumentation_scope.name.startswith("com.anthropic.sdk")]

    def assert_one_cost_per_request(
        self,
        task: str = "ask",
        *,
        agent: str | None = None,
        budget: Any = None,
        provider: str = "openai",
        counted_scope: str | None = None,
    ) -> None:
        """The checks a user makes: task rollup, the trace's sum, the metric, the budget, the
        server's count. `provider` names the expected dollars (AGENT_COSTS); the span that counts
        is costspan's instrumentor's for it, unless `counted_scope` names another."""
        expected = AGENT_COSTS[provider]
        counted_scope = counted_scope or f"costspan.instrumentation.{provider}"
        assert self.model_requests() == 2
        if budget is not None:
            assert budget.spent_usd == expected
        rollup = self.span(task).attributes
        assert Decimal(repr(rollup["costspan.rollup.cost_usd"])) == expected
        assert rollup["costspan.rollup.llm_calls"] == 2
        assert rollup["costspan.rollup.input_tokens"] == 2000
        assert rollup["costspan.rollup.cache_read_tokens"] == 800
        assert self.trace_cost_sum() == expected
        assert self.metric_cost() == expected
        priced = [s for s in self.spans() if "gen_ai.usage.cost" in s.attributes]
        assert len(priced) == 2
        assert {s.instrumentation_scope.name for s in priced} == {counted_scope}
        if provider == "anthropic" and counted_scope.startswith("costspan."):
            # The SDK's tracing is on (it takes the global provider) but makes no span for a call
            # costspan's instrumentor traces: one LLM span per request from the SDK's side too.
            assert self.sdk_spans() == []
        duplicates = [s for s in self.spans() if s.attributes.get("costspan.cost.status") == "duplicate"]
        ids = {format(s.context.span_id, "016x") for s in self.spans()}
        for span in duplicates:
            assert "gen_ai.usage.cost" not in span.attributes
            counted_in = span.attributes["costspan.cost.counted_in"]
            assert counted_in in ids
            (counted,) = [s for s in self.spans() if format(s.context.span_id, "016x") == counted_in]
            assert counted.attributes["costspan.cost.status"] == "priced"
            # costspan's SDK span, with the cached tokens, is the one counted.
            assert counted.instrumentation_scope.name == counted_scope
        if agent is not None:
            for point in self.cost_points():
                assert point.attributes["costspan.agent"] == agent
            for span in self.spans():
                if span.instrumentation_scope.name == counted_scope:
                    assert span.attributes["costspan.agent"] == agent


@pytest.fixture
def run() -> Iterator[Run]:
    _EXPORTER.clear()
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    uninstrument_all()
    with FakeProviderServer() as server:
        add_agent_turn_routes(server, usage=USAGE, tool_name=TOOL, arguments={"city": "Paris"})
        add_anthropic_agent_turn_routes(
            server, usage=ANTHROPIC_USAGE, tool_name=TOOL, arguments={"city": "Paris"}
        )
        setup = costspan.configure(tracer_provider=_PROVIDER, meter_provider=meter_provider)
        yield Run(_PROVIDER, meter_provider, reader, _EXPORTER, server, setup)
    uninstrument_all()
    meter_provider.shutdown()
