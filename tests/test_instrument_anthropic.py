"""AnthropicInstrumentor against the real anthropic SDK talking to a local fake Anthropic server
(first-party API, Amazon Bedrock, Google Vertex AI)."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

pytest.importorskip("anthropic")

import anthropic
from anthropic import (
    Anthropic,
    AnthropicBedrock,
    AnthropicVertex,
    AsyncAnthropic,
    AsyncAnthropicBedrock,
    AsyncAnthropicVertex,
)
from anthropic import _base_client as base_client
from anthropic.types.beta import BetaMessage

import costspan
from costspan import attributes as A
from costspan.instrumentation.anthropic import AnthropicInstrumentor
from costspan.testing import FakeProviderServer, Reply
from costspan.testing.anthropic import (
    AnthropicUsage,
    add_anthropic_routes,
    anthropic_error,
    bedrock_error,
    vertex_error,
)

# These tests read the cost parts too: on by default they are not (COSTSPAN_COST_ATTRIBUTES).
pytestmark = pytest.mark.usefixtures("cost_parts")

MTOK = Decimal(1_000_000)
# Published prices (USD per million tokens): input, cache read, cache write (5 min), output.
HAIKU_45 = (Decimal("1"), Decimal("0.10"), Decimal("1.25"), Decimal("5"))
SONNET_46 = (Decimal("3"), Decimal("0.30"), Decimal("3.75"), Decimal("15"))
SONNET_46_BEDROCK = (Decimal("3.30"), Decimal("0.33"), Decimal("4.125"), Decimal("16.50"))  # regional

PROMPT = "SECRET-PROMPT-7f3a tell me about cost"
MESSAGES = [{"role": "user", "content": PROMPT}]
TEXT = "Hello from the fake Claude."
# Anthropic's terms: `input_tokens` EXCLUDES cache reads and cache writes.
UNCACHED, CACHE_READ, CACHE_WRITE, OUTPUT = 1000, 400, 300, 200
INPUT = UNCACHED + CACHE_READ + CACHE_WRITE  # semconv: input includes cache
USAGE = AnthropicUsage(
    input_tokens=UNCACHED,
    output_tokens=OUTPUT,
    cache_creation_input_tokens=CACHE_WRITE,
    cache_read_input_tokens=CACHE_READ,
)

MODEL = "claude-haiku-4-5"
SNAPSHOT = "claude-haiku-4-5-20251001"
# Sonnet 4.6 has no dated snapshots: Bedrock and Vertex take bare ids and the API answers with the
# model's own name.
BEDROCK_MODEL = "anthropic.claude-sonnet-4-6"
VERTEX_MODEL = "claude-sonnet-4-6"
SONNET_RESPONSE_MODEL = "claude-sonnet-4-6"
MESSAGE_ID = "msg_fake0123456789"


def cost(prices: tuple[Decimal, Decimal, Decimal, Decimal]) -> Decimal:
    p_in, p_read, p_write, p_out = prices
    return (UNCACHED * p_in + CACHE_READ * p_read + CACHE_WRITE * p_write + OUTPUT * p_out) / MTOK


HAIKU_COST = cost(HAIKU_45)
KW: dict[str, Any] = {
    "model": MODEL,
    "messages": MESSAGES,
    "max_tokens": 256,
    "stop_sequences": ["END"],
    # anthropic 2.x has no typed sampling parameters: they go in `extra_body`.
    "extra_body": {"temperature": 0.5, "top_p": 0.9, "top_k": 40},
}


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_anthropic_routes(s, usage=USAGE, text=TEXT)
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[AnthropicInstrumentor]:
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


def make_client(server: FakeProviderServer, **kwargs: Any) -> Anthropic:
    kwargs.setdefault("max_retries", 2)
    kwargs.setdefault("open_telemetry", False)
    return Anthropic(base_url=server.base_url, api_key="test", **kwargs)


def make_async_client(server: FakeProviderServer, **kwargs: Any) -> AsyncAnthropic:
    kwargs.setdefault("max_retries", 2)
    kwargs.setdefault("open_telemetry", False)
    return AsyncAnthropic(base_url=server.base_url, api_key="test", **kwargs)


def sdk_traced(observed: Any) -> dict[str, Any]:
    """The client option that turns the SDK's own spans on, into the test's provider."""
    return {"open_telemetry": {"tracer_provider": observed.tracer_provider}}


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[Anthropic]:
    c = make_client(server)
    yield c
    c.close()


def only_span(observed: Any) -> Any:
    spans = observed.llm_spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    return spans[0]


def assert_no_text(span: Any) -> None:
    for value in span.attributes.values():
        for text in value if isinstance(value, tuple) else (value,):
            assert "SECRET-PROMPT" not in str(text)
            assert "fake Claude" not in str(text)
    for event in span.events:
        assert "SECRET-PROMPT" not in str(dict(event.attributes or {}))


def assert_chat_span(
    span: Any,
    server: FakeProviderServer,
    *,
    model: str = MODEL,
    response_model: str = SNAPSHOT,
    prices: tuple[Decimal, Decimal, Decimal, Decimal] = HAIKU_45,
    provider: str = "anthropic",
) -> None:
    a = span.attributes
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "costspan.instrumentation.anthropic"
    assert span.status.status_code is not StatusCode.ERROR
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == provider
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.response.model"] == response_model
    assert a["gen_ai.response.id"] == MESSAGE_ID
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    assert a["gen_ai.usage.input_tokens"] == INPUT
    assert a["gen_ai.usage.output_tokens"] == OUTPUT
    assert a["gen_ai.usage.cache_read.input_tokens"] == CACHE_READ
    assert a["gen_ai.usage.cache_creation.input_tokens"] == CACHE_WRITE
    assert "gen_ai.usage.reasoning.output_tokens" not in a
    p_in, p_read, p_write, p_out = prices
    assert a["gen_ai.usage.cost"] == float(cost(prices))
    assert a["costspan.cost.input_usd"] == float(UNCACHED * p_in / MTOK)
    assert a["costspan.cost.cache_read_usd"] == float(CACHE_READ * p_read / MTOK)
    assert a["costspan.cost.cache_write_usd"] == float(CACHE_WRITE * p_write / MTOK)
    assert a["costspan.cost.output_usd"] == float(OUTPUT * p_out / MTOK)
    assert a["costspan.cost.status"] == "priced"
    assert "costspan.price.source" not in a  # the bundled card, the default, is not named
    assert "error.type" not in a
    assert_no_text(span)


def assert_request_attrs(span: Any) -> None:
    a = span.attributes
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.top_k"] == 40
    assert a["gen_ai.request.stop_sequences"] == ("END",)


def test_expected_dollars_by_hand() -> None:
    # 1000 x $1 + 400 x $0.10 + 300 x $1.25 + 200 x $5, per million tokens.
    expected = {"haiku": HAIKU_COST, "sonnet on bedrock": cost(SONNET_46_BEDROCK)}
    assert expected == {"haiku": Decimal("0.002415"), "sonnet on bedrock": Decimal("0.0079695")}


# --- messages.create ------------------------------------------------------------------------------


def test_create_sync(observed, instrumented, server, client) -> None:
    message = client.messages.create(**KW)
    assert message.content[0].text == TEXT
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)
    assert len(server.requests) == 1


def test_create_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.messages.create(**KW)

    assert asyncio.run(run()).usage.input_tokens == UNCACHED
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)


def test_span_is_current_during_the_request(observed, instrumented, server) -> None:
    seen: list[Any] = []

    def middleware(request: Any, call_next: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context())
        return call_next(request)

    client = make_client(server, middleware=[middleware])
    client.messages.create(**KW)
    assert seen == [only_span(observed).get_span_context()]


def test_parse_and_beta_messages(observed, instrumented, server, client) -> None:
    assert client.messages.parse(model=MODEL, max_tokens=256, messages=MESSAGES).id == MESSAGE_ID
    assert isinstance(
        client.beta.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES), BetaMessage
    )
    with client.beta.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        assert stream.get_final_text() == TEXT
    spans = observed.llm_spans()
    assert len(spans) == 3
    for span in spans:
        assert_chat_span(span, server)


def test_count_tokens_is_not_a_call(observed, instrumented, server, client) -> None:
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == 42
    assert observed.llm_spans() == []
    assert observed.metric_points("gen_ai.client.operation.duration") == []


def test_thinking_tokens_are_reasoning_output(observed, instrumented) -> None:
    """Anthropic's `output_tokens` includes thinking: reported apart as reasoning, priced as output."""
    with FakeProviderServer() as s:
        add_anthropic_routes(s, usage=AnthropicUsage(**{**vars(USAGE), "thinking_tokens": 150}), text=TEXT)
        client = make_client(s)
        client.messages.create(**KW)
        with client.messages.stream(**KW) as stream:
            stream.until_done()
        spans = observed.llm_spans()
        assert len(spans) == 2
        for span in spans:
            assert span.attributes["gen_ai.usage.reasoning.output_tokens"] == 150
            assert span.attributes["gen_ai.usage.output_tokens"] == OUTPUT
            assert span.attributes["gen_ai.usage.cost"] == float(HAIKU_COST)


