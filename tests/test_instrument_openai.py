"""OpenAIInstrumentor against the real openai SDK talking to a local fake OpenAI server."""

from __future__ import annotations

import asyncio
import enum
import gc
import importlib
import weakref
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

pytest.importorskip("openai")

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, AzureOpenAI, OpenAI
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.resources.responses.responses import AsyncResponses, Responses
from pydantic import BaseModel

import costspan
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.testing import FakeProviderServer, Reply
from costspan.testing.openai import OpenAIUsage, add_openai_routes, openai_error

# These tests read the cost parts too: on by default they are not (COSTSPAN_COST_ATTRIBUTES).
pytestmark = pytest.mark.usefixtures("cost_parts")

MTOK = Decimal(1_000_000)
# Published prices (USD per million tokens): input, cached input, output (incl. reasoning).
GPT4O = (Decimal("2.50"), Decimal("1.25"), Decimal("10"))
GPT4O_MINI = (Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))
EMBED_SMALL_IN = Decimal("0.02")

PROMPT = "SECRET-PROMPT-7f3a tell me about cost"
MESSAGES = [{"role": "user", "content": PROMPT}]
# OpenAI's terms are already semconv's: prompt tokens include cached, completion includes reasoning.
INPUT, OUTPUT, CACHED, REASONING = 1200, 400, 200, 100
EMBED_TOKENS = 8
USAGE = OpenAIUsage(
    prompt_tokens=INPUT, completion_tokens=OUTPUT, cached_tokens=CACHED, reasoning_tokens=REASONING
)


def cost(prices: tuple[Decimal, Decimal, Decimal]) -> Decimal:
    p_in, p_cached, p_out = prices
    return ((INPUT - CACHED) * p_in + CACHED * p_cached + OUTPUT * p_out) / MTOK


GPT4O_COST = cost(GPT4O)
GPT4O_MINI_COST = cost(GPT4O_MINI)
EMBED_COST = EMBED_TOKENS * EMBED_SMALL_IN / MTOK
PATCHED = (
    (Completions, "create"),
    (Completions, "parse"),
    (AsyncCompletions, "create"),
    (AsyncCompletions, "parse"),
    (Responses, "create"),
    (Responses, "parse"),
    (AsyncResponses, "create"),
    (AsyncResponses, "parse"),
    (Embeddings, "create"),
    (AsyncEmbeddings, "create"),
)


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(**vars(USAGE)))
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[OpenAIInstrumentor]:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


def make_client(server: FakeProviderServer, **kwargs: Any) -> OpenAI:
    kwargs.setdefault("max_retries", 2)
    return OpenAI(base_url=server.base_url + "/v1", api_key="test", **kwargs)


def make_async_client(server: FakeProviderServer, **kwargs: Any) -> AsyncOpenAI:
    kwargs.setdefault("max_retries", 2)
    return AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", **kwargs)


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[OpenAI]:
    c = make_client(server)
    yield c
    c.close()


def only_span(observed: Any) -> Any:
    spans = observed.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_no_text(span: Any) -> None:
    for value in span.attributes.values():
        for text in value if isinstance(value, tuple) else (value,):
            assert "SECRET-PROMPT" not in str(text)
            assert "fake OpenAI" not in str(text)
    for event in span.events:
        assert "SECRET-PROMPT" not in str(dict(event.attributes or {}))


def assert_chat_span(
    span: Any,
    server: FakeProviderServer,
    *,
    model: str = "gpt-4o",
    response_model: str = "gpt-4o-2024-08-06",
    response_id: str = "chatcmpl-fake123",
    prices: tuple[Decimal, Decimal, Decimal] = GPT4O,
    provider: str = "openai",
) -> None:
    a = span.attributes
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is not StatusCode.ERROR
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == provider
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.response.model"] == response_model
    assert a["gen_ai.response.id"] == response_id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    assert a["gen_ai.usage.input_tokens"] == INPUT
    assert a["gen_ai.usage.output_tokens"] == OUTPUT
    assert a["gen_ai.usage.cache_read.input_tokens"] == CACHED
    assert a["gen_ai.usage.reasoning.output_tokens"] == REASONING
    p_in, p_cached, p_out = prices
    assert a["gen_ai.usage.cost"] == float(cost(prices))
    assert a["costspan.cost.input_usd"] == float((INPUT - CACHED) * p_in / MTOK)
    assert a["costspan.cost.cache_read_usd"] == float(CACHED * p_cached / MTOK)
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


