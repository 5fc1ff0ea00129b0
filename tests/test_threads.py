"""Attribution and rollup across ThreadPoolExecutor, threading.Thread and asyncio with no user code:
after `costspan.configure()` (here) and under `opentelemetry-instrument` (child process)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import costspan
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from e2e.otlp_sink import OtlpHttpSink
from zero_code import clean_env, run_instrumented, uninstrument_all, write_app

pytest.importorskip("openai")

from openai import AsyncOpenAI, OpenAI

MTOK = Decimal(1_000_000)
INPUT_TOKENS, OUTPUT_TOKENS = 1000, 200
CALL_COST = (INPUT_TOKENS * Decimal("2.50") + OUTPUT_TOKENS * Decimal("10")) / MTOK  # gpt-4o: $0.0045
MESSAGES = [{"role": "user", "content": "summarise this chunk"}]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(prompt_tokens=INPUT_TOKENS, completion_tokens=OUTPUT_TOKENS))
        yield s


class Traced:
    def __init__(self) -> None:
        self.provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider()

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.CLIENT]

    def named(self, name: str) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.name == name]
        return span


@pytest.fixture
def traced() -> Iterator[Traced]:
    textmap = propagate.get_global_textmap()
    uninstrument_all()
    t = Traced()
    yield t
    uninstrument_all()
    propagate.set_global_textmap(textmap)
    t.provider.shutdown()
    t.meter_provider.shutdown()


@pytest.fixture
def configured(traced: Traced) -> Traced:
    costspan.configure(tracer_provider=traced.provider, meter_provider=traced.meter_provider)
    return traced


def client(server: FakeProviderServer) -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)


def assert_task_rolled_up(traced: Traced, task_name: str, customer: str, calls: int) -> None:
    task = traced.named(task_name)
    assert task.attributes is not None
    assert task.attributes["costspan.rollup.cost_usd"] == float(calls * CALL_COST)
    assert task.attributes["costspan.rollup.llm_calls"] == calls
    assert task.attributes["costspan.rollup.input_tokens"] == calls * INPUT_TOKENS
    mine = [s for s in traced.llm_spans() if s.context.trace_id == task.context.trace_id]
    assert len(mine) == calls
    for span in mine:
        assert span.attributes is not None
        assert span.attributes["costspan.customer_id"] == customer
        assert span.attributes["costspan.task"] == task_name
        assert span.attributes["gen_ai.usage.cost"] == float(CALL_COST)


def fan_out_with_pool(traced: Traced, server: FakeProviderServer, name: str, customer: str, n: int) -> None:
    openai = client(server)

    @costspan.task(name, customer_id=customer, tracer_provider=traced.provider)
    def summarise() -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(
                pool.map(
                    lambda _: openai.chat.completions.create(model="gpt-4o", messages=MESSAGES), range(n)
                )
            )

    summarise()


def test_thread_pool_fan_out(configured: Traced, server: FakeProviderServer) -> None:
    fan_out_with_pool(configured, server, "summarise", "cus_pool", 6)
    assert_task_rolled_up(configured, "summarise", "cus_pool", 6)


def test_without_configure_the_workers_lose_the_task(traced: Traced, server: FakeProviderServer) -> None:
    """The control: the same code with only the instrumentor (no thread propagation) loses both."""
    from costspan.instrumentation.openai import OpenAIInstrumentor

    traced.provider.add_span_processor(costspan.CostSpanProcessor())
    OpenAIInstrumentor().instrument(tracer_provider=traced.provider)
    fan_out_with_pool(traced, server, "summarise", "cus_pool", 2)
    assert [s.attributes.get("costspan.customer_id") for s in traced.llm_spans()] == [None, None]  # type: ignore[union-attr]
    assert "costspan.rollup.cost_usd" not in (traced.named("summarise").attributes or {})


def test_concurrent_tasks_each_keep_their_own_customer(
    configured: Traced, server: FakeProviderServer
) -> None:
    jobs = [("task_a", "cus_a", 3), ("task_b", "cus_b", 4), ("task_c", "cus_c", 2)]
    with ThreadPoolExecutor(max_workers=3) as outer:
        for future in [outer.submit(fan_out_with_pool, configured, server, *job) for job in jobs]:
            future.result()
    for name, customer, n in jobs:
        assert_task_rolled_up(configured, name, customer, n)


def test_threading_thread_fan_out_with_agents_in_workers(
    configured: Traced, server: FakeProviderServer
) -> None:
    openai = client(server)

    def worker(i: int) -> None:
        with costspan.agent(f"reader-{i}", tracer_provider=configured.provider):
            openai.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    with costspan.task("read", customer_id="cus_thread", tracer_provider=configured.provider):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert_task_rolled_up(configured, "read", "cus_thread", 3)
    task = configured.named("read")
    for i in range(3):
        agent = configured.named(f"invoke_agent reader-{i}")
        assert agent.parent is not None and agent.parent.span_id == task.context.span_id
        assert agent.attributes is not None
        assert agent.attributes["costspan.rollup.cost_usd"] == float(CALL_COST)
        assert agent.attributes["costspan.customer_id"] == "cus_thread"


def test_asyncio_tasks_to_thread_and_run_in_executor(configured: Traced, server: FakeProviderServer) -> None:
    sync_client = client(server)

    async def run() -> None:
        async with AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0) as aclient:

            async def one() -> Any:
                return await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)

            def blocking() -> Any:
                return sync_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

            with costspan.task("gather", customer_id="cus_async", tracer_provider=configured.provider):
                loop = asyncio.get_running_loop()
                await asyncio.gather(
                    asyncio.create_task(one()),
                    asyncio.create_task(one()),
                    asyncio.to_thread(blocking),
                    loop.run_in_executor(None, blocking),
                )

    asyncio.run(run())
    assert_task_rolled_up(configured, "gather", "cus_async", 4)


THREADED_APP = """
import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from openai import AsyncOpenAI, OpenAI

import costspan

client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


def call():
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "chunk"}])


@costspan.task("pipeline", customer_id="cus_zero_threads")
def pipeline():
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(call) for _ in range(3)]:
            future.result()
    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    asyncio.run(fan_out_async())


async def fan_out_async():
    async with AsyncOpenAI(base_url=client.base_url, api_key="test", max_retries=0) as aclient:
        one = aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "chunk"}])
        await asyncio.gather(asyncio.create_task(one), asyncio.to_thread(call))


pipeline()
"""


def test_zero_code_threads(server: FakeProviderServer, tmp_path: Path) -> None:
    with OtlpHttpSink() as sink:
        env = clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_anthropic,costspan_google_genai",
            FAKE_OPENAI_URL=server.base_url,
        )
        result = run_instrumented(write_app(tmp_path, THREADED_APP), env)
        assert result.returncode == 0, result.stderr
        spans = sink.spans()
    (task,) = [s for s in spans if s.name == "pipeline"]
    calls = [s for s in spans if s.kind == "CLIENT"]
    assert len(calls) == 6  # 3 in a pool, 1 in a Thread, 1 asyncio task, 1 asyncio.to_thread
    for call in calls:
        assert call.parent_span_id == task.span_id
        assert call.attributes["costspan.customer_id"] == "cus_zero_threads"
    assert task.attributes["costspan.rollup.cost_usd"] == float(6 * CALL_COST)
    assert task.attributes["costspan.rollup.llm_calls"] == 6