# --- streams ------------------------------------------------------------------------------------


def _event_dicts(events: Any) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


def test_stream_sync_iterator_hides_nothing(observed, server, client) -> None:
    uninstrumented = _event_dicts(client.messages.create(**KW, stream=True))
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        instrumented = _event_dicts(client.messages.create(**KW, stream=True))
    finally:
        inst.uninstrument()
    assert instrumented == uninstrumented
    kinds = [e["type"] for e in instrumented]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)


def test_stream_sync_context_manager(observed, instrumented, server, client) -> None:
    with client.messages.create(**KW, stream=True) as stream:
        text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == TEXT
    assert_chat_span(only_span(observed), server)


def test_stream_output_only_delta_usage(observed, instrumented) -> None:
    """Older API versions sent only `output_tokens` in `message_delta`: input comes from message_start."""
    with FakeProviderServer() as s:
        add_anthropic_routes(s, usage=USAGE, text=TEXT, cumulative_delta_usage=False)
        list(make_client(s).messages.create(**KW, stream=True))
        assert_chat_span(only_span(observed), s)


def test_stream_async_iterator_and_context_manager(observed, instrumented, server) -> None:
    async def run() -> list[list[dict[str, Any]]]:
        async with make_async_client(server) as c:
            stream = await c.messages.create(**KW, stream=True)
            first = [e.to_dict() async for e in stream]
            async with await c.messages.create(**KW, stream=True) as stream2:
                second = [e.to_dict() async for e in stream2]
            return [first, second]

    first, second = asyncio.run(run())
    assert first == second
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert_chat_span(span, server)