CHAT_KW: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.5, "top_p": 0.9}


# --- chat completions ---------------------------------------------------------------------------


def test_chat_sync(observed, instrumented, server, client) -> None:
    response = client.chat.completions.create(**CHAT_KW, max_tokens=256)
    assert response.choices[0].message.content == "Hello from the fake OpenAI."
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)


def test_chat_max_completion_tokens(observed, instrumented, server, client) -> None:
    client.chat.completions.create(**CHAT_KW, max_completion_tokens=256)
    assert_request_attrs(only_span(observed))


def test_chat_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.chat.completions.create(**CHAT_KW, max_tokens=256)

    response = asyncio.run(run())
    assert response.usage.prompt_tokens == INPUT
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)


def test_span_is_current_during_sdk_call(observed, instrumented, server, client) -> None:
    seen: list[Any] = []
    real_request = client.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(trace.get_current_span().get_span_context())
        return real_request(*args, **kwargs)

    client.request = spy  # type: ignore[method-assign]
    client.chat.completions.create(**CHAT_KW)
    assert seen == [only_span(observed).get_span_context()]


def test_numeric_request_fields_of_number_subclasses_recorded_and_bools_not(
    observed, instrumented, server, client
) -> None:
    # numpy's float64 and an IntEnum are float / int subclasses: recorded as before. A bool is not a
    # number here (and the SDK's omit / not_given sentinels are not numbers either).
    class Temperature(float):
        pass

    class Budget(enum.IntEnum):
        SMALL = 256

    client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, temperature=Temperature(0.5), max_tokens=Budget.SMALL, seed=True
    )
    a = only_span(observed).attributes
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.max_tokens"] == 256
    assert "gen_ai.request.seed" not in a
    assert "gen_ai.request.top_p" not in a


def test_chat_stream_sync_iterator(observed, instrumented, server, client) -> None:
    stream = client.chat.completions.create(**CHAT_KW, max_tokens=256, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "Hello from the fake OpenAI."
    span = only_span(observed)
    assert_chat_span(span, server)
    assert_request_attrs(span)
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}


def test_chat_stream_sync_context_manager(observed, instrumented, server, client) -> None:
    with client.chat.completions.create(**CHAT_KW, stream=True) as stream:
        chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert_chat_span(only_span(observed), server)


def test_chat_stream_async(observed, instrumented, server) -> None:
    async def run() -> list[Any]:
        async with make_async_client(server) as c:
            stream = await c.chat.completions.create(**CHAT_KW, stream=True)
            first = [chunk async for chunk in stream]
            async with await c.chat.completions.create(**CHAT_KW, stream=True) as stream2:
                second = [chunk async for chunk in stream2]
            return [first, second]

    first, second = asyncio.run(run())
    assert [c.to_dict() for c in first] == [c.to_dict() for c in second]
    assert all(c.choices for c in first)
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert_chat_span(span, server)


def _stream_dicts(client: OpenAI, **extra: Any) -> list[dict[str, Any]]:
    return [c.to_dict() for c in client.chat.completions.create(**CHAT_KW, stream=True, **extra)]


def _assert_usage_hidden_as_uninstrumented(observed: Any, server: FakeProviderServer, client: OpenAI) -> None:
    """A default stream: costspan asks for usage, and the caller's chunks match uninstrumented ones."""
    uninstrumented = _stream_dicts(client)
    assert "stream_options" not in server.requests[-1].json()
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        instrumented = _stream_dicts(client)
    finally:
        inst.uninstrument()
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert instrumented == uninstrumented
    assert all("usage" not in c for c in instrumented)
    assert_chat_span(only_span(observed), server)


def test_hidden_usage_chunk_caller_sees_uninstrumented_chunks(observed, server, client) -> None:
    _assert_usage_hidden_as_uninstrumented(observed, server, client)


