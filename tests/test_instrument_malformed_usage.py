"""Malformed usage from a provider, fed to the real SDKs by a raw HTTP fake (issue 23, items 1-3).

A usage field that is there but is not a token count (null beside a count, fractional), next to
valid ones, makes the call `invalid_usage`: never priced, its counts neither written nor summed (in
the rollup, the token metric and the cost metric), for every provider, streamed or not. The
application sees exactly what it sees uninstrumented, errors included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")
pytest.importorskip("google.genai")

import anthropic
import openai
from google import genai
from google.genai import types

import costspan
from costspan import attributes as A
from costspan.instrumentation.anthropic import AnthropicInstrumentor
from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.testing import FakeProviderServer, Reply
from costspan.testing.server import Request

USAGE_KEYS = (
    A.GEN_AI_USAGE_INPUT_TOKENS,
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
ROLLUP_TOKEN_KEYS = (
    A.ROLLUP_INPUT_TOKENS,
    A.ROLLUP_OUTPUT_TOKENS,
    A.ROLLUP_CACHE_READ_TOKENS,
    A.ROLLUP_CACHE_WRITE_TOKENS,
    A.ROLLUP_REASONING_TOKENS,
)


def run_task(observed: Any, call: Callable[[], Any]) -> Any:
    with costspan.task("t", tracer_provider=observed.tracer_provider):
        return call()


def assert_unpriced(observed: Any, status: str = "invalid_usage") -> Any:
    """One LLM span, `status`, no cost and no token count anywhere costspan sums them."""
    (span,) = observed.llm_spans()
    assert span.attributes[A.COST_STATUS] == status
    assert A.GEN_AI_USAGE_COST not in span.attributes
    if status == "invalid_usage":
        assert not set(USAGE_KEYS) & set(span.attributes)
    task = next(s for s in observed.finished() if s.name == "t")
    assert task.attributes[A.ROLLUP_UNPRICED_CALLS] == 1
    assert task.attributes.get(A.ROLLUP_COST_USD, 0) == 0
    if status == "invalid_usage":
        assert not set(ROLLUP_TOKEN_KEYS) & set(task.attributes)
        assert observed.metric_points("gen_ai.client.token.usage") == []
    assert [p.value for p in observed.metric_points("costspan.cost")] in ([], [0])
    return span


# --- OpenAI -----------------------------------------------------------------------------------

GPT = "gpt-4o-2024-08-06"


def openai_usage(prompt: Any, completion: Any = 300, cached: Any = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def openai_server(usage: dict[str, Any], *, stream_error: dict[str, Any] | None = None) -> FakeProviderServer:
    """Chat completions answering with `usage` (a stream: in the usage chunk, sent when the request
    asks for it; with `stream_error`, an error event carrying usage and no choices instead)."""
    server = FakeProviderServer()

    def chunk(choices: list[Any], **extra: Any) -> str:
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": GPT}
        return json.dumps({**body, "choices": choices, **extra})

    def chat(request: Request) -> Reply:
        body = request.json()
        if not body.get("stream"):
            message = {"role": "assistant", "content": "Hi."}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": GPT}
            return Reply(body={**reply, "choices": [choice], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        null_usage = {"usage": None} if include_usage else {}
        events = [
            chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hi."}}], **null_usage),
            chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], **null_usage),
        ]
        if stream_error is not None:
            events.append(chunk([], usage=usage, error=stream_error))
        elif include_usage:
            events.append(chunk([], usage=usage))
        return Reply.sse([*events, "[DONE]"])

    server.route("POST", "/v1/chat/completions", chat)
    return server.start()


def openai_chat(server: FakeProviderServer, stream: bool, caller_usage: bool) -> Any:
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    if not stream:
        return client.chat.completions.create(**kwargs).model_dump(warnings=False)
    if caller_usage:
        kwargs["stream_options"] = {"include_usage": True}
    return [
        c.model_dump(exclude_unset=True, warnings=False)
        for c in client.chat.completions.create(**kwargs, stream=True)
    ]


@pytest.fixture
def openai_instrumented(observed: Any) -> Iterator[None]:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield
    inst.uninstrument()


OPENAI_SHAPES = {
    "prompt-null": openai_usage(None),
    "prompt-fractional": openai_usage(1200.5),
    "completion-null": openai_usage(1200, None),
    "cached-fractional": openai_usage(1200, 300, 10.5),
    "prompt-negative": openai_usage(-1200),
}
# (stream, the caller asked for usage itself): a stream where costspan asks for usage reads it off
# the SSE events before the SDK makes a chunk of it.
OPENAI_MODES = {"plain": (False, False), "stream": (True, True), "stream-hidden-usage": (True, False)}


@pytest.mark.parametrize("mode", OPENAI_MODES)
@pytest.mark.parametrize("shape", OPENAI_SHAPES)
def test_openai_malformed_usage_is_invalid(observed: Any, shape: str, mode: str) -> None:
    stream, caller_usage = OPENAI_MODES[mode]
    server = openai_server(OPENAI_SHAPES[shape])
    try:
        expected = openai_chat(server, stream, caller_usage)
        inst = OpenAIInstrumentor()
        inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
        try:
            got = run_task(observed, lambda: openai_chat(server, stream, caller_usage))
        finally:
            inst.uninstrument()
    finally:
        server.stop()
    assert got == expected
    assert_unpriced(observed)


def test_openai_valid_usage_beside_the_malformed_cases_is_priced(
    observed: Any, openai_instrumented: None
) -> None:
    """The same fake with whole counts (and a whole float): priced, so the cases above test the counts."""
    server = openai_server(openai_usage(1200.0, 300, 200))
    try:
        run_task(observed, lambda: openai_chat(server, True, False))
    finally:
        server.stop()
    (span,) = observed.llm_spans()
    assert span.attributes[A.COST_STATUS] == "priced"
    # gpt-4o: 1000 uncached x $2.50 + 200 cached x $1.25 + 300 out x $10 per million tokens.
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(0.00575, rel=1e-12)


@pytest.mark.parametrize("caller_usage", [False, True], ids=["costspan-asked-usage", "caller-asked-usage"])
def test_openai_stream_error_event_with_usage_reaches_the_app(observed: Any, caller_usage: bool) -> None:
    """An error event carrying `usage` and `choices: []` is an error, not the usage chunk: the app
    gets the same openai.APIError as uninstrumented, after the same chunks."""
    error = {"message": "the model is overloaded", "type": "server_error", "code": "overloaded"}
    server = openai_server(openai_usage(1200, 300), stream_error=error)

    def read() -> tuple[list[Any], str]:
        seen: list[Any] = []
        with pytest.raises(openai.APIError) as info:
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
            kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_usage else {}
            for c in client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True, **kwargs
            ):
                seen.append(c.model_dump(exclude_unset=True, warnings=False))
        return seen, info.value.message

    try:
        expected = read()
        inst = OpenAIInstrumentor()
        inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
        try:
            got = read()
        finally:
            inst.uninstrument()
    finally:
        server.stop()
    assert got == expected
    assert expected[1] == "the model is overloaded"
    (span,) = observed.llm_spans()
    assert span.attributes[A.ERROR_TYPE] == "APIError"


def test_openai_embeddings_fractional_prompt_is_invalid(observed: Any, openai_instrumented: None) -> None:
    with FakeProviderServer() as server:
        body = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8.5, "total_tokens": 8.5},
        }
        server.route("POST", "/v1/embeddings", lambda request: Reply(body=body))
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
        run_task(observed, lambda: client.embeddings.create(model="text-embedding-3-small", input="hi"))
    assert_unpriced(observed)


# --- Anthropic --------------------------------------------------------------------------------

CLAUDE = "claude-haiku-4-5-20251001"


def anthropic_usage(input_tokens: Any, output_tokens: Any = 400, cache_read: Any = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": 0,
    }


def anthropic_server(usage: dict[str, Any], *, message_delta: bool = True) -> FakeProviderServer:
    """Messages answering with `usage`: a stream puts the input counts in `message_start` (output: the
    placeholder 1) and the output count in `message_delta` (left out with `message_delta=False`)."""
    server = FakeProviderServer()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE, "stop_sequence": None}

    def messages(request: Request) -> Reply:
        if not request.json().get("stream"):
            content = [{"type": "text", "text": "Hi."}]
            return Reply(body={**message, "content": content, "stop_reason": "end_turn", "usage": usage})
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        block = {"type": "text", "text": ""}
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi."}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
        if message_delta:
            delta = {"stop_reason": "end_turn", "stop_sequence": None}
            delta_usage = {"output_tokens": usage["output_tokens"]}
            events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return Reply.sse(events)

    server.route("POST", "/v1/messages", messages)
    return server.start()


def anthropic_call(server: FakeProviderServer, stream: bool) -> Any:
    client = anthropic.Anthropic(
        base_url=server.base_url, api_key="test", max_retries=0, open_telemetry=False
    )
    kwargs: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if not stream:
        return client.messages.create(**kwargs).model_dump(warnings=False)
    return [event.model_dump(warnings=False) for event in client.messages.create(**kwargs, stream=True)]


def anthropic_compare(observed: Any, server: FakeProviderServer, stream: bool) -> None:
    try:
        expected = anthropic_call(server, stream)
        inst = AnthropicInstrumentor()
        inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
        try:
            got = run_task(observed, lambda: anthropic_call(server, stream))
        finally:
            inst.uninstrument()
    finally:
        server.stop()
    assert got == expected


ANTHROPIC_SHAPES = {
    "input-null": anthropic_usage(None),
    "input-fractional": anthropic_usage(1500.5),
    "output-null": anthropic_usage(1500, None),
    "cache-read-fractional": anthropic_usage(1500, 400, 10.5),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("shape", ANTHROPIC_SHAPES)
def test_anthropic_malformed_usage_is_invalid(observed: Any, shape: str, stream: bool) -> None:
    anthropic_compare(observed, anthropic_server(ANTHROPIC_SHAPES[shape]), stream)
    assert_unpriced(observed)


def test_anthropic_valid_usage_beside_the_malformed_cases_is_priced(observed: Any) -> None:
    anthropic_compare(observed, anthropic_server(anthropic_usage(1500.0, 400, 100)), True)
    (span,) = observed.llm_spans()
    assert span.attributes[A.COST_STATUS] == "priced"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1600
    # claude-haiku-4-5: 1500 in x $1 + 100 cache read x $0.10 + 400 out x $5 per million tokens.
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(0.00351, rel=1e-12)


@pytest.mark.parametrize("cache_read", [0, 100])
def test_anthropic_stream_without_message_delta_is_incomplete(observed: Any, cache_read: int) -> None:
    """No `message_delta`: the output count is message_start's placeholder (1). The call is
    `incomplete_usage`, unpriced; its reported input counts are kept, no output count is written."""
    server = anthropic_server(anthropic_usage(1500, 400, cache_read), message_delta=False)
    anthropic_compare(observed, server, True)
    span = assert_unpriced(observed, "incomplete_usage")
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 1500 + cache_read
    assert span.attributes.get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == (cache_read or None)
    assert A.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    task = next(s for s in observed.finished() if s.name == "t")
    assert task.attributes[A.ROLLUP_INPUT_TOKENS] == 1500 + cache_read
    assert A.ROLLUP_OUTPUT_TOKENS not in task.attributes


# --- Google Gemini ----------------------------------------------------------------------------


def gemini_server(usage: dict[str, Any]) -> FakeProviderServer:
    server = FakeProviderServer()
    reply = {"modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}
    candidate = {"content": {"role": "model", "parts": [{"text": "Hi."}]}, "index": 0}

    def generate(request: Request) -> Reply:
        return Reply(
            body={**reply, "candidates": [{**candidate, "finishReason": "STOP"}], "usageMetadata": usage}
        )

    def stream(request: Request) -> Reply:
        first = {
            **reply,
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": usage.get("promptTokenCount")},
        }
        last = {**reply, "candidates": [{**candidate, "finishReason": "STOP"}], "usageMetadata": usage}
        return Reply.sse([json.dumps(first), json.dumps(last)])

    server.route("POST", r"/v1(beta)?/models/[^/:]+:generateContent", generate)
    server.route("POST", r"/v1(beta)?/models/[^/:]+:streamGenerateContent", stream)
    return server.start()


def gemini_call(server: FakeProviderServer, stream: bool) -> Any:
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.base_url))
    if not stream:
        response = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        return response.model_dump(warnings=False, exclude={"sdk_http_response"})
    chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    return [chunk.model_dump(warnings=False, exclude={"sdk_http_response"}) for chunk in chunks]


GEMINI_SHAPES = {
    "prompt-null": {"promptTokenCount": None, "candidatesTokenCount": 250, "totalTokenCount": 250},
    "prompt-missing": {"candidatesTokenCount": 250, "totalTokenCount": 250},
    "candidates-negative": {"promptTokenCount": 1200, "candidatesTokenCount": -250, "totalTokenCount": 950},
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("shape", GEMINI_SHAPES)
def test_gemini_malformed_usage_is_invalid(observed: Any, shape: str, stream: bool) -> None:
    server = gemini_server(GEMINI_SHAPES[shape])
    try:
        expected = gemini_call(server, stream)
        inst = GoogleGenAIInstrumentor()
        inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
        try:
            got = run_task(observed, lambda: gemini_call(server, stream))
        finally:
            inst.uninstrument()
    finally:
        server.stop()
    assert got == expected
    assert_unpriced(observed)