def test_stream_helper_sync(observed, instrumented, server, client) -> None:
    with client.messages.stream(**KW) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.usage.output_tokens == OUTPUT
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)


def test_stream_helper_events_and_final_message(observed, instrumented, server, client) -> None:
    with client.messages.stream(**KW) as stream:
        kinds = [event.type for event in stream]
        assert stream.get_final_message().content[0].text == TEXT
    assert "text" in kinds and kinds[-1] == "message_stop"
    assert_chat_span(only_span(observed), server)


def test_stream_helper_async(observed, instrumented, server) -> None:
    async def run() -> tuple[str, Any]:
        async with make_async_client(server) as c, c.messages.stream(**KW) as stream:
            text = "".join([t async for t in stream.text_stream])
            return text, await stream.get_final_message()

    text, final = asyncio.run(run())
    assert text == TEXT
    assert final.usage.cache_read_input_tokens == CACHE_READ
    assert_chat_span(only_span(observed), server)


def test_stream_helper_left_early_ends_span(observed, instrumented, server, client) -> None:
    with client.messages.stream(**KW) as stream:
        for _ in stream:
            break
        assert observed.llm_spans() == []
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["gen_ai.response.model"] == SNAPSHOT
    # Left before message_delta: the output count is message_start's placeholder, not the final one.
    assert span.attributes[A.COST_STATUS] == A.STATUS_INCOMPLETE_USAGE
    assert span.attributes["gen_ai.usage.input_tokens"] == INPUT  # from message_start
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert A.GEN_AI_USAGE_COST not in span.attributes


