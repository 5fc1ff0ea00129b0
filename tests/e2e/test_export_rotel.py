"""End to end: an app process exports its costed spans over OTLP (gRPC, then HTTP/protobuf) to a
real collector (rotel), which forwards them over OTLP/HTTP to a backend (`OtlpHttpSink`). The
spans the backend receives must carry the attribute contract with exact values.

    app (real openai SDK -> fake OpenAI) --OTLP grpc|http--> rotel-agent --OTLP/HTTP--> sink
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("rotel ships no Windows build", allow_module_level=True)

from otlp_sink import OtlpHttpSink, ReceivedPoint, ReceivedSpan
from rotel_collector import RotelCollector

from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from zero_code import HTTP_CLIENT_INSTRUMENTATIONS

APP = Path(__file__).with_name("traced_app.py")
APP_TIMEOUT_S = 30.0
RECEIVE_TIMEOUT_S = 10.0
SERVICE_NAME = "lead-enricher-e2e"
CUSTOMER_ID = "cus_e2e_8821"  # traced_app.CUSTOMER_ID
TASK = "enrich_lead"

MTOK = Decimal(1_000_000)
# Published prices, USD per million tokens (genai-prices 0.2.3): input, cached input, output.
GPT4O = (Decimal("2.50"), Decimal("1.25"), Decimal("10"))
GPT4O_MINI = (Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))
TOOL_USD = Decimal("0.10")
# What the fake OpenAI servers report (prompt tokens include cached ones).
RESEARCH_USAGE = OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=200)
WRITER_USAGE = OpenAIUsage(prompt_tokens=3000, completion_tokens=500, cached_tokens=1000)


def parts(usage: OpenAIUsage, prices: tuple[Decimal, Decimal, Decimal]) -> tuple[Decimal, Decimal, Decimal]:
    """(uncached input, cache read, output) USD, by hand."""
    p_in, p_cached, p_out = prices
    uncached = usage.prompt_tokens - usage.cached_tokens
    return (
        uncached * p_in / MTOK,
        usage.cached_tokens * p_cached / MTOK,
        usage.completion_tokens * p_out / MTOK,
    )


RESEARCH_PARTS = parts(RESEARCH_USAGE, GPT4O)
WRITER_PARTS = parts(WRITER_USAGE, GPT4O_MINI)
RESEARCH_USD = sum(RESEARCH_PARTS, Decimal(0))  # 0.0025 + 0.00025 + 0.004 = 0.00675
WRITER_USD = sum(WRITER_PARTS, Decimal(0))  # 0.0003 + 0.000075 + 0.0003 = 0.000675
TASK_USD = RESEARCH_USD + WRITER_USD + TOOL_USD  # 0.107425


@dataclass
class Servers:
    research: FakeProviderServer
    writer: FakeProviderServer


@pytest.fixture
def openai_servers() -> Iterator[Servers]:
    with FakeProviderServer() as research, FakeProviderServer() as writer:
        add_openai_routes(research, usage=RESEARCH_USAGE)
        add_openai_routes(writer, usage=WRITER_USAGE)
        yield Servers(research, writer)


@pytest.fixture
def sink() -> Iterator[OtlpHttpSink]:
    with OtlpHttpSink() as s:
        yield s


@pytest.fixture
def collector(sink: OtlpHttpSink, tmp_path: Path) -> Iterator[RotelCollector]:
    with RotelCollector(export_to=sink.endpoint, workdir=tmp_path) as rotel:
        yield rotel


def app_env(setup: str, protocol: str, endpoint: str, servers: Servers) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COSTSPAN_"))}
    env.update(
        OTEL_SERVICE_NAME=SERVICE_NAME,
        OTEL_TRACES_EXPORTER="otlp",
        # The zero-code setup also exports costspan's metrics (the manual one has no MeterProvider).
        OTEL_METRICS_EXPORTER="otlp" if setup == "zero-code" else "none",
        OTEL_LOGS_EXPORTER="none",
        # The cost parts ride along only when asked for (they add bytes to every call span).
        COSTSPAN_COST_ATTRIBUTES="parts",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        RESEARCH_OPENAI_URL=servers.research.base_url,
        WRITER_OPENAI_URL=servers.writer.base_url,
        NO_PROXY="127.0.0.1,localhost",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=HTTP_CLIENT_INSTRUMENTATIONS,  # no HTTP spans under the calls
    )
    return env


def opentelemetry_instrument() -> Path:
    """The `opentelemetry-instrument` script installed beside this interpreter."""
    script = Path(sys.executable).parent / "opentelemetry-instrument"
    assert script.exists(), f"{script} missing: opentelemetry-instrumentation is a costspan dependency"
    return script


def run_app(setup: str, protocol: str, collector: RotelCollector, servers: Servers) -> dict[str, str]:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    argv = [sys.executable, str(APP), setup]
    if setup == "zero-code":
        # What a user types: opentelemetry-instrument python app.py
        argv = [str(opentelemetry_instrument()), *argv]
    done = subprocess.run(
        argv,
        env=app_env(setup, protocol, endpoint, servers),
        capture_output=True,
        text=True,
        timeout=APP_TIMEOUT_S,  # kills the app if it hangs
        check=False,
    )
    assert done.returncode == 0, f"app failed ({done.returncode}):\n{done.stderr}"
    # Exporters log a failed export instead of raising, and costspan logs its own faults: the app's
    # stderr must hold neither (nor a traceback).
    for bad in ("Failed to export", "costspan", "Traceback"):
        assert bad not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    named = {s.name: s for s in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


EXPECTED_SPANS = {
    TASK,
    "invoke_agent research",
    "chat gpt-4o",
    "execute_tool clearbit.enrich",
    "invoke_agent writer",
    "chat gpt-4o-mini",
}


def usd(value: Decimal) -> float:
    return float(value)


def assert_priced_call(span: ReceivedSpan, total: Decimal, parts_usd: tuple[Decimal, ...]) -> None:
    a = span.attributes
    assert span.kind == "CLIENT"
    assert a["gen_ai.usage.cost"] == usd(total)
    assert type(a["gen_ai.usage.cost"]) is float  # an OTLP double, not a string
    assert a["costspan.cost.input_usd"] == usd(parts_usd[0])
    assert a["costspan.cost.cache_read_usd"] == usd(parts_usd[1])
    assert a["costspan.cost.output_usd"] == usd(parts_usd[2])
    assert a["costspan.cost.status"] == "priced"
    assert "costspan.price.source" not in a  # the bundled card (the default) is not named


def check_received(spans: list[ReceivedSpan], ran: dict[str, str]) -> None:
    named = by_name(spans)
    assert set(named) == EXPECTED_SPANS

    # One trace, the one the app ran, with its tree intact across the collector.
    assert {s.trace_id for s in spans} == {ran["trace_id"]}
    task = named[TASK]
    research, writer = named["invoke_agent research"], named["invoke_agent writer"]
    assert task.parent_span_id == ""
    assert research.parent_span_id == task.span_id
    assert writer.parent_span_id == task.span_id
    assert named["chat gpt-4o"].parent_span_id == research.span_id
    assert named["execute_tool clearbit.enrich"].parent_span_id == research.span_id
    assert named["chat gpt-4o-mini"].parent_span_id == writer.span_id

    # Resource and attribution on every span.
    assert len(ran["task_id"]) == 32
    for span in spans:
        assert span.resource["service.name"] == SERVICE_NAME, span.name
        assert span.attributes["costspan.customer_id"] == CUSTOMER_ID, span.name
        assert span.attributes["costspan.task"] == TASK, span.name
        assert span.attributes["costspan.task_id"] == ran["task_id"], span.name
    for name in ("invoke_agent research", "chat gpt-4o", "execute_tool clearbit.enrich"):
        assert named[name].attributes["costspan.agent"] == "research", name
    for name in ("invoke_agent writer", "chat gpt-4o-mini"):
        assert named[name].attributes["costspan.agent"] == "writer", name

    # Each call priced from the per-MTok prices.
    research_call, writer_call = named["chat gpt-4o"], named["chat gpt-4o-mini"]
    assert_priced_call(research_call, RESEARCH_USD, RESEARCH_PARTS)
    assert_priced_call(writer_call, WRITER_USD, WRITER_PARTS)
    assert research_call.attributes["gen_ai.usage.input_tokens"] == 1200
    assert research_call.attributes["gen_ai.usage.cache_read.input_tokens"] == 200
    assert research_call.attributes["gen_ai.usage.output_tokens"] == 400
    assert research_call.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    tool = named["execute_tool clearbit.enrich"].attributes
    assert tool["gen_ai.usage.cost"] == usd(TOOL_USD)
    assert tool["costspan.cost.status"] == "priced"
    assert tool["costspan.price.source"] == "cost_usd"

    # The rollup on the task span: the whole task's cost, calls and tokens.
    t = task.attributes
    assert t["costspan.rollup.cost_usd"] == usd(TASK_USD)
    assert type(t["costspan.rollup.cost_usd"]) is float
    assert t["costspan.rollup.llm_calls"] == 2
    assert type(t["costspan.rollup.llm_calls"]) is int  # an OTLP int, not a double
    assert t["costspan.rollup.tool_calls"] == 1
    assert t["costspan.rollup.input_tokens"] == 1200 + 3000
    assert t["costspan.rollup.output_tokens"] == 400 + 500
    assert t["costspan.rollup.cache_read_tokens"] == 200 + 1000
    for absent in ("costspan.rollup.failed_calls", "costspan.rollup.unpriced_calls", "gen_ai.usage.cost"):
        assert absent not in t, absent  # zero counts are not written; a rollup is never a call cost
    assert research.attributes["costspan.rollup.cost_usd"] == usd(RESEARCH_USD + TOOL_USD)
    assert research.attributes["costspan.rollup.llm_calls"] == 1
    assert writer.attributes["costspan.rollup.cost_usd"] == usd(WRITER_USD)
    assert writer.attributes["costspan.rollup.input_tokens"] == 3000


def cost_points(points: list[ReceivedPoint]) -> list[ReceivedPoint]:
    return [p for p in points if p.metric == "costspan.cost"]


def cost_points_arrived(points: list[ReceivedPoint]) -> bool:
    return len(cost_points(points)) >= 3


def check_cost_metric(points: list[ReceivedPoint]) -> None:
    """costspan's `costspan.cost` counter, exported over OTLP at exit: one point per model and one for
    the priced tool, with the attribution, exact dollars; together the task's rollup."""
    by_what = {
        p.attributes.get("gen_ai.request.model") or p.attributes["gen_ai.tool.name"]: p
        for p in cost_points(points)
    }
    assert set(by_what) == {"gpt-4o", "gpt-4o-mini", "clearbit.enrich"}, cost_points(points)
    assert by_what["clearbit.enrich"].attributes["gen_ai.operation.name"] == "execute_tool"
    assert sum(p.value for p in by_what.values()) == pytest.approx(
        usd(RESEARCH_USD + TOOL_USD + WRITER_USD), abs=1e-15
    )
    for what, agent, dollars in (
        ("gpt-4o", "research", RESEARCH_USD),
        ("gpt-4o-mini", "writer", WRITER_USD),
        ("clearbit.enrich", "research", TOOL_USD),
    ):
        point = by_what[what]
        assert point.unit == "USD"
        assert point.value == usd(dollars)
        assert point.attributes["costspan.customer_id"] == CUSTOMER_ID
        assert point.attributes["costspan.task"] == TASK
        assert point.attributes["costspan.agent"] == agent
        assert "costspan.task_id" not in point.attributes  # one series per task would explode
        assert point.resource["service.name"] == SERVICE_NAME


