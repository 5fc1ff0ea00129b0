"""Third-party span fixtures and real SDK clients on a mock transport, shared by the third-party tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan

FIXTURES = Path(__file__).parent / "fixtures" / "third_party"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

_ROLLUP_TOKENS = {
    "input_tokens": "costspan.rollup.input_tokens",
    "output_tokens": "costspan.rollup.output_tokens",
    "cache_read_tokens": "costspan.rollup.cache_read_tokens",
    "cache_write_tokens": "costspan.rollup.cache_write_tokens",
    "reasoning_tokens": "costspan.rollup.reasoning_tokens",
}


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def priced_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(costspan.CostSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


TASK = "task"


def in_task(provider: TracerProvider) -> Any:
    """A parent span for the call: its rollup shows the call as the processor counted it (a call
    with nothing under it carries no rollup of its own)."""
    return provider.get_tracer("test").start_as_current_span(TASK)


def replay(fixture: dict[str, Any]) -> tuple[ReadableSpan, ...]:
    """The fixture's span recorded again under a task span; the finished spans (call, task)."""
    provider, exporter = priced_provider()
    tracer = provider.get_tracer(fixture["scope_name"], fixture.get("scope_version") or None)
    with in_task(provider), tracer.start_as_current_span("replayed", attributes=fixture["attributes"]):
        pass
    call, task = exporter.get_finished_spans()
    assert call.instrumentation_scope is not None
    assert call.instrumentation_scope.name == fixture["scope_name"]
    return call, task


def assert_priced(spans: Any, fixture: dict[str, Any]) -> None:
    """`spans`: the call's span and its task span. The call carries its own cost (and no rollup:
    nothing is under it); the task's rollup holds the call's normalised tokens."""
    (call,) = [span for span in spans if span.name != TASK]
    (task,) = [span for span in spans if span.name == TASK]
    attributes, rollup = call.attributes, task.attributes
    assert "costspan.rollup.llm_calls" not in attributes
    assert "costspan.rollup.cost_usd" not in attributes
    if not fixture["llm_call"]:
        assert "gen_ai.usage.cost" not in attributes
        assert "costspan.cost.status" not in attributes
        assert "costspan.rollup.llm_calls" not in rollup
        return
    assert attributes["costspan.cost.status"] == "priced"
    assert attributes["gen_ai.usage.cost"] == fixture["expected_cost_usd"]
    assert rollup["costspan.rollup.cost_usd"] == fixture["expected_cost_usd"]
    assert rollup["costspan.rollup.llm_calls"] == 1
    for field, key in _ROLLUP_TOKENS.items():
        assert rollup.get(key) == (fixture["expected_tokens"].get(field) or None), key


# The real SDKs, against a mock transport.

_ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 200,
        "cache_read_input_tokens": 8000,
        "cache_creation_input_tokens": 1000,
        "output_tokens": 500,
    },
}
_OPENAI_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 10000,
        "completion_tokens": 500,
        "total_tokens": 10500,
        "prompt_tokens_details": {"cached_tokens": 8000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}


def _anthropic_handler(request: httpx2.Request) -> httpx2.Response:
    if request.url.path == "/v1/messages/count_tokens":
        return httpx2.Response(200, json={"input_tokens": 1234})
    return httpx2.Response(200, json=_ANTHROPIC_MESSAGE)


def anthropic_client(open_telemetry: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(
        api_key="test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_anthropic_handler)),
        open_telemetry=open_telemetry,
        max_retries=0,
    )


def openai_client() -> Any:
    import openai

    return openai.OpenAI(
        api_key="test",
        http_client=httpx2.Client(
            transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=_OPENAI_COMPLETION))
        ),
        max_retries=0,
    )


def create_message(client: Any) -> None:
    client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