def test_abandoned_stream_ends_span(observed, instrumented, server, client) -> None:
    stream = client.messages.create(**KW, stream=True)
    for _ in stream:
        break
    assert observed.llm_spans() == []
    del stream
    gc.collect()
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["gen_ai.response.id"] == MESSAGE_ID


def test_closed_stream_ends_span(observed, instrumented, server, client) -> None:
    stream = client.messages.create(**KW, stream=True)
    next(iter(stream))
    stream.close()
    assert only_span(observed).end_time is not None


def test_async_stream_closed_ends_span(observed, instrumented, server) -> None:
    async def run() -> None:
        async with make_async_client(server) as c:
            stream = await c.messages.create(**KW, stream=True)
            await stream.__anext__()
            await stream.close()

    asyncio.run(run())
    assert only_span(observed).end_time is not None


def _error_midway() -> Reply:
    start = {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": SNAPSHOT,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": USAGE.json(output_tokens=1),
    }
    return Reply.sse(
        [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
            ),
            ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
    )


def test_stream_error_midway(observed, instrumented, server, client) -> None:
    server.script(_error_midway())
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in client.messages.create(**KW, stream=True):
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert info.value.type == "overloaded_error"
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "overloaded_error"
    assert span.attributes["gen_ai.usage.input_tokens"] == INPUT  # the input was reported (and billed)


def test_stream_helper_error_midway_async(observed, instrumented, server) -> None:
    server.script(_error_midway())

    async def run() -> None:
        async with make_async_client(server) as c, c.messages.stream(**KW) as stream:
            await stream.get_final_message()

    with pytest.raises(anthropic.APIStatusError):
        asyncio.run(run())
    span = only_span(observed)
    assert span.attributes["error.type"] == "overloaded_error"


# --- raw responses --------------------------------------------------------------------------------


def test_with_raw_response(observed, instrumented, server, client) -> None:
    raw = client.messages.with_raw_response.create(**KW)
    assert raw.http_response.status_code == 200
    assert raw.parse().usage.output_tokens == OUTPUT
    assert_chat_span(only_span(observed), server)


def test_with_raw_response_stream(observed, instrumented, server, client) -> None:
    raw = client.messages.with_raw_response.create(**KW, stream=True)
    kinds = [e.type for e in raw.parse()]
    assert kinds[-1] == "message_stop"
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with (
            make_async_client(server) as c,
            c.messages.with_streaming_response.create(**KW) as response,
        ):
            return await response.parse()

    assert asyncio.run(run()).id == MESSAGE_ID
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response_never_parsed_ends_span(observed, instrumented, server, client) -> None:
    with client.messages.with_streaming_response.create(**KW) as response:
        assert response.http_response.status_code == 200
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["costspan.cost.status"] == "no_usage"


# --- Bedrock and Vertex AI ------------------------------------------------------------------------


def bedrock(server: FakeProviderServer, cls: type = AnthropicBedrock, **kwargs: Any) -> Any:
    kwargs.setdefault("open_telemetry", False)
    return cls(base_url=server.base_url, api_key="test", aws_region="us-east-1", **kwargs)


def vertex(server: FakeProviderServer, cls: type = AnthropicVertex, **kwargs: Any) -> Any:
    kwargs.setdefault("open_telemetry", False)
    return cls(base_url=server.base_url, region="us-east5", project_id="proj", access_token="token", **kwargs)


def assert_bedrock_span(span: Any, server: FakeProviderServer) -> None:
    assert_chat_span(
        span,
        server,
        model=BEDROCK_MODEL,
        response_model=SONNET_RESPONSE_MODEL,
        prices=SONNET_46_BEDROCK,
        provider="aws.bedrock",
    )


def assert_vertex_span(span: Any, server: FakeProviderServer) -> None:
    assert_chat_span(
        span,
        server,
        model=VERTEX_MODEL,
        response_model=SONNET_RESPONSE_MODEL,
        prices=SONNET_46,
        provider="gcp.vertex_ai",
    )


def test_bedrock_create(observed, instrumented, server) -> None:
    bedrock(server).messages.create(**{**KW, "model": BEDROCK_MODEL})
    assert server.requests[-1].path == f"/model/{BEDROCK_MODEL}/invoke"
    assert_bedrock_span(only_span(observed), server)