def all_spans_arrived(spans: list[ReceivedSpan]) -> bool:
    return len(spans) >= len(EXPECTED_SPANS)


# (telemetry setup, app -> rotel protocol). Zero-code is how most users run: both protocols. The
# README's manual setup once (its exporter choice follows the same OTEL_* variables).
CASES = [
    pytest.param("zero-code", "grpc", id="zero-code-otlp-grpc"),
    pytest.param("zero-code", "http/protobuf", id="zero-code-otlp-http"),
    pytest.param("manual", "http/protobuf", id="manual-otlp-http"),
]


@pytest.mark.parametrize(("setup", "protocol"), CASES)
def test_costed_spans_reach_the_backend_through_rotel(
    setup: str,
    protocol: str,
    collector: RotelCollector,
    sink: OtlpHttpSink,
    openai_servers: Servers,
) -> None:
    ran = run_app(setup, protocol, collector, openai_servers)
    try:
        sink.wait_for_spans(all_spans_arrived, RECEIVE_TIMEOUT_S)
    except AssertionError as e:
        raise AssertionError(f"{e}\nrotel-agent said:\n{collector.output()}") from None
    time.sleep(0.1)  # a duplicate or stray span would come in the same batch: let it show
    check_received(sink.spans(), ran)
    if setup == "zero-code":
        check_cost_metric(sink.wait_for_points(cost_points_arrived, RECEIVE_TIMEOUT_S))
    # The app really called the fake OpenAI servers through the SDK, once each.
    assert len(openai_servers.research.requests) == 1
    assert len(openai_servers.writer.requests) == 1
    # rotel forwarded over OTLP/HTTP (its own exporter, not the app's).
    assert {path for path, _ in sink.requests} == (
        {"/v1/traces", "/v1/metrics"} if setup == "zero-code" else {"/v1/traces"}
    )
    assert all(h["user-agent"].startswith("Rotel") for _, h in sink.requests), sink.requests
    assert all(h["content-encoding"] == "gzip" for _, h in sink.requests)  # as rotel.env says


def test_rotel_stops_and_leaves_no_process(sink: OtlpHttpSink, tmp_path: Path) -> None:
    with RotelCollector(export_to=sink.endpoint, workdir=tmp_path) as rotel:
        process = rotel.process
        assert process is not None and process.poll() is None
    assert process.poll() is not None  # ended when the block closed
