"""LiteLLMInstrumentor against real litellm talking to costspan's fake OpenAI and Anthropic servers.

Every litellm.completion / acompletion / embedding / aembedding call, sync and async, streamed or
not, direct or through litellm.Router, gets one priced CLIENT span (exact dollars and tokens), with
attribution and budgets as for the SDK instrumentors; the caller sees what it sees uninstrumented.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

# LiteLLM fetches its own price list from GitHub at import unless told to use the bundled copy.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
pytest.importorskip("litellm")

import litellm
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import costspan
from costspan import CostSpanProcessor
from costspan import attributes as A
from costspan.instrumentation.litellm import LiteLLMInstrumentor
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.anthropic import AnthropicUsage, add_anthropic_routes
from costspan.testing.openai import OpenAIUsage, add_openai_routes, openai_error

MTOK = Decimal(1_000_000)
MESSAGES = [{"role": "user", "content": "SECRET-PROMPT-7f3a tell me about cost"}]
# OpenAI's terms (LiteLLM's for every provider): prompt includes cached, completion includes reasoning.
INPUT, OUTPUT, CACHED, REASONING = 1200, 400, 200, 100
# gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
GPT4O_COST = ((INPUT - CACHED) * Decimal("2.50") + CACHED * Decimal("1.25") + OUTPUT * Decimal("10")) / MTOK
# gpt-4o-mini: $0.15, $0.075, $0.60.
GPT4O_MINI_COST = (
    (INPUT - CACHED) * Decimal("0.15") + CACHED * Decimal("0.075") + OUTPUT * Decimal("0.60")
) / MTOK
EMBED_TOKENS = 8
EMBED_COST = EMBED_TOKENS * Decimal("0.02") / MTOK  # text-embedding-3-small
# Anthropic through LiteLLM: 1000 uncached in, 200 cache read, 50 cache write, 400 out; claude-haiku-4-5
# at $1 input, $0.10 cache read, $1.25 cache write (5 min), $5 output per million tokens.
CLAUDE_COST = (1000 * Decimal(1) + 200 * Decimal("0.10") + 50 * Decimal("1.25") + 400 * Decimal(5)) / MTOK


class Observed:
    """Spans and metrics as an OTLP backend receives them."""

    def __init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(CostSpanProcessor())
        self.exporter = InMemorySpanExporter()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.exporter.get_finished_spans() if s.name == name]
        return found

    def cost_points(self) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == "costspan.cost":
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def observed() -> Iterator[Observed]:
    from costspan.pricing import shared

    card = shared._shared
    o = Observed()
    yield o
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()
    shared._shared = card


@pytest.fixture
def instrumented(observed: Observed) -> Iterator[LiteLLMInstrumentor]:
    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


@pytest.fixture
def openai_too(observed: Observed) -> Iterator[None]:
    """costspan's openai instrumentor on as well (LiteLLM calls the openai SDK for embeddings)."""
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield
    inst.uninstrument()


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(
            s,
            usage=OpenAIUsage(
                prompt_tokens=INPUT,
                completion_tokens=OUTPUT,
                cached_tokens=CACHED,
                reasoning_tokens=REASONING,
            ),
        )
        yield s


def api(server: FakeProviderServer) -> dict[str, Any]:
    return {"api_base": server.base_url + "/v1", "api_key": "test"}