def test_bedrock_stream(observed, instrumented, server) -> None:
    with bedrock(server).messages.stream(**{**KW, "model": BEDROCK_MODEL}) as stream:
        assert "".join(stream.text_stream) == TEXT
    assert server.requests[-1].path == f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    assert_bedrock_span(only_span(observed), server)


def test_bedrock_async(observed, instrumented, server) -> None:
    async def run() -> list[str]:
        client = bedrock(server, AsyncAnthropicBedrock)
        await client.messages.create(**{**KW, "model": BEDROCK_MODEL})
        stream = await client.messages.create(**{**KW, "model": BEDROCK_MODEL}, stream=True)
        return [e.type async for e in stream]

    assert asyncio.run(run())[-1] == "message_stop"
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert_bedrock_span(span, server)


def test_bedrock_throttled_then_success(observed, instrumented, server) -> None:
    server.script(bedrock_error(429, "Too many requests"))
    bedrock(server).messages.create(**{**KW, "model": BEDROCK_MODEL})
    assert len(server.requests) == 2
    assert_bedrock_span(only_span(observed), server)


def test_vertex_create_and_stream(observed, instrumented, server) -> None:
    client = vertex(server)
    client.messages.create(**{**KW, "model": VERTEX_MODEL})
    assert server.requests[-1].path.endswith(f"/publishers/anthropic/models/{VERTEX_MODEL}:rawPredict")
    list(client.messages.create(**{**KW, "model": VERTEX_MODEL}, stream=True))
    assert server.requests[-1].path.endswith(":streamRawPredict")
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert_vertex_span(span, server)


def test_vertex_async_stream_helper(observed, instrumented, server) -> None:
    async def run() -> str:
        client = vertex(server, AsyncAnthropicVertex)
        async with client.messages.stream(**{**KW, "model": VERTEX_MODEL}) as stream:
            return await stream.get_final_text()

    assert asyncio.run(run()) == TEXT
    assert_vertex_span(only_span(observed), server)


def test_vertex_rate_limited_then_success(observed, instrumented, server) -> None:
    server.script(vertex_error(429, "Quota exceeded"))
    vertex(server).messages.create(**{**KW, "model": VERTEX_MODEL})
    assert len(server.requests) == 2
    assert_vertex_span(only_span(observed), server)


def test_bedrock_global_inference_profile_priced_at_global_price(observed, instrumented, server) -> None:
    model = "global." + BEDROCK_MODEL
    bedrock(server).messages.create(**{**KW, "model": model})
    span = only_span(observed)
    assert span.attributes["gen_ai.response.model"] == SONNET_RESPONSE_MODEL  # what Bedrock answers
    assert span.attributes["gen_ai.usage.cost"] == float(cost(SONNET_46))


# --- retries and failures -----------------------------------------------------------------------


def _parent_attrs(observed: Any, name: str) -> Any:
    (parent,) = [s for s in observed.finished() if s.name == name]
    return parent.attributes


def test_429_then_success_is_one_priced_span(observed, instrumented, server, client) -> None:
    server.script(anthropic_error(429, "slow down", retry_after_s=0.001))
    client.messages.create(**KW)
    assert len(server.requests) == 2
    assert_chat_span(only_span(observed), server)


def test_429_then_success_stream(observed, instrumented, server, client) -> None:
    server.script(anthropic_error(429, "slow down", retry_after_s=0.001))
    with client.messages.stream(**KW) as stream:
        stream.until_done()
    assert len(server.requests) == 2
    assert_chat_span(only_span(observed), server)


def test_500_without_retries_fails_span(observed, instrumented, server) -> None:
    server.script(anthropic_error(500, "boom"))
    client = make_client(server, max_retries=0)
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent"), pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(**KW)
    assert info.value.status_code == 500
    assert len(server.requests) == 1
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"
    assert span.name == f"chat {MODEL}"
    assert "gen_ai.usage.cost" not in span.attributes
    assert_no_text(span)
    parent = _parent_attrs(observed, "parent")
    assert parent["costspan.rollup.failed_calls"] == 1
    assert parent["costspan.rollup.llm_calls"] == 1