def test_hidden_usage_chunk_read_from_events_without_a_data_field(
    observed, server, client, monkeypatch
) -> None:
    # costspan reads each SSE event's text from the SDK's private `_data` field, falling back to the
    # public `data` property: an SDK whose events keep their text elsewhere still gets usage and
    # its usage chunk hidden (without the fallback, the caller's stream would raise).
    import openai._streaming as streaming

    class EventWithoutDataField(streaming.ServerSentEvent):
        def __init__(self, **fields: Any) -> None:
            super().__init__(**fields)
            self._text = self._data
            del self._data

        @property
        def data(self) -> str:
            return self._text

    monkeypatch.setattr(streaming, "ServerSentEvent", EventWithoutDataField)
    _assert_usage_hidden_as_uninstrumented(observed, server, client)


@pytest.mark.parametrize("compact", [True, False], ids=["compact-json", "spaced-json"])
def test_hidden_usage_compact_and_spaced_json_chunks_as_uninstrumented(observed, compact) -> None:
    # Text that looks like the `"usage": null` the usage-event filter looks for must not fool it.
    text = 'Quote , "usage": null} and ,"usage":null} verbatim.'
    with FakeProviderServer() as fake:
        add_openai_routes(fake, usage=OpenAIUsage(**vars(USAGE)), text=text, compact_stream=compact)

        def both() -> tuple[list[Any], list[Any]]:
            with make_client(fake) as c:
                sync = list(c.chat.completions.create(**CHAT_KW, stream=True))

            async def run() -> list[Any]:
                async with make_async_client(fake) as ac:
                    return [chunk async for chunk in await ac.chat.completions.create(**CHAT_KW, stream=True)]

            return sync, asyncio.run(run())

        plain_sync, plain_async = both()
        inst = OpenAIInstrumentor()
        inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
        try:
            seen_sync, seen_async = both()
        finally:
            inst.uninstrument()
        assert fake.requests[-1].json()["stream_options"] == {"include_usage": True}
    for seen, plain in ((seen_sync, plain_sync), (seen_async, plain_async)):
        assert [c.model_dump() for c in seen] == [c.model_dump() for c in plain]
        assert [c.model_fields_set for c in seen] == [c.model_fields_set for c in plain]
        assert "".join(c.choices[0].delta.content or "" for c in seen) == text
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.attributes["gen_ai.usage.input_tokens"] == USAGE.prompt_tokens
        assert span.attributes["gen_ai.usage.output_tokens"] == USAGE.completion_tokens


def test_usage_request_keeps_the_callers_extra_body(observed, instrumented, server, client) -> None:
    chunks = _stream_dicts(client, extra_body={"user_tag": "t-9"})
    body = server.requests[-1].json()
    assert body["user_tag"] == "t-9"
    assert body["stream_options"] == {"include_usage": True}
    assert all(c["choices"] for c in chunks)
    assert_chat_span(only_span(observed), server)


def test_usage_asked_in_extra_body_shows_usage_chunk(observed, instrumented, server, client) -> None:
    chunks = _stream_dicts(client, extra_body={"stream_options": {"include_usage": True}})
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == INPUT
    assert_chat_span(only_span(observed), server)


def test_caller_asked_for_usage_sees_usage_chunk(observed, server, client) -> None:
    uninstrumented = _stream_dicts(client, stream_options={"include_usage": True})
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        instrumented = _stream_dicts(client, stream_options={"include_usage": True})
    finally:
        inst.uninstrument()
    assert instrumented == uninstrumented
    assert instrumented[-1]["choices"] == []
    assert instrumented[-1]["usage"]["prompt_tokens"] == INPUT
    assert_chat_span(only_span(observed), server)