def assert_gpt4o_span(span: ReadableSpan, server: FakeProviderServer, model: str = "gpt-4o") -> None:
    a = span.attributes
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is not StatusCode.ERROR
    assert a[A.GEN_AI_OPERATION_NAME] == "chat"
    assert a[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[A.GEN_AI_REQUEST_MODEL] == model
    assert a[A.GEN_AI_RESPONSE_MODEL].startswith(model)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    assert a[A.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert a[A.GEN_AI_USAGE_OUTPUT_TOKENS] == OUTPUT
    assert a[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == CACHED
    assert a[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == REASONING
    expected = GPT4O_COST if model == "gpt-4o" else GPT4O_MINI_COST
    assert a[A.GEN_AI_USAGE_COST] == float(expected)
    assert a[A.COST_STATUS] == "priced"
    for value in a.values():  # no prompt text recorded
        assert "SECRET-PROMPT" not in str(value)


def one_priced_call(observed: Observed, server: FakeProviderServer, requests: int = 1) -> ReadableSpan:
    (span,) = observed.llm_spans()
    assert len(server.requests) == requests
    return span


# --- completion -------------------------------------------------------------------------------


def test_completion(observed: Observed, instrumented: Any, server: FakeProviderServer) -> None:
    with (
        costspan.task("t", tracer_provider=observed.tracer_provider),
        costspan.attribute(customer_id="cus_1"),
    ):
        response = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, max_tokens=600, **api(server))
    assert response.usage.prompt_tokens == INPUT
    span = one_priced_call(observed, server)
    assert_gpt4o_span(span, server)
    assert span.attributes["gen_ai.request.max_tokens"] == 600
    assert span.attributes[A.CUSTOMER_ID] == "cus_1"
    task = observed.span("t")
    assert task.attributes[A.ROLLUP_COST_USD] == float(GPT4O_COST)
    assert task.attributes[A.ROLLUP_LLM_CALLS] == 1
    assert task.attributes[A.ROLLUP_INPUT_TOKENS] == INPUT
    (point,) = observed.cost_points()
    assert point.value == pytest.approx(float(GPT4O_COST), rel=1e-12)
    assert point.attributes["costspan.customer_id"] == "cus_1"


def test_completion_positional_model_and_messages(observed: Observed, instrumented: Any, server) -> None:
    litellm.completion("openai/gpt-4o", MESSAGES, **api(server))
    assert_gpt4o_span(one_priced_call(observed, server), server)


def test_acompletion(observed: Observed, instrumented: Any, server: FakeProviderServer) -> None:
    response = asyncio.run(litellm.acompletion(model="openai/gpt-4o", messages=MESSAGES, **api(server)))
    assert response.usage.completion_tokens == OUTPUT
    assert_gpt4o_span(one_priced_call(observed, server), server)


def test_model_by_custom_llm_provider(observed: Observed, instrumented: Any, server) -> None:
    litellm.completion(model="gpt-4o", custom_llm_provider="openai", messages=MESSAGES, **api(server))
    assert_gpt4o_span(one_priced_call(observed, server), server)


def test_mock_response_sends_nothing_and_gets_no_span(observed: Observed, instrumented: Any) -> None:
    response = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, mock_response="hi")
    assert response.choices[0].message.content == "hi"
    assert observed.llm_spans() == []


def test_failed_call_is_one_failed_span_and_the_same_error(
    observed: Observed, instrumented: Any, server
) -> None:
    server.script(openai_error(400, "bad request"))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model="openai/gpt-4o", messages=MESSAGES, num_retries=0, **api(server))
    (span,) = observed.llm_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "400"
    assert A.GEN_AI_USAGE_COST not in span.attributes


# --- streams ----------------------------------------------------------------------------------


def stream_chunks(server: FakeProviderServer, **extra: Any) -> list[dict[str, Any]]:
    stream = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, stream=True, **api(server), **extra)
    return [chunk.model_dump(exclude={"id", "created"}) for chunk in stream]