def test_exception_is_the_same_object(observed, instrumented, server) -> None:
    server.script(anthropic_error(400, "bad request"))
    client = make_client(server, max_retries=0)
    seen: list[BaseException] = []
    real_request = client._request  # what the SDK's `request` (which costspan wraps) calls

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_request(*args, **kwargs)
        except BaseException as exc:
            seen.append(exc)
            raise

    client._request = spy  # type: ignore[method-assign]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**KW)
    assert seen == [info.value]
    assert info.value.type == "invalid_request_error"
    assert only_span(observed).attributes["error.type"] == "400"


def test_timeout_fails_span(observed, instrumented, server) -> None:
    server.script(Reply(200, {}, delay_s=1.0))
    client = make_client(server, max_retries=0, timeout=0.2)
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent"), pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**KW)
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "APITimeoutError"
    assert _parent_attrs(observed, "parent")["costspan.rollup.failed_calls"] == 1


def test_async_failure_reraises(observed, instrumented, server) -> None:
    server.script(anthropic_error(529, "overloaded"))

    async def run() -> None:
        async with make_async_client(server, max_retries=0) as c:
            await c.messages.create(**KW)

    with pytest.raises(anthropic.APIStatusError) as info:
        asyncio.run(run())
    assert info.value.status_code == 529
    assert only_span(observed).attributes["error.type"] == "529"


def test_cancelled_async_call(observed, instrumented, server) -> None:
    server.script(Reply(200, {}, delay_s=1.0))

    async def run() -> None:
        async with make_async_client(server, max_retries=0) as c:
            task = asyncio.ensure_future(c.messages.create(**KW))
            await asyncio.sleep(0.1)
            task.cancel()
            await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert only_span(observed).attributes["error.type"] == "CancelledError"


def test_instrumentation_fault_never_reaches_caller(
    observed, instrumented, server, client, monkeypatch
) -> None:
    from costspan.instrumentation.anthropic import response as module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    before = module.FAULTS.counts().get("anthropic response", 0)
    monkeypatch.setattr(module, "_set_usage", broken)
    assert client.messages.create(**KW).content[0].text == TEXT
    assert module.FAULTS.counts()["anthropic response"] == before + 1
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["costspan.cost.status"] == "no_usage"


def test_stream_fault_never_reaches_caller(observed, instrumented, server, client, monkeypatch) -> None:
    from costspan.instrumentation.anthropic import stream as module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(module._StreamUsage, "on_item", broken)
    with client.messages.stream(**KW) as stream:
        assert stream.get_final_text() == TEXT
    assert only_span(observed).end_time is not None


# --- one span per call, whoever emits it ----------------------------------------------------------


def sdk_spans(observed: Any) -> list[Any]:
    return [s for s in observed.finished() if s.instrumentation_scope.name.startswith("com.anthropic.sdk")]


