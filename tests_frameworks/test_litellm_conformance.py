"""The shared scenarios (tests/conformance.py) for the LiteLLM instrumentor, on the fake OpenAI routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("litellm")

import litellm
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conformance import MESSAGES, MTOK, SCENARIOS, Provider
from costspan import CostSpanProcessor
from costspan.instrumentation.litellm import LiteLLMInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes, openai_error


def _api(server: FakeProviderServer) -> dict[str, Any]:
    return {"api_base": server.base_url + "/v1", "api_key": "test", "num_retries": 0}


# gpt-4o through LiteLLM: $2.50 input, $1.25 cached input, $10 output per million tokens.
LITELLM = Provider(
    name="litellm",
    instrumentor=LiteLLMInstrumentor,
    add_routes=lambda s: add_openai_routes(
        s,
        usage=OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=200, reasoning_tokens=100),
    ),
    client=_api,  # LiteLLM has no client: the call's connection keywords
    chat=lambda api: litellm.completion(model="openai/gpt-4o", messages=MESSAGES, **api),
    stream=lambda api: list(litellm.completion(model="openai/gpt-4o", messages=MESSAGES, stream=True, **api)),
    failure=openai_error(400, "bad request"),
    error_type="400",
    provider="openai",
    operation="chat",
    input_tokens=1200,
    output_tokens=400,
    cost=(1000 * Decimal("2.50") + 200 * Decimal("1.25") + 400 * Decimal(10)) / MTOK,
)


class Observed:
    def __init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(CostSpanProcessor())
        self.exporter = InMemorySpanExporter()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider()

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


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
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        LITELLM.add_routes(s)
        yield s


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(scenario: Callable[..., None], observed: Observed, server: FakeProviderServer) -> None:
    scenario(LITELLM, observed, server)