@pytest.mark.parametrize("caller_usage", [False, True], ids=["costspan-asks-usage", "caller-asks-usage"])
def test_stream_caller_sees_the_uninstrumented_chunks(observed: Observed, server, caller_usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if caller_usage else {}
    expected = stream_chunks(server, **extra)
    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        got = stream_chunks(server, **extra)
    finally:
        inst.uninstrument()
    assert got == expected
    assert bool(expected[-1].get("usage")) is caller_usage
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    (span,) = observed.llm_spans()
    assert_gpt4o_span(span, server)


def test_async_stream(observed: Observed, instrumented: Any, server: FakeProviderServer) -> None:
    async def run() -> str:
        stream = await litellm.acompletion(
            model="openai/gpt-4o", messages=MESSAGES, stream=True, **api(server)
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()) == "Hello from the fake OpenAI."
    assert_gpt4o_span(one_priced_call(observed, server), server)


def test_abandoned_stream_ends_its_span(observed: Observed, instrumented: Any, server) -> None:
    stream = litellm.completion(model="openai/gpt-4o", messages=MESSAGES, stream=True, **api(server))
    next(iter(stream))
    del stream
    gc.collect()
    (span,) = observed.llm_spans()
    assert span.end_time is not None
    assert A.GEN_AI_USAGE_COST not in span.attributes  # the usage never came: not priced at $0 silently
    assert span.attributes[A.COST_STATUS] == "no_usage"


# --- embeddings, and costspan's openai instrumentor on too -------------------------------------


def test_embedding_with_the_openai_instrumentor_on_too(
    observed: Observed, instrumented: Any, openai_too: None, server: FakeProviderServer
) -> None:
    """LiteLLM sends OpenAI embeddings with an `encoding_format` through the openai SDK's
    `embeddings.with_raw_response.create`: one span, LiteLLM's, priced once."""
    kwargs = {"model": "openai/text-embedding-3-small", "input": ["hi"], "encoding_format": "float"}
    with costspan.task("t", tracer_provider=observed.tracer_provider):
        litellm.embedding(**kwargs, **api(server))
        asyncio.run(litellm.aembedding(**kwargs, **api(server)))
    spans = observed.llm_spans()
    assert len(spans) == len(server.requests) == 2
    for span in spans:
        assert span.instrumentation_scope.name == "costspan.instrumentation.litellm"
        assert span.name == "embeddings text-embedding-3-small"
        assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == EMBED_TOKENS
        assert span.attributes[A.GEN_AI_USAGE_COST] == float(EMBED_COST)
    assert observed.span("t").attributes[A.ROLLUP_COST_USD] == float(2 * EMBED_COST)
    assert observed.span("t").attributes[A.ROLLUP_LLM_CALLS] == 2


def test_openai_sdk_calls_outside_litellm_still_get_their_span(
    observed: Observed, instrumented: Any, openai_too: None, server: FakeProviderServer
) -> None:
    import openai

    litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))
    openai.OpenAI(base_url=server.base_url + "/v1", api_key="test").chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    scopes = sorted(s.instrumentation_scope.name for s in observed.llm_spans())
    assert scopes == ["costspan.instrumentation.litellm", "costspan.instrumentation.openai"]