def test_sdk_tracing_on_and_instrumented_one_span_per_call(observed, instrumented, server) -> None:
    client = make_client(server, **sdk_traced(observed))
    with costspan.task("t", customer_id="c1", tracer_provider=observed.tracer_provider):
        client.messages.create(**KW)
    span = only_span(observed)
    assert_chat_span(span, server)
    assert sdk_spans(observed) == []
    priced = [s for s in observed.finished() if "gen_ai.usage.cost" in s.attributes]
    assert priced == [span]
    task = _parent_attrs(observed, "t")
    assert task["costspan.rollup.cost_usd"] == float(HAIKU_COST)
    assert task["costspan.rollup.llm_calls"] == 1
    # The SDK still propagates the call's trace context: costspan's span's.
    traceparent = server.requests[-1].headers["traceparent"]
    ctx = span.get_span_context()
    assert traceparent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_sdk_trace_headers_go_with_the_callers_headers(observed, instrumented, server) -> None:
    client = make_client(server, **sdk_traced(observed))
    with costspan.task("t", customer_id="c1", tracer_provider=observed.tracer_provider):
        client.messages.create(
            **KW, extra_headers={"x-team": "ops", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        )
    headers = server.requests[-1].headers
    ctx = only_span(observed).get_span_context()
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert headers["x-team"] == "ops"
    assert "costspan.customer_id=c1" in headers["baggage"]  # the global propagator's, as the SDK sends
    assert sdk_spans(observed) == []


def test_sdk_propagation_off_sends_no_trace_headers(observed, instrumented, server) -> None:
    options = {"tracer_provider": observed.tracer_provider, "propagation": False}
    client = make_client(server, open_telemetry=options)
    client.messages.create(**KW)
    assert_chat_span(only_span(observed), server)
    assert "traceparent" not in server.requests[-1].headers
    assert sdk_spans(observed) == []


def test_sdk_tracing_on_every_call_style_one_span(observed, instrumented, server) -> None:
    client = make_client(server, **sdk_traced(observed))
    list(client.messages.create(**KW, stream=True))
    with client.messages.stream(**KW) as stream:
        stream.until_done()
    client.beta.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)

    async def run() -> None:
        async with make_async_client(server, **sdk_traced(observed)) as c:
            await c.messages.create(**KW)
            async with c.messages.stream(**KW) as s:
                await s.until_done()

    asyncio.run(run())
    server.script(anthropic_error(500, "boom"))
    with pytest.raises(anthropic.InternalServerError):
        make_client(server, max_retries=0, **sdk_traced(observed)).messages.create(**KW)
    spans = observed.llm_spans()
    assert len(spans) == 6
    assert sdk_spans(observed) == []
    assert sum(1 for s in spans if "gen_ai.usage.cost" in s.attributes) == 5
    assert spans[-1].attributes["error.type"] == "500"


def test_sdk_tracing_keeps_non_call_spans(observed, instrumented, server) -> None:
    client = make_client(server, **sdk_traced(observed))
    client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    (count_span,) = sdk_spans(observed)
    assert count_span.name == "anthropic.messages.count_tokens"
    assert "gen_ai.usage.cost" not in count_span.attributes
    assert "costspan.cost.status" not in count_span.attributes  # not an LLM call for the processor


def test_sdk_own_span_priced_once_without_instrumentor(observed, server) -> None:
    """Not instrumented: the SDK's own span is the call's span, and the CostSpanProcessor prices it."""
    client = make_client(server, **sdk_traced(observed))
    with costspan.task("t", tracer_provider=observed.tracer_provider):
        client.messages.create(**KW)
        with client.messages.stream(**KW) as stream:
            stream.until_done()
    spans = sdk_spans(observed)
    assert [s.name for s in spans] == ["anthropic.messages.create"] * 2
    for span in spans:
        a = span.attributes
        assert a["gen_ai.usage.input_tokens"] == INPUT  # the SDK's count includes cache too
        assert a["gen_ai.usage.cost"] == float(HAIKU_COST)
    task = _parent_attrs(observed, "t")
    assert task["costspan.rollup.cost_usd"] == float(2 * HAIKU_COST)
    assert task["costspan.rollup.llm_calls"] == 2


def test_sdk_tracing_off_by_environment(observed, instrumented, server, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    client = Anthropic(base_url=server.base_url, api_key="test")  # reads the environment
    assert client.open_telemetry["traces"]["enabled"] is False
    client.messages.create(**KW)
    assert_chat_span(only_span(observed), server)
    assert "traceparent" not in server.requests[-1].headers  # the SDK propagates nothing then


def test_uninstrument_gives_the_sdk_its_span_back(observed, server) -> None:
    client = make_client(server, **sdk_traced(observed))
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        client.messages.create(**KW)
    finally:
        inst.uninstrument()
    client.messages.create(**KW)
    names = [s.name for s in observed.llm_spans()]
    assert names == [f"chat {MODEL}", "anthropic.messages.create"]


def test_sdk_span_of_a_call_outside_costspan_is_untouched(observed, instrumented, server) -> None:
    """A request that is not a Messages call keeps its SDK span even while a costspan call is active."""
    client = make_client(server, **sdk_traced(observed))
    client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    client.messages.create(**KW)
    assert [s.name for s in sdk_spans(observed)] == ["anthropic.messages.count_tokens"]
    assert len(observed.llm_spans()) == 2  # the SDK's count_tokens span (CLIENT) and costspan's call


# --- metrics and attribution --------------------------------------------------------------------


def test_metrics(observed, instrumented, server, client) -> None:
    with costspan.attribute(customer_id="c1", feature="f"):
        client.messages.create(**KW)
        with client.messages.stream(**KW) as stream:
            stream.until_done()
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in observed.metric_points("gen_ai.client.token.usage")
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].sum == 2 * INPUT
    assert tokens["output"].sum == 2 * OUTPUT
    assert tokens["input"].attributes["gen_ai.provider.name"] == "anthropic"
    assert tokens["input"].attributes["gen_ai.request.model"] == MODEL
    (duration,) = observed.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2
    (cost_point,) = observed.metric_points("costspan.cost")
    assert cost_point.value == pytest.approx(float(2 * HAIKU_COST), rel=1e-12)
    assert cost_point.attributes["costspan.customer_id"] == "c1"
    assert cost_point.attributes["costspan.feature"] == "f"
    assert "costspan.task_id" not in cost_point.attributes


