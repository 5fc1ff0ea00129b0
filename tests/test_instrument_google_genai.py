"""GoogleGenAIInstrumentor against the real google-genai SDK talking to a local fake Gemini server."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

pytest.importorskip("google.genai")

from google import genai
from google.genai import errors, types
from google.genai.models import AsyncModels, Models

from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor
from costspan.testing import FakeProviderServer, Reply
from costspan.testing.google_genai import (
    GeminiUsage,
    add_gemini_routes,
    continuation_reply,
    fake_credentials,
    function_call_reply,
    gemini_error,
)

# These tests read the cost parts too: on by default they are not (COSTSPAN_COST_ATTRIBUTES).
pytestmark = pytest.mark.usefixtures("cost_parts")

MTOK = Decimal(1_000_000)
# Published gemini-2.5-flash prices (USD per million tokens): input, cached input, output (incl. thinking).
FLASH_IN, FLASH_CACHED, FLASH_OUT = Decimal("0.30"), Decimal("0.03"), Decimal("2.50")
# gemini-embedding-001: input only.
EMBED_IN = Decimal("0.15")

PROMPT = "SECRET-PROMPT-7f3a tell me about cost"
USAGE = GeminiUsage(prompt_tokens=1200, candidates_tokens=300, cached_tokens=200, thoughts_tokens=100)
# Semconv: input includes cached; output includes thinking.
INPUT, OUTPUT, CACHED, REASONING = 1200, 400, 200, 100
FLASH_COST = ((INPUT - CACHED) * FLASH_IN + CACHED * FLASH_CACHED + OUTPUT * FLASH_OUT) / MTOK
METHODS = (
    "generate_content",
    "generate_content_stream",
    "embed_content",
    "_generate_content_stream",
)
AFC_FUNCTIONS = ("get_function_response_parts", "get_function_response_parts_async")


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_gemini_routes(s, usage=GeminiUsage(**vars(USAGE)), model_version="gemini-2.5-flash")
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[GoogleGenAIInstrumentor]:
    inst = GoogleGenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[genai.Client]:
    c = make_client(server)
    yield c
    c.close()


def make_client(server: FakeProviderServer, **http: Any) -> genai.Client:
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.base_url, **http))


def assert_flash_span(span: Any, server: FakeProviderServer, *, request_attrs: bool = False) -> None:
    a = span.attributes
    assert span.name == "generate_content gemini-2.5-flash"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is not StatusCode.ERROR
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.request.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.id"] == "resp-gemini-1"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    assert a["gen_ai.usage.input_tokens"] == INPUT
    assert a["gen_ai.usage.output_tokens"] == OUTPUT
    assert a["gen_ai.usage.cache_read.input_tokens"] == CACHED
    assert a["gen_ai.usage.reasoning.output_tokens"] == REASONING
    assert a["gen_ai.usage.cost"] == float(FLASH_COST)
    assert a["costspan.cost.input_usd"] == float((INPUT - CACHED) * FLASH_IN / MTOK)
    assert a["costspan.cost.cache_read_usd"] == float(CACHED * FLASH_CACHED / MTOK)
    assert a["costspan.cost.output_usd"] == float(OUTPUT * FLASH_OUT / MTOK)
    assert a["costspan.cost.status"] == "priced"
    assert "costspan.price.source" not in a  # the bundled card, the default, is not named
    assert "error.type" not in a
    if request_attrs:
        assert a["gen_ai.request.max_tokens"] == 256
        assert a["gen_ai.request.temperature"] == 0.5
        assert a["gen_ai.request.top_p"] == 0.9
    assert_no_text(span)


def assert_no_text(span: Any) -> None:
    for value in span.attributes.values():
        for text in value if isinstance(value, tuple) else (value,):
            assert "SECRET-PROMPT" not in str(text)
            assert "fake Gemini" not in str(text)
    for event in span.events:
        assert "SECRET-PROMPT" not in str(dict(event.attributes or {}))


def only_span(observed: Any) -> Any:
    spans = observed.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --- generate_content ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"max_output_tokens": 256, "temperature": 0.5, "top_p": 0.9},
        types.GenerateContentConfig(max_output_tokens=256, temperature=0.5, top_p=0.9),
    ],
    ids=["dict", "model"],
)
def test_generate_content_sync(observed, instrumented, server, client, config) -> None:
    response = client.models.generate_content(model="models/gemini-2.5-flash", contents=PROMPT, config=config)
    assert response.text == "Hello from the fake Gemini."
    assert_flash_span(only_span(observed), server, request_attrs=True)


def test_generate_content_async(observed, instrumented, server, client) -> None:
    async def run() -> Any:
        return await client.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents=PROMPT,
            config={"max_output_tokens": 256, "temperature": 0.5, "top_p": 0.9},
        )

    response = asyncio.run(run())
    assert response.usage_metadata.prompt_token_count == INPUT
    assert_flash_span(only_span(observed), server, request_attrs=True)


def test_span_is_current_during_sdk_call(observed, instrumented, server) -> None:
    from opentelemetry import trace

    seen: list[Any] = []
    client = make_client(server)
    api_client = client.models._api_client
    real_request = api_client.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context())
        return real_request(*args, **kwargs)

    api_client.request = spy  # type: ignore[method-assign]
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert seen and seen[0] == only_span(observed).get_span_context()


def test_thinking_only_and_tool_use_tokens(observed, instrumented) -> None:
    """Thinking is billed as output; tool-use prompt tokens are input outside promptTokenCount."""
    with FakeProviderServer() as s:
        add_gemini_routes(
            s,
            usage=GeminiUsage(
                prompt_tokens=1000, candidates_tokens=0, thoughts_tokens=500, tool_use_prompt_tokens=50
            ),
            model_version="gemini-2.5-flash",
        )
        c = make_client(s)
        c.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    a = only_span(observed).attributes
    assert a["gen_ai.usage.input_tokens"] == 1050
    assert a["gen_ai.usage.output_tokens"] == 500
    assert a["gen_ai.usage.reasoning.output_tokens"] == 500
    assert "gen_ai.usage.cache_read.input_tokens" not in a
    assert a["gen_ai.usage.cost"] == float((1050 * FLASH_IN + 500 * FLASH_OUT) / MTOK)


# --- streaming ----------------------------------------------------------------------------------


def test_generate_content_stream_sync(observed, instrumented, server, client) -> None:
    stream = client.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT, config={"max_output_tokens": 256}
    )
    assert observed.llm_spans() == []
    text = "".join(chunk.text or "" for chunk in stream)
    assert text == "Hello from the fake Gemini."
    span = only_span(observed)
    assert_flash_span(span, server)
    assert span.attributes["gen_ai.request.max_tokens"] == 256
    assert server.requests[-1].path.endswith(":streamGenerateContent?alt=sse")


def test_generate_content_stream_async(observed, instrumented, server, client) -> None:
    async def run() -> str:
        stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
        return "".join([chunk.text or "" async for chunk in stream])

    assert asyncio.run(run()) == "Hello from the fake Gemini."
    assert_flash_span(only_span(observed), server)


def test_several_candidates_stream_keeps_every_finish_reason(observed, instrumented, server, client) -> None:
    # Candidate 0 finishes 6 chunks before the end: more than the last chunks a one-candidate
    # stream keeps.
    stream = client.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT, config={"candidate_count": 3}
    )
    chunks = list(stream)
    assert len(chunks) == 9
    assert chunks[2].candidates[0].finish_reason == "MAX_TOKENS"
    span = only_span(observed)
    assert span.attributes["gen_ai.request.choice.count"] == 3
    assert span.attributes["gen_ai.response.finish_reasons"] == ("max_tokens", "max_tokens", "stop")
    assert span.attributes["gen_ai.usage.input_tokens"] == USAGE.prompt_tokens


def test_abandoned_sync_stream_ends_span(observed, instrumented, server, client) -> None:
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
    next(iter(stream))
    assert observed.llm_spans() == []
    del stream
    gc.collect()
    span = only_span(observed)
    assert span.end_time is not None
    # Only the intermediate running total was seen: input known, output not yet (issue 23).
    assert span.attributes["gen_ai.usage.input_tokens"] == INPUT
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert span.attributes["costspan.cost.status"] == "incomplete_usage"
    assert "gen_ai.usage.cost" not in span.attributes


def test_closed_sync_stream_ends_span(observed, instrumented, server, client) -> None:
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
    next(iter(stream))
    stream.close()
    assert only_span(observed).end_time is not None


def test_aclosed_async_stream_ends_span(observed, instrumented, server, client) -> None:
    async def run() -> None:
        stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
        await stream.__anext__()
        assert observed.llm_spans() == []
        await stream.aclose()
        assert len(observed.llm_spans()) == 1

    asyncio.run(run())


def test_stream_error_sets_status_code(observed, instrumented, server, client) -> None:
    server.script(gemini_error(400, "bad request"))
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT)
    with pytest.raises(errors.ClientError):
        list(stream)
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "400"


# --- embeddings ---------------------------------------------------------------------------------


def test_embed_content_sync(observed, instrumented, server, client) -> None:
    response = client.models.embed_content(
        model="gemini-embedding-001", contents=[PROMPT, "second"], config={"output_dimensionality": 4}
    )
    assert len(response.embeddings) == 2
    span = only_span(observed)
    a = span.attributes
    assert span.name == "embeddings gemini-embedding-001"
    assert span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.embeddings.dimension.count"] == 4
    assert a["gen_ai.usage.input_tokens"] == 12
    assert "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.usage.cost"] == float(12 * EMBED_IN / MTOK)
    assert server.requests[-1].path.endswith(":batchEmbedContents")
    assert_no_text(span)


def test_embed_content_async(observed, instrumented, server, client) -> None:
    async def run() -> Any:
        return await client.aio.models.embed_content(model="gemini-embedding-001", contents=PROMPT)

    asyncio.run(run())
    a = only_span(observed).attributes
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.cost"] == float(12 * EMBED_IN / MTOK)


def test_embed_content_without_usage_is_no_usage(observed, instrumented) -> None:
    with FakeProviderServer() as s:
        add_gemini_routes(s, embedding_prompt_tokens=None)
        c = make_client(s)
        c.models.embed_content(model="gemini-embedding-001", contents=PROMPT)
    a = only_span(observed).attributes
    assert "gen_ai.usage.input_tokens" not in a
    assert "gen_ai.usage.cost" not in a
    assert a["costspan.cost.status"] == "no_usage"


# --- Vertex AI ----------------------------------------------------------------------------------


def test_vertex_ai_express_mode(observed, instrumented, server) -> None:
    client = genai.Client(
        vertexai=True, api_key="test", http_options=types.HttpOptions(base_url=server.base_url)
    )
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    client.models.embed_content(model="gemini-embedding-001", contents=PROMPT)
    generate, embed = observed.llm_spans()
    assert "/publishers/google/models/gemini-2.5-flash:generateContent" in server.requests[0].path
    assert generate.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert generate.attributes["gen_ai.usage.cost"] == float(FLASH_COST)
    assert embed.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert embed.attributes["gen_ai.usage.input_tokens"] == 12


# --- retries and failures -----------------------------------------------------------------------


def test_retry_then_success_is_one_span(observed, instrumented, server) -> None:
    server.script(gemini_error(429, "slow down"))
    client = make_client(
        server, retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.01, jitter=0)
    )
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert len(server.requests) == 2
    assert_flash_span(only_span(observed), server)


def test_sdk_does_not_retry_by_default(observed, instrumented, server, client) -> None:
    server.script(gemini_error(429, "slow down"))
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "exc_class"), [(400, errors.ClientError), (500, errors.ServerError)])
def test_failing_call(observed, instrumented, server, client, status, exc_class) -> None:
    server.script(gemini_error(status, "nope"))
    with pytest.raises(exc_class) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert type(caught.value) is exc_class
    assert caught.value.code == status
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == str(status)
    assert span.attributes["costspan.cost.status"] == "no_usage"
    assert_no_text(span)


def test_failing_async_call_reraises_same_exception(observed, instrumented, server, client) -> None:
    server.script(gemini_error(403, "denied"))

    async def run() -> Any:
        return await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)

    with pytest.raises(errors.ClientError):
        asyncio.run(run())
    assert only_span(observed).attributes["error.type"] == "403"


def test_non_api_exception_uses_class_name(observed, instrumented) -> None:
    # Nothing listens on this port: the SDK's transport error reaches the caller unchanged.
    with FakeProviderServer() as s:
        url = s.base_url
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=url))
    with pytest.raises(Exception) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert only_span(observed).attributes["error.type"] == type(caught.value).__qualname__


# --- metrics ------------------------------------------------------------------------------------


def test_metrics(observed, instrumented, server) -> None:
    client = make_client(server)
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in observed.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 2 * INPUT, "output": 2 * OUTPUT}
    (cost,) = observed.metric_points("costspan.cost")
    assert cost.value == pytest.approx(float(2 * FLASH_COST), rel=1e-12)


# --- lifecycle ----------------------------------------------------------------------------------


def test_dependencies() -> None:
    assert GoogleGenAIInstrumentor().instrumentation_dependencies() == ("google-genai >= 3.1, < 4",)


def test_uninstrument_restores_originals(observed, server, client) -> None:
    from google.genai import _extra_utils

    originals = {(cls, m): cls.__dict__[m] for cls in (Models, AsyncModels) for m in METHODS}
    originals.update({(_extra_utils, f): _extra_utils.__dict__[f] for f in AFC_FUNCTIONS})
    inst = GoogleGenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        assert all(cls.__dict__[m] is not orig for (cls, m), orig in originals.items())
    finally:
        # BaseInstrumentor is a singleton: a fresh `GoogleGenAIInstrumentor()` must still uninstrument.
        GoogleGenAIInstrumentor().uninstrument()
    assert all(cls.__dict__[m] is orig for (cls, m), orig in originals.items())
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert observed.llm_spans() == []


# --- automatic function calling: several requests, one span, every request's usage ---------------

HOP1 = GeminiUsage(prompt_tokens=500, candidates_tokens=20, cached_tokens=100, thoughts_tokens=30)
AFC_INPUT = HOP1.prompt_tokens + INPUT
AFC_OUTPUT = HOP1.candidates_tokens + HOP1.thoughts_tokens + OUTPUT
AFC_CACHED = HOP1.cached_tokens + CACHED
AFC_COST = ((AFC_INPUT - AFC_CACHED) * FLASH_IN + AFC_CACHED * FLASH_CACHED + AFC_OUTPUT * FLASH_OUT) / MTOK


def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def assert_afc_span(observed: Any, server: FakeProviderServer) -> None:
    assert len(server.requests) == 2
    span = only_span(observed)
    a = span.attributes
    assert span.name == "generate_content gemini-2.5-flash"
    assert a["gen_ai.usage.input_tokens"] == AFC_INPUT
    assert a["gen_ai.usage.output_tokens"] == AFC_OUTPUT
    assert a["gen_ai.usage.cache_read.input_tokens"] == AFC_CACHED
    assert a["gen_ai.usage.reasoning.output_tokens"] == HOP1.thoughts_tokens + REASONING
    assert a["gen_ai.usage.cost"] == float(AFC_COST)
    assert_no_text(span)


def test_afc_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(function_call_reply("get_weather", {"city": "Paris"}, HOP1))
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert response.text == "Hello from the fake Gemini."
    assert_afc_span(observed, server)


def test_afc_async_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(function_call_reply("get_weather", {"city": "Paris"}, HOP1))

    async def run() -> Any:
        return await client.aio.models.generate_content(
            model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
        )

    asyncio.run(run())
    assert_afc_span(observed, server)


def test_afc_stream_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(function_call_reply("get_weather", {"city": "Paris"}, HOP1, stream=True))
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
        )
    )
    assert chunks
    assert_afc_span(observed, server)


def test_afc_async_stream_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(function_call_reply("get_weather", {"city": "Paris"}, HOP1, stream=True))

    async def run() -> None:
        stream = await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
        )
        async for _ in stream:
            pass

    asyncio.run(run())
    assert_afc_span(observed, server)


# --- automatic continuation: no tools, several requests, the SDK sums their usage -----------------


def assert_continued_span(observed: Any, server: FakeProviderServer) -> None:
    assert len(server.requests) == 2
    assert "continuationToken" in server.requests[1].body.decode()  # the SDK did continue
    span = only_span(observed)
    a = span.attributes
    assert a["gen_ai.usage.input_tokens"] == AFC_INPUT
    assert a["gen_ai.usage.output_tokens"] == AFC_OUTPUT
    assert a["gen_ai.usage.cache_read.input_tokens"] == AFC_CACHED
    assert a["gen_ai.usage.reasoning.output_tokens"] == HOP1.thoughts_tokens + REASONING
    assert a["gen_ai.usage.cost"] == float(AFC_COST)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)


def test_continuation_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(continuation_reply("Hello from ", HOP1))
    response = client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert response.text == "Hello from Hello from the fake Gemini."
    assert_continued_span(observed, server)


def test_continuation_async_sums_every_request(observed, instrumented, server, client) -> None:
    server.script(continuation_reply("Hello from ", HOP1))

    async def run() -> Any:
        return await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)

    asyncio.run(run())
    assert_continued_span(observed, server)


def test_afc_tool_that_calls_the_model_is_its_own_span(observed, instrumented, server, client) -> None:
    """A tool that makes its own LLM call (an agent calling a sub-agent): that call's usage is on its
    own span, not added to the call that ran the tool."""
    inner_usage = GeminiUsage(prompt_tokens=700, candidates_tokens=70)

    def ask_expert(question: str) -> str:
        """Ask a second model."""
        server.script(
            Reply(
                body={
                    "candidates": [{"content": {"role": "model", "parts": [{"text": "because"}]}}],
                    "usageMetadata": inner_usage.as_json(),
                    "modelVersion": "gemini-2.5-flash",
                }
            )
        )
        return client.models.generate_content(model="gemini-2.5-flash", contents=question).text or ""

    server.script(function_call_reply("ask_expert", {"question": "why?"}, HOP1))
    client.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[ask_expert])
    )
    assert len(server.requests) == 3
    inner, outer = observed.llm_spans()  # the tool's call ends first
    assert inner.parent.span_id == outer.context.span_id
    assert inner.attributes["gen_ai.usage.input_tokens"] == 700
    assert inner.attributes["gen_ai.usage.output_tokens"] == 70
    assert outer.attributes["gen_ai.usage.input_tokens"] == AFC_INPUT
    assert outer.attributes["gen_ai.usage.output_tokens"] == AFC_OUTPUT
    assert outer.attributes["gen_ai.usage.cost"] == float(AFC_COST)


# --- Vertex AI with project/location and (fake) OAuth credentials ---------------------------------


def test_vertex_ai_project_location(observed, instrumented, server) -> None:
    client = genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=fake_credentials(),
        http_options=types.HttpOptions(base_url=server.base_url),
    )
    client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    client.models.embed_content(model="text-embedding-005", contents=[PROMPT, "two"])
    prefix = "/v1beta1/projects/p/locations/us-central1/publishers/google/models/"
    assert [r.path.split("?")[0] for r in server.requests] == [
        prefix + "gemini-2.5-flash:generateContent",
        prefix + "gemini-2.5-flash:streamGenerateContent",
        prefix + "text-embedding-005:predict",
    ]
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer fake-token"}
    generate, stream, embed = observed.llm_spans()
    for span in (generate, stream):
        assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert span.attributes["gen_ai.usage.cost"] == float(FLASH_COST)
    # The :predict endpoint reports tokens per embedding (statistics.token_count): 12 + 12.
    assert embed.name == "embeddings text-embedding-005"
    assert embed.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert embed.attributes["gen_ai.usage.input_tokens"] == 24
    client.close()


# --- robustness ----------------------------------------------------------------------------------


def test_stream_span_is_current_while_sdk_requests(observed, instrumented, server, client) -> None:
    from opentelemetry import trace

    seen: list[Any] = []
    api_client = client.models._api_client
    real_request = api_client.request_streamed

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context())
        return real_request(*args, **kwargs)

    api_client.request_streamed = spy  # type: ignore[method-assign]
    list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    assert seen == [only_span(observed).get_span_context()]


def test_instrumentation_fault_never_reaches_caller(
    observed, instrumented, server, client, monkeypatch
) -> None:
    from costspan.instrumentation.google_genai import response as module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    before = module.FAULTS.counts().get("google-genai response", 0)
    monkeypatch.setattr(module, "_set_generate_usage", broken)
    response = client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert response.text == "Hello from the fake Gemini."
    assert module.FAULTS.counts()["google-genai response"] == before + 1
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["costspan.cost.status"] == "no_usage"


def test_noop_when_google_genai_missing(observed, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "google.genai.models", None)
    inst = GoogleGenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, skip_dep_check=True)
    assert inst._patched == []
    inst.uninstrument()


def test_entry_point() -> None:
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["opentelemetry_instrumentor"]["costspan_google_genai"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is GoogleGenAIInstrumentor
    installed = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "costspan_google_genai"
    ]
    if not installed:
        pytest.skip("costspan's installed metadata predates the entry point: reinstall (pip install -e .)")
    assert installed[0].load() is GoogleGenAIInstrumentor


def test_afc_failure_after_a_billed_request_keeps_its_usage(observed, instrumented, server, client) -> None:
    server.script(function_call_reply("get_weather", {"city": "Paris"}, HOP1))
    server.script(gemini_error(500, "boom"))
    with pytest.raises(errors.ServerError):
        client.models.generate_content(
            model="gemini-2.5-flash", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
        )
    span = only_span(observed)
    a = span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert a["error.type"] == "500"
    assert a["gen_ai.usage.input_tokens"] == HOP1.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == HOP1.candidates_tokens + HOP1.thoughts_tokens
    hop1_in = HOP1.prompt_tokens - HOP1.cached_tokens
    hop1_out = HOP1.candidates_tokens + HOP1.thoughts_tokens
    expected = (hop1_in * FLASH_IN + HOP1.cached_tokens * FLASH_CACHED + hop1_out * FLASH_OUT) / MTOK
    assert a["gen_ai.usage.cost"] == float(expected)
