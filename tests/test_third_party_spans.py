"""Spans written by other instrumentation libraries are priced from their attributes.

Each fixture in tests/fixtures/third_party/ holds one library's span: captured from the real
package, or reconstructed from its source where it cannot run here (the fixture's `source` says
which), with the cost worked by hand from published prices.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan
from costspan.usage import Usage, is_llm_call, usage_of

FIXTURES = Path(__file__).parent / "fixtures" / "third_party"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

_ROLLUP_TOKENS = {
    "input_tokens": "costspan.rollup.input_tokens",
    "output_tokens": "costspan.rollup.output_tokens",
    "cache_read_tokens": "costspan.rollup.cache_read_tokens",
    "cache_write_tokens": "costspan.rollup.cache_write_tokens",
    "reasoning_tokens": "costspan.rollup.reasoning_tokens",
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(costspan.CostSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _replay(fixture: dict[str, Any]) -> ReadableSpan:
    provider, exporter = _provider()
    tracer = provider.get_tracer(fixture["scope_name"], fixture.get("scope_version") or None)
    with tracer.start_as_current_span("replayed", attributes=fixture["attributes"]):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == fixture["scope_name"]
    return span


def _assert_priced(attributes: Any, fixture: dict[str, Any]) -> None:
    if not fixture["llm_call"]:
        assert "gen_ai.usage.cost" not in attributes
        assert "costspan.cost.status" not in attributes
        assert "costspan.rollup.llm_calls" not in attributes
        return
    assert attributes["costspan.cost.status"] == "priced"
    assert attributes["gen_ai.usage.cost"] == fixture["expected_cost_usd"]
    assert attributes["costspan.rollup.cost_usd"] == fixture["expected_cost_usd"]
    assert attributes["costspan.rollup.llm_calls"] == 1
    for field, key in _ROLLUP_TOKENS.items():
        assert attributes.get(key) == (fixture["expected_tokens"].get(field) or None), key


def _fixture_param(path: Path) -> Any:
    return pytest.param(_load(path), id=path.stem)


@pytest.mark.parametrize("fixture", [_fixture_param(path) for path in FIXTURE_FILES])
def test_processor_prices_third_party_span(fixture: dict[str, Any]) -> None:
    _assert_priced(_replay(fixture).attributes, fixture)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[path.stem for path in FIXTURE_FILES])
def test_usage_of_with_scope(path: Path) -> None:
    fixture = _load(path)
    attributes, scope = fixture["attributes"], fixture["scope_name"]
    assert is_llm_call(attributes, scope) is fixture["llm_call"]
    assert is_llm_call(attributes, scope_name=scope) is fixture["llm_call"]
    if fixture["llm_call"]:
        expected = Usage(
            *(fixture["expected_tokens"].get(field, 0) for field in Usage._fields),
        )
        assert usage_of(attributes, scope) == expected
        assert usage_of(attributes) == expected  # the one-argument form still works


def test_fixtures_present() -> None:
    assert {path.stem for path in FIXTURE_FILES} >= {
        "anthropic_sdk",
        "anthropic_sdk_count_tokens",
        "openllmetry_anthropic",
        "openllmetry_anthropic_legacy",
        "openllmetry_openai",
        "openinference_anthropic",
        "openinference_openai",
        "openai_v2_default",
        "openai_v2_latest_experimental",
    }


def test_anthropic_sdk_span_counts_are_not_calls_in_other_scopes() -> None:
    count_tokens = _load(FIXTURES / "anthropic_sdk_count_tokens.json")["attributes"]
    # Without a scope (or from another library) a span with a model is still taken as a call.
    assert is_llm_call(count_tokens)
    assert is_llm_call(count_tokens, "some.other.library")
    assert not is_llm_call(count_tokens, "com.anthropic.sdk.python.bedrock")
    assert not is_llm_call(count_tokens, "com.anthropic.sdk.python")
    assert is_llm_call(count_tokens, "com.anthropic.sdk.pythonic")


def test_openllmetry_reasoning_tokens_are_read() -> None:
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "o3-mini",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 900,
        "gen_ai.usage.reasoning_tokens": 640,
    }
    usage = usage_of(attributes, "opentelemetry.instrumentation.openai.v1")
    assert usage == Usage(100, 900, 0, 0, 640)


# ---------------------------------------------------------------------------------------------
# The real packages, run against a mock transport.

_ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
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


def _anthropic_client(open_telemetry: Any) -> Any:
    anthropic = pytest.importorskip("anthropic")
    return anthropic.Anthropic(
        api_key="test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(_anthropic_handler)),
        open_telemetry=open_telemetry,
        max_retries=0,
    )


def _openai_client() -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(
        api_key="test",
        http_client=httpx2.Client(
            transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=_OPENAI_COMPLETION))
        ),
        max_retries=0,
    )


def _create_message(client: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # claude-sonnet-4-5's deprecation notice
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


def test_real_anthropic_sdk_spans_are_priced() -> None:
    provider, exporter = _provider()
    client = _anthropic_client({"tracer_provider": provider})
    _create_message(client)
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "com.anthropic.sdk.python"
    _assert_priced(span.attributes, _load(FIXTURES / "anthropic_sdk.json"))


def test_real_anthropic_sdk_count_tokens_is_not_a_call() -> None:
    provider, exporter = _provider()
    client = _anthropic_client({"tracer_provider": provider})
    client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    (span,) = exporter.get_finished_spans()
    assert span.name == "anthropic.messages.count_tokens"
    _assert_priced(span.attributes, _load(FIXTURES / "anthropic_sdk_count_tokens.json"))


_INSTRUMENTORS = {
    "openllmetry_anthropic": ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openllmetry_openai": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
    "openinference_anthropic": ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openinference_openai": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
}


@pytest.mark.parametrize("name", sorted(_INSTRUMENTORS))
def test_real_instrumentor_spans_are_priced(name: str) -> None:
    module_name, class_name = _INSTRUMENTORS[name]
    module = pytest.importorskip(module_name)
    fixture = _load(FIXTURES / f"{name}.json")
    provider, exporter = _provider()
    instrumentor = getattr(module, class_name)()
    instrumentor.instrument(tracer_provider=provider)
    try:
        if "anthropic" in name:
            # The SDK's own spans are off so that only the instrumentor's span is recorded.
            _create_message(_anthropic_client(False))
        else:
            _openai_client().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == fixture["scope_name"]
    _assert_priced(span.attributes, fixture)