def test_caller_asked_for_usage_async_span_from_last_chunks(observed, instrumented, server) -> None:
    # One choice, usage asked by the caller: the span is read from the stream's last chunks only.
    async def run() -> list[Any]:
        async with make_async_client(server) as c:
            stream = await c.chat.completions.create(
                **CHAT_KW, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert len(chunks) == 6  # role, 3 pieces, finish, usage: the first two are not looked at
    assert chunks[-1].usage.prompt_tokens == INPUT
    assert_chat_span(only_span(observed), server)


def test_several_choices_stream_keeps_every_finish_reason(observed, instrumented, server, client) -> None:
    # Choice 0 finishes 6 chunks before the end: more than the last chunks a one-choice stream keeps.
    chunks = _stream_dicts(client, n=2, stream_options={"include_usage": True})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][4] == "length"
    assert (
        len(chunks)
        - next(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"])
        == 7
    )
    span = only_span(observed)
    assert span.attributes["gen_ai.request.choice.count"] == 2
    assert span.attributes["gen_ai.response.finish_reasons"] == ("length", "stop")
    assert span.attributes["gen_ai.usage.input_tokens"] == INPUT
    assert span.attributes["gen_ai.usage.cost"] == float(cost(GPT4O))


def _next_dicts(client: OpenAI, **extra: Any) -> list[dict[str, Any]]:
    stream = client.chat.completions.create(**CHAT_KW, stream=True, **extra)
    out = []
    while True:
        try:
            out.append(next(stream).to_dict())
        except StopIteration:
            return out


@pytest.mark.parametrize("caller_usage", [False, True], ids=["costspan-asks-usage", "caller-asks-usage"])
def test_stream_read_with_next(observed, server, client, caller_usage: bool) -> None:
    # The proxy's own __next__ (not `for`): chunks as uninstrumented, span from the last chunks.
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_usage else {}
    uninstrumented = _next_dicts(client, **extra)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        instrumented = _next_dicts(client, **extra)
    finally:
        inst.uninstrument()
    assert instrumented == uninstrumented
    assert ("usage" in instrumented[-1]) is caller_usage
    assert_chat_span(only_span(observed), server)


def test_chat_stream_helper(observed, instrumented, server, client) -> None:
    with client.chat.completions.stream(**CHAT_KW) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from the fake OpenAI."
    assert final.usage is None  # the caller did not ask for usage: same as uninstrumented
    assert_chat_span(only_span(observed), server)


@pytest.mark.parametrize("caller_usage", [False, True], ids=["costspan-asks-usage", "caller-asks-usage"])
def test_abandoned_stream_ends_span(observed, instrumented, server, client, caller_usage: bool) -> None:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_usage else {}
    stream = client.chat.completions.create(**CHAT_KW, stream=True, **extra)
    for _ in stream:
        break
    assert observed.llm_spans() == []
    del stream
    gc.collect()
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-fake123"
    assert "gen_ai.usage.input_tokens" not in span.attributes  # the usage chunk never came


def _read_stream_freed_without_gc(client: OpenAI, server: FakeProviderServer, **extra: Any) -> bool:
    """Read a chat stream to the end, sync and async; True when both SDK streams are freed as soon as
    the caller drops them, with the garbage collector off."""
    stream = client.chat.completions.create(**CHAT_KW, stream=True, **extra)
    sync_stream = weakref.ref(getattr(stream, "__wrapped__", stream))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    async def read_async() -> weakref.ref[Any]:
        async with make_async_client(server) as c:
            astream = await c.chat.completions.create(**CHAT_KW, stream=True, **extra)
            ref = weakref.ref(getattr(astream, "__wrapped__", astream))
            assert [chunk async for chunk in astream]
            del astream
            return ref

    gc.collect()
    gc.disable()
    try:
        del stream
        async_stream = asyncio.run(read_async())
        return sync_stream() is None and async_stream() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("caller_usage", [False, True], ids=["costspan-asks-usage", "caller-asks-usage"])
def test_finished_stream_is_freed_without_gc(observed, server, client, caller_usage) -> None:
    # As uninstrumented: a stream read to the end and dropped frees its response at once. (A hook
    # costspan left on the stream once held it in a reference cycle until the next collection.)
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_usage else {}
    assert _read_stream_freed_without_gc(client, server, **extra)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        assert _read_stream_freed_without_gc(client, server, **extra)
    finally:
        inst.uninstrument()
    spans = observed.llm_spans()
    assert len(spans) == 2
    for span in spans:
        assert_chat_span(span, server)


def test_closed_stream_ends_span(observed, instrumented, server, client) -> None:
    stream = client.chat.completions.create(**CHAT_KW, stream=True)
    next(iter(stream))
    stream.close()
    assert only_span(observed).end_time is not None


def test_error_in_callers_with_body_is_not_a_failed_call(observed, instrumented, server, client) -> None:
    with (
        pytest.raises(KeyError, match="caller's own bug"),
        client.chat.completions.create(**CHAT_KW, stream=True) as stream,
    ):
        next(iter(stream))
        raise KeyError("caller's own bug")
    span = only_span(observed)
    assert span.status.status_code is not StatusCode.ERROR
    assert "error.type" not in span.attributes
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert observed.processor.faults() == {}


def test_parse_structured_output(observed, instrumented, server, client) -> None:
    class Answer(BaseModel):
        answer: str

    completion = client.chat.completions.parse(**CHAT_KW, response_format=Answer)
    assert completion.choices[0].message.parsed == Answer(answer="Hello from the fake OpenAI.")
    assert server.requests[-1].json()["response_format"]["type"] == "json_schema"
    assert_chat_span(only_span(observed), server)


def test_parse_async(observed, instrumented, server) -> None:
    class Answer(BaseModel):
        answer: str

    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.chat.completions.parse(**CHAT_KW, response_format=Answer)

    assert asyncio.run(run()).choices[0].message.parsed.answer == "Hello from the fake OpenAI."
    assert_chat_span(only_span(observed), server)


# --- raw / streaming responses -------------------------------------------------------------------


def test_with_raw_response(observed, instrumented, server, client) -> None:
    raw = client.chat.completions.with_raw_response.create(**CHAT_KW)
    assert raw.http_response.status_code == 200
    assert raw.parse().usage.prompt_tokens == INPUT
    assert_chat_span(only_span(observed), server)


def test_with_raw_response_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with make_async_client(server) as c:
            raw = await c.chat.completions.with_raw_response.create(**CHAT_KW)
            return raw.parse()

    assert asyncio.run(run()).id == "chatcmpl-fake123"
    assert_chat_span(only_span(observed), server)


def test_with_raw_response_stream(observed, instrumented, server, client) -> None:
    raw = client.chat.completions.with_raw_response.create(**CHAT_KW, stream=True)
    chunks = list(raw.parse())
    assert all(c.choices for c in chunks)
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response(observed, instrumented, server, client) -> None:
    with client.chat.completions.with_streaming_response.create(**CHAT_KW) as response:
        completion = response.parse()
    assert completion.usage.completion_tokens == OUTPUT
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with (
            make_async_client(server) as c,
            c.chat.completions.with_streaming_response.create(**CHAT_KW) as response,
        ):
            return await response.parse()

    assert asyncio.run(run()).usage.prompt_tokens == INPUT
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response_stream(observed, instrumented, server, client) -> None:
    with client.chat.completions.with_streaming_response.create(**CHAT_KW, stream=True) as response:
        chunks = list(response.parse())
    assert all(c.choices for c in chunks)
    assert_chat_span(only_span(observed), server)


def test_with_streaming_response_never_parsed_ends_span(observed, instrumented, server, client) -> None:
    with client.chat.completions.with_streaming_response.create(**CHAT_KW) as response:
        assert response.http_response.status_code == 200
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["costspan.cost.status"] == "no_usage"


def test_raw_response_accessor_built_while_instrumented_stops_after_uninstrument(
    observed, server, client
) -> None:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        raw_api = client.chat.completions.with_raw_response  # cached: holds the bound wrapper
        raw_api.create(**CHAT_KW)
    finally:
        inst.uninstrument()
    assert len(observed.llm_spans()) == 1
    raw_api.create(**CHAT_KW)
    assert len(observed.llm_spans()) == 1


# --- Azure ----------------------------------------------------------------------------------------


def test_azure_openai(observed, instrumented, server) -> None:
    client = AzureOpenAI(azure_endpoint=server.base_url, api_key="test", api_version="2024-10-21")
    client.chat.completions.create(**CHAT_KW)
    assert server.requests[-1].path.startswith("/openai/deployments/gpt-4o/chat/completions")
    assert_chat_span(only_span(observed), server, provider="azure.ai.openai")


def test_server_attributes_follow_a_changed_base_url(observed, instrumented, server) -> None:
    # The instrumentor caches what it reads from a client; a client pointed elsewhere is re-read.
    with (
        FakeProviderServer() as other,
        make_client(server) as client,
    ):
        add_openai_routes(other, usage=OpenAIUsage(**vars(USAGE)))
        client.chat.completions.create(**CHAT_KW)
        client.base_url = other.base_url + "/v1"
        client.chat.completions.create(**CHAT_KW)
    first, second = observed.llm_spans()
    assert first.attributes["server.port"] == server.port
    assert second.attributes["server.port"] == other.port
    assert len(other.requests) == 1


def test_server_attributes_come_from_a_base_url_property_that_differs(observed, instrumented, server) -> None:
    # The instrumentor reads `_base_url` directly only for client classes whose property returns it.
    # Through the base class's property: openai 3.63 made `_base_url` a property reading `base_url`.
    class Gateway(OpenAI):
        @property
        def base_url(self) -> Any:  # type: ignore[override]
            return type(OpenAI.base_url.fget(self))(server.base_url + "/v1/")  # type: ignore[attr-defined]

        @base_url.setter
        def base_url(self, url: Any) -> None:
            OpenAI.base_url.fset(self, url)  # type: ignore[attr-defined]

    with Gateway(base_url="https://gateway.invalid:8443/v1", api_key="test") as client:
        client.chat.completions.create(**CHAT_KW)
        client.chat.completions.create(**CHAT_KW)
    for span in observed.llm_spans():
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == server.port


def test_azure_old_api_version_gets_no_stream_options(observed, instrumented, server) -> None:
    client = AzureOpenAI(azure_endpoint=server.base_url, api_key="test", api_version="2024-06-01")
    chunks = list(client.chat.completions.create(**CHAT_KW, stream=True))
    assert "stream_options" not in server.requests[-1].json()
    assert all(c.choices for c in chunks)
    span = only_span(observed)
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert span.attributes["costspan.cost.status"] == "no_usage"  # the API reported none


def test_azure_stream(observed, instrumented, server) -> None:
    client = AzureOpenAI(azure_endpoint=server.base_url, api_key="test", api_version="2024-10-21")
    list(client.chat.completions.create(**CHAT_KW, stream=True))
    assert server.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert_chat_span(only_span(observed), server, provider="azure.ai.openai")


def test_azure_host_detection() -> None:
    from costspan.instrumentation.openai.request import _is_azure

    assert _is_azure(None, "my-resource.openai.azure.com")
    assert not _is_azure(None, "api.openai.com")


def test_azure_openai_async(observed, instrumented, server) -> None:
    async def run() -> None:
        c = AsyncAzureOpenAI(azure_endpoint=server.base_url, api_key="test", api_version="2024-10-21")
        await c.chat.completions.create(**CHAT_KW)
        await c.close()

    asyncio.run(run())
    assert_chat_span(only_span(observed), server, provider="azure.ai.openai")


# --- responses API ------------------------------------------------------------------------------

RESP_KW: dict[str, Any] = {"model": "gpt-4o-mini", "input": PROMPT, "temperature": 0.5, "top_p": 0.9}


def assert_responses_span(span: Any, server: FakeProviderServer) -> None:
    assert_chat_span(
        span,
        server,
        model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        response_id="resp_fake123",
        prices=GPT4O_MINI,
    )
    assert span.attributes["gen_ai.usage.cost"] == float(GPT4O_MINI_COST)


def test_responses_sync(observed, instrumented, server, client) -> None:
    response = client.responses.create(**RESP_KW, max_output_tokens=256)
    assert response.output_text == "Hello from the fake OpenAI."
    span = only_span(observed)
    assert_responses_span(span, server)
    assert_request_attrs(span)


def test_responses_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.responses.create(**RESP_KW, max_output_tokens=256)

    assert asyncio.run(run()).usage.input_tokens == INPUT
    assert_responses_span(only_span(observed), server)


def test_responses_stream_sync(observed, instrumented, server, client) -> None:
    events = list(client.responses.create(**RESP_KW, stream=True))
    assert events[-1].type == "response.completed"
    assert "stream_options" not in server.requests[-1].json()
    assert_responses_span(only_span(observed), server)


def test_responses_stream_async(observed, instrumented, server) -> None:
    async def run() -> list[Any]:
        async with make_async_client(server) as c, await c.responses.create(**RESP_KW, stream=True) as stream:
            return [e async for e in stream]

    assert asyncio.run(run())[-1].type == "response.completed"
    assert_responses_span(only_span(observed), server)


def test_responses_parse(observed, instrumented, server, client) -> None:
    class Answer(BaseModel):
        answer: str

    response = client.responses.parse(**RESP_KW, text_format=Answer)
    assert response.output_parsed == Answer(answer="Hello from the fake OpenAI.")
    assert_responses_span(only_span(observed), server)


def test_responses_parse_async(observed, instrumented, server) -> None:
    class Answer(BaseModel):
        answer: str

    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.responses.parse(**RESP_KW, text_format=Answer)

    assert asyncio.run(run()).output_parsed.answer == "Hello from the fake OpenAI."
    assert_responses_span(only_span(observed), server)


def test_responses_stream_helper(observed, instrumented, server, client) -> None:
    with client.responses.stream(**RESP_KW) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.usage.output_tokens == OUTPUT
    assert_responses_span(only_span(observed), server)


# --- embeddings ---------------------------------------------------------------------------------


def assert_embedding_span(span: Any, server: FakeProviderServer) -> None:
    a = span.attributes
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "text-embedding-3-small"
    assert a["gen_ai.response.model"] == "text-embedding-3-small"
    assert a["server.port"] == server.port
    assert a["gen_ai.usage.input_tokens"] == EMBED_TOKENS
    assert "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.usage.cost"] == float(EMBED_COST)
    assert a["costspan.cost.status"] == "priced"
    assert_no_text(span)


