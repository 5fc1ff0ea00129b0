"""OpenLLMetry's and OpenInference's real instrumentors, on the real SDKs: their spans are priced.

Run by .ci/run in a virtualenv of their own (`pip install -e ".[test,thirdparty]"`), since they
register `opentelemetry_instrumentor` entry points for the same SDKs as costspan.
"""

from __future__ import annotations

import importlib

import pytest

from third_party_spans import (
    FIXTURES,
    anthropic_client,
    assert_priced,
    create_message,
    in_task,
    load_fixture,
    openai_client,
    priced_provider,
)

_INSTRUMENTORS = {
    "openllmetry_anthropic": ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openllmetry_openai": ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
    "openinference_anthropic": ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),
    "openinference_openai": ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
}


@pytest.mark.parametrize("name", sorted(_INSTRUMENTORS))
def test_real_instrumentor_spans_are_priced(name: str) -> None:
    module_name, class_name = _INSTRUMENTORS[name]
    module = importlib.import_module(module_name)
    fixture = load_fixture(FIXTURES / f"{name}.json")
    provider, exporter = priced_provider()
    instrumentor = getattr(module, class_name)()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with in_task(provider):
            if "anthropic" in name:
                # The SDK's own spans are off so that only the instrumentor's span is recorded.
                create_message(anthropic_client(False))
            else:
                openai_client().chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        instrumentor.uninstrument()
    span, task = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == fixture["scope_name"]
    assert_priced((span, task), fixture)
