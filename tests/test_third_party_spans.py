"""Spans written by other instrumentation libraries are priced from their attributes.

Each fixture in tests/fixtures/third_party/ holds one library's span: captured from the real
package, or reconstructed from its source where it cannot run here (the fixture's `source` says
which), with the cost worked by hand from published prices. The libraries themselves run in
tests_thirdparty/ (their own virtualenv in .ci/run: they register instrumentors for the same SDKs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costspan.rollup.usage import Usage, is_llm_call, usage_of
from third_party_spans import (
    FIXTURE_FILES,
    FIXTURES,
    anthropic_client,
    assert_priced,
    create_message,
    in_task,
    load_fixture,
    priced_provider,
    replay,
)


def _fixture_param(path: Path) -> Any:
    return pytest.param(load_fixture(path), id=path.stem)


@pytest.mark.parametrize("fixture", [_fixture_param(path) for path in FIXTURE_FILES])
def test_processor_prices_third_party_span(fixture: dict[str, Any]) -> None:
    assert_priced(replay(fixture), fixture)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[path.stem for path in FIXTURE_FILES])
def test_usage_of_with_scope(path: Path) -> None:
    fixture = load_fixture(path)
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
    count_tokens = load_fixture(FIXTURES / "anthropic_sdk_count_tokens.json")["attributes"]
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


def test_real_anthropic_sdk_spans_are_priced() -> None:
    provider, exporter = priced_provider()
    client = anthropic_client({"tracer_provider": provider})
    with in_task(provider):
        create_message(client)
    span, task = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "com.anthropic.sdk.python"
    assert_priced((span, task), load_fixture(FIXTURES / "anthropic_sdk.json"))


def test_real_anthropic_sdk_count_tokens_is_not_a_call() -> None:
    provider, exporter = priced_provider()
    client = anthropic_client({"tracer_provider": provider})
    with in_task(provider):
        client.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}])
    span, task = exporter.get_finished_spans()
    assert span.name == "anthropic.messages.count_tokens"
    assert_priced((span, task), load_fixture(FIXTURES / "anthropic_sdk_count_tokens.json"))