def test_embeddings_sync(observed, instrumented, server, client) -> None:
    response = client.embeddings.create(model="text-embedding-3-small", input=PROMPT, dimensions=4)
    assert len(response.data[0].embedding) == 4
    span = only_span(observed)
    assert_embedding_span(span, server)
    assert span.attributes["gen_ai.embeddings.dimension.count"] == 4


def test_embeddings_async(observed, instrumented, server) -> None:
    async def run() -> Any:
        async with make_async_client(server) as c:
            return await c.embeddings.create(model="text-embedding-3-small", input=[PROMPT, PROMPT])

    assert len(asyncio.run(run()).data) == 2
    assert_embedding_span(only_span(observed), server)


# --- retries and failures -----------------------------------------------------------------------


def test_429_then_success_is_one_priced_span(observed, instrumented, server, client) -> None:
    server.script(openai_error(429, "slow down", retry_after_ms=1))
    client.chat.completions.create(**CHAT_KW)
    assert len(server.requests) == 2
    assert_chat_span(only_span(observed), server)


def test_429_scripted_reply(observed, instrumented, server, client) -> None:
    server.script(
        Reply(429, {"error": {"message": "rate limited"}}, headers={"retry-after-ms": "1"}), times=2
    )
    client.chat.completions.create(**CHAT_KW)
    assert len(server.requests) == 3
    assert_chat_span(only_span(observed), server)


