"""The shared stream proxy (instrumentation/_stream.py), through the real openai SDK and a fake server:
`for item in stream` runs through a generator instead of the proxy's `__next__`; these pin that it sees
the same items and ends the span the same way (exhausted, resumed after a break, budget abort between
items, left open until the interpreter exits)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

pytest.importorskip("openai")

from openai import OpenAI

import costspan
from costspan.budget import BudgetExceeded
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

INPUT, OUTPUT = 1200, 400
# gpt-4o: $2.50 in / $10 out per million tokens.
CALL_USD = (INPUT * Decimal("2.50") + OUTPUT * Decimal("10")) / Decimal(1_000_000)  # $0.007
KW: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
TEXT = "Hello from the fake OpenAI."


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(prompt_tokens=INPUT, completion_tokens=OUTPUT))
        yield s


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[OpenAI]:
    c = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
    yield c
    c.close()


@pytest.fixture
def instrumented(observed: Any) -> Iterator[None]:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield
    inst.uninstrument()


pytestmark = pytest.mark.usefixtures("no_configured_budgets")


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def assert_priced(span: Any) -> None:
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["gen_ai.usage.input_tokens"] == INPUT
    assert span.attributes["gen_ai.usage.output_tokens"] == OUTPUT
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.usage.cost"] == pytest.approx(float(CALL_USD), rel=1e-12)


def test_loop_over_a_stream_nobody_holds(observed, instrumented, client) -> None:
    # Only the loop's iterator refers to the proxy: it must not be collected (ending the span early).
    chunks = [chunk for chunk in client.chat.completions.create(**KW)]
    assert text_of(chunks) == TEXT
    assert all(c.choices for c in chunks)  # the usage chunk costspan asked for is hidden
    [span] = observed.llm_spans()
    assert_priced(span)


def test_break_then_loop_again_sees_every_chunk_once(observed, instrumented, client, server) -> None:
    stream = client.chat.completions.create(**KW)
    seen = []
    for chunk in stream:
        seen.append(chunk)
        break
    assert observed.llm_spans() == []  # a break is not the end of the stream
    rest = list(stream)
    assert text_of(seen + rest) == TEXT
    assert len(rest) == 4  # after the role chunk: 3 text chunks and the finish chunk (usage chunk hidden)
    [span] = observed.llm_spans()
    assert_priced(span)


def test_next_then_loop(observed, instrumented, client) -> None:
    stream = client.chat.completions.create(**KW)
    first = next(stream)
    assert text_of([first, *stream]) == TEXT
    assert_priced(observed.llm_spans()[0])


def test_abort_streams_stops_a_loop_between_chunks(observed, instrumented, client) -> None:
    got = 0
    with costspan.budget(CALL_USD, scope="block", abort_streams=True):
        stream = client.chat.completions.create(**KW)
        with pytest.raises(BudgetExceeded) as refused:
            for _ in stream:
                got += 1
                if got == 2:
                    with costspan.tool("crawl", cost_usd=float(CALL_USD)):  # the limit is reached mid-stream
                        pass
    assert got == 2  # the next chunk was not handed out
    assert refused.value.in_stream
    assert stream.response.is_closed  # the connection was given back
    [span] = observed.llm_spans()
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["costspan.budget.exceeded"]


def test_stream_left_open_at_exit_ends_its_span(server) -> None:
    """As with weakref.finalize before: a stream still referenced when the interpreter exits ends its
    span at exit, before the tracer provider (made earlier) shuts down and exports it."""
    script = textwrap.dedent(
        """
        import json, sys
        from openai import OpenAI
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
        from costspan import CostSpanProcessor
        from costspan.instrumentation.openai import OpenAIInstrumentor

        class Print(SpanExporter):
            def export(self, spans):
                for s in spans:
                    print(json.dumps({"name": s.name, "ended": s.end_time is not None,
                                      "model": s.attributes.get("gen_ai.response.model")}), flush=True)
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(CostSpanProcessor())
        provider.add_span_processor(SimpleSpanProcessor(Print()))
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        client = OpenAI(base_url=sys.argv[1], api_key="test", max_retries=0)
        STREAM = client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        next(STREAM)
        print("exiting", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, server.base_url + "/v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "exiting"
    assert [json.loads(line) for line in lines[1:]] == [
        {"name": "chat gpt-4o", "ended": True, "model": "gpt-4o-2024-08-06"}
    ]