# --- Anthropic through LiteLLM ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_through_litellm(observed: Observed, instrumented: Any, stream: bool) -> None:
    with FakeProviderServer() as anthropic_server:
        usage = AnthropicUsage(
            input_tokens=1000, output_tokens=400, cache_read_input_tokens=200, cache_creation_input_tokens=50
        )
        add_anthropic_routes(anthropic_server, usage=usage)
        result = litellm.completion(
            model="anthropic/claude-haiku-4-5",
            messages=MESSAGES,
            api_base=anthropic_server.base_url,
            api_key="test",
            stream=stream,
        )
        if stream:
            list(result)
    (span,) = observed.llm_spans()
    a = span.attributes
    assert a[A.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[A.GEN_AI_REQUEST_MODEL] == "claude-haiku-4-5"
    assert a[A.GEN_AI_USAGE_INPUT_TOKENS] == 1250  # semconv: input includes cache reads and writes
    assert a[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    assert a[A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 50
    assert a[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 400
    assert a[A.GEN_AI_USAGE_COST] == float(CLAUDE_COST)


# --- Router -----------------------------------------------------------------------------------


def router(server: FakeProviderServer) -> Any:
    deployment = {"model": "openai/gpt-4o", **api(server)}
    embedding = {"model": "openai/text-embedding-3-small", **api(server)}
    return litellm.Router(
        model_list=[
            {"model_name": "smart", "litellm_params": deployment},
            {"model_name": "embed", "litellm_params": embedding},
        ]
    )


def test_router_calls(observed: Observed, instrumented: Any, server: FakeProviderServer) -> None:
    r = router(server)
    with costspan.task("t", tracer_provider=observed.tracer_provider):
        r.completion(model="smart", messages=MESSAGES)
        asyncio.run(r.acompletion(model="smart", messages=MESSAGES))
        list(r.completion(model="smart", messages=MESSAGES, stream=True))
        r.embedding(model="embed", input=["hi"])
    spans = observed.llm_spans()
    assert len(spans) == len(server.requests) == 4
    for span in spans[:3]:
        assert_gpt4o_span(span, server)
    assert spans[3].attributes[A.GEN_AI_USAGE_COST] == float(EMBED_COST)
    assert observed.span("t").attributes[A.ROLLUP_COST_USD] == float(3 * GPT4O_COST + EMBED_COST)
    assert sum(p.value for p in observed.cost_points()) == pytest.approx(float(3 * GPT4O_COST + EMBED_COST))


# --- budgets ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("instrumented")
def test_budget_refuses_before_sending(observed: Observed, server: FakeProviderServer) -> None:
    with costspan.task("t", tracer_provider=observed.tracer_provider), costspan.budget(0.005):
        litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))  # $0.00675: over
        with pytest.raises(costspan.BudgetExceeded):
            litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))
        with pytest.raises(costspan.BudgetExceeded):
            asyncio.run(litellm.acompletion(model="openai/gpt-4o", messages=MESSAGES, **api(server)))
    assert len(server.requests) == 1  # the refused calls never left the process
    spans = observed.llm_spans()
    assert len(spans) == 3
    assert [s.attributes.get(A.ERROR_TYPE) for s in spans] == [None, "BudgetExceeded", "BudgetExceeded"]


@pytest.mark.usefixtures("instrumented")
def test_budget_downgrade_keeps_the_provider_prefix(observed: Observed, server: FakeProviderServer) -> None:
    with costspan.budget(0.005, downgrade={"gpt-4o": "gpt-4o-mini"}, downgrade_at=0.001, on_exceed="warn"):
        litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))
        litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))
    assert [r.json()["model"] for r in server.requests] == ["gpt-4o", "gpt-4o-mini"]
    first, second = observed.llm_spans()
    assert_gpt4o_span(first, server)
    assert_gpt4o_span(second, server, model="gpt-4o-mini")
    assert second.attributes[A.BUDGET_DOWNGRADED_FROM] == "gpt-4o"


# --- instrument / uninstrument ----------------------------------------------------------------


def test_uninstrument_restores_litellm(observed: Observed, server: FakeProviderServer) -> None:
    originals = {
        name: getattr(litellm, name) for name in ("completion", "acompletion", "embedding", "aembedding")
    }
    inst = LiteLLMInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider)
    assert all(getattr(litellm, name) is not fn for name, fn in originals.items())
    inst.uninstrument()
    assert all(getattr(litellm, name) is fn for name, fn in originals.items())
    litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api(server))
    assert observed.llm_spans() == []


def test_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "costspan_litellm"]
    assert found.load() is LiteLLMInstrumentor


def test_instrumented_before_litellm_is_imported() -> None:
    """instrument() does not import LiteLLM (seconds, and a price-list download): its functions are
    wrapped when the application imports it, and not at all if it was uninstrumented before."""
    import subprocess
    import sys

    script = """
import sys
from costspan.instrumentation.litellm import LiteLLMInstrumentor
first = LiteLLMInstrumentor()
first.instrument()
assert "litellm" not in sys.modules
import litellm
print(type(litellm.completion).__name__, type(litellm.aembedding).__name__)
first.uninstrument()
print(type(litellm.completion).__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["FunctionWrapper", "FunctionWrapper", "function"]