def _parent_attrs(observed: Any, name: str) -> Any:
    (parent,) = [s for s in observed.finished() if s.name == name]
    return parent.attributes


def test_500_without_retries_fails_span(observed, instrumented, server) -> None:
    server.script(openai_error(500, "boom"))
    client = make_client(server, max_retries=0)
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent"), pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(**CHAT_KW)
    assert info.value.status_code == 500
    assert len(server.requests) == 1
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"
    assert span.name == "chat gpt-4o"
    assert_no_text(span)
    parent = _parent_attrs(observed, "parent")
    assert parent["costspan.rollup.failed_calls"] == 1
    assert parent["costspan.rollup.llm_calls"] == 1


def test_exception_is_the_same_object(observed, instrumented, server) -> None:
    server.script(openai_error(400, "bad request"))
    client = make_client(server, max_retries=0)
    seen: list[BaseException] = []
    real_request = client.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_request(*args, **kwargs)
        except BaseException as exc:
            seen.append(exc)
            raise

    client.request = spy  # type: ignore[method-assign]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**CHAT_KW)
    assert seen == [info.value]
    assert only_span(observed).attributes["error.type"] == "400"


def test_timeout_fails_span(observed, instrumented, server) -> None:
    server.script(Reply(200, {}, delay_s=1.0))
    client = make_client(server, max_retries=0, timeout=0.2)
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent"), pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(**CHAT_KW)
    span = only_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "APITimeoutError"
    assert _parent_attrs(observed, "parent")["costspan.rollup.failed_calls"] == 1