def test_task_attribution_and_rollup(observed, instrumented, server, client) -> None:
    with costspan.task("t", customer_id="c1", tracer_provider=observed.tracer_provider):
        client.messages.create(**KW)
        bedrock(server).messages.create(**{**KW, "model": BEDROCK_MODEL})
    spans = observed.llm_spans()
    assert [s.attributes["costspan.customer_id"] for s in spans] == ["c1", "c1"]
    task = _parent_attrs(observed, "t")
    assert task["costspan.rollup.cost_usd"] == float(HAIKU_COST + cost(SONNET_46_BEDROCK))
    assert task["costspan.rollup.llm_calls"] == 2
    assert task["costspan.rollup.input_tokens"] == 2 * INPUT
    assert task["costspan.rollup.cache_write_tokens"] == 2 * CACHE_WRITE


# --- lifecycle ----------------------------------------------------------------------------------

PATCHED = (
    (base_client.SyncAPIClient, "request"),
    (base_client.AsyncAPIClient, "request"),
)


def test_dependencies() -> None:
    assert AnthropicInstrumentor().instrumentation_dependencies() == ("anthropic >= 2.0, < 3",)


def test_uninstrument_restores_originals(observed, server, client) -> None:
    originals = {(cls, m): cls.__dict__[m] for cls, m in PATCHED}
    original_span_start = base_client.start_api_call_span
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        assert all(cls.__dict__[m] is not orig for (cls, m), orig in originals.items())
        assert base_client.start_api_call_span is not original_span_start
    finally:
        AnthropicInstrumentor().uninstrument()  # a singleton: a fresh instance still uninstruments
    assert all(cls.__dict__[m] is orig for (cls, m), orig in originals.items())
    assert base_client.start_api_call_span is original_span_start
    client.messages.create(**KW)
    list(client.messages.create(**KW, stream=True))
    with client.messages.stream(**KW) as stream:
        stream.until_done()
    assert observed.llm_spans() == []


def test_noop_when_anthropic_missing(observed, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "anthropic", None)
    monkeypatch.setitem(sys.modules, "anthropic._base_client", None)
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, skip_dep_check=True)
    assert inst._patched == []
    inst.uninstrument()


def test_entry_point() -> None:
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["opentelemetry_instrumentor"]["costspan_anthropic"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is AnthropicInstrumentor
    installed = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "costspan_anthropic"
    ]
    if not installed:
        pytest.skip("costspan's installed metadata predates the entry point: reinstall (pip install -e .)")
    assert installed[0].load() is AnthropicInstrumentor


def test_server_attributes_follow_a_changed_base_url(observed, instrumented, server) -> None:
    # The instrumentor caches what it reads from a client; a client pointed elsewhere is re-read.
    with FakeProviderServer() as other:
        add_anthropic_routes(other, usage=USAGE, text=TEXT)
        client = make_client(server)
        client.messages.create(**KW)
        client.base_url = other.base_url
        client.messages.create(**KW)
        client.close()
    first, second = observed.llm_spans()
    assert first.attributes["server.port"] == server.port
    assert second.attributes["server.port"] == other.port
    assert len(other.requests) == 1