def test_async_failure_reraises(observed, instrumented, server) -> None:
    server.script(openai_error(503, "unavailable"))

    async def run() -> None:
        async with make_async_client(server, max_retries=0) as c:
            await c.chat.completions.create(**CHAT_KW)

    with pytest.raises(openai.InternalServerError):
        asyncio.run(run())
    assert only_span(observed).attributes["error.type"] == "503"


def test_cancelled_async_call(observed, instrumented, server) -> None:
    server.script(Reply(200, {}, delay_s=1.0))

    async def run() -> None:
        async with make_async_client(server, max_retries=0) as c:
            task = asyncio.ensure_future(c.chat.completions.create(**CHAT_KW))
            await asyncio.sleep(0.1)
            task.cancel()
            await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    span = only_span(observed)
    assert span.attributes["error.type"] == "CancelledError"


def test_instrumentation_fault_never_reaches_caller(
    observed, instrumented, server, client, monkeypatch
) -> None:
    from costspan.instrumentation.openai import response as module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    before = module.FAULTS.counts().get("openai response", 0)
    monkeypatch.setattr(module, "_set_any_chat_usage", broken)  # reading the usage raises
    response = client.chat.completions.create(**CHAT_KW)
    assert response.choices[0].message.content == "Hello from the fake OpenAI."
    assert module.FAULTS.counts()["openai response"] == before + 1
    span = only_span(observed)
    assert span.end_time is not None
    assert span.attributes["costspan.cost.status"] == "no_usage"


def test_stream_fault_never_reaches_caller(observed, instrumented, server, client, monkeypatch) -> None:
    from costspan.instrumentation.openai import stream as module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(module._ChatStreamState, "on_item", broken)
    chunks = list(client.chat.completions.create(**CHAT_KW, stream=True))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "Hello from the fake OpenAI."
    )
    assert only_span(observed).end_time is not None


# --- metrics and attribution --------------------------------------------------------------------


def test_metrics(observed, instrumented, server, client) -> None:
    with costspan.attribute(customer_id="c1"):
        client.chat.completions.create(**CHAT_KW)
        list(client.chat.completions.create(**CHAT_KW, stream=True))
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in observed.metric_points("gen_ai.client.token.usage")
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].sum == 2 * INPUT
    assert tokens["output"].sum == 2 * OUTPUT
    assert tokens["input"].attributes["gen_ai.provider.name"] == "openai"
    (duration,) = observed.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2
    (cost_point,) = observed.metric_points("costspan.cost")
    assert cost_point.value == pytest.approx(float(2 * GPT4O_COST), rel=1e-12)
    assert cost_point.attributes["costspan.customer_id"] == "c1"
    assert "costspan.task_id" not in cost_point.attributes


def test_task_attribution_and_rollup(observed, instrumented, server, client) -> None:
    with costspan.task("t", customer_id="c1", tracer_provider=observed.tracer_provider):
        client.chat.completions.create(**CHAT_KW)
    span = only_span(observed)
    assert span.attributes["costspan.customer_id"] == "c1"
    assert span.attributes["costspan.task"] == "t"
    task_attrs = _parent_attrs(observed, "t")
    assert task_attrs["costspan.rollup.cost_usd"] == float(GPT4O_COST)
    assert task_attrs["costspan.rollup.llm_calls"] == 1
    (cost_point,) = observed.metric_points("costspan.cost")
    assert "costspan.task_id" not in cost_point.attributes
    assert cost_point.attributes["costspan.task"] == "t"


# --- lifecycle ----------------------------------------------------------------------------------


def test_dependencies() -> None:
    assert OpenAIInstrumentor().instrumentation_dependencies() == ("openai >= 3.0, < 4",)


def test_uninstrument_restores_originals(observed, server, client) -> None:
    originals = {(cls, m): cls.__dict__[m] for cls, m in PATCHED}
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        assert all(cls.__dict__[m] is not orig for (cls, m), orig in originals.items())
    finally:
        OpenAIInstrumentor().uninstrument()  # a singleton: a fresh instance still uninstruments
    assert all(cls.__dict__[m] is orig for (cls, m), orig in originals.items())
    client.chat.completions.create(**CHAT_KW)
    list(client.chat.completions.create(**CHAT_KW, stream=True))
    client.embeddings.create(model="text-embedding-3-small", input=PROMPT)
    assert observed.llm_spans() == []


def test_noop_when_openai_missing(observed, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openai", None)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, skip_dep_check=True)
    assert inst._patched == []
    inst.uninstrument()


def test_entry_point() -> None:
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["opentelemetry_instrumentor"]["costspan_openai"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is OpenAIInstrumentor
    installed = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "costspan_openai"]
    if not installed:
        pytest.skip("costspan's installed metadata predates the entry point: reinstall (pip install -e .)")
    assert installed[0].load() is OpenAIInstrumentor
