"""The per-call shortcuts of issue 7 keep what a user sees: samplers that read attributes still get
them at start, a call is priced once, metrics start recording when a meter provider appears later.

Real openai SDK against the local fake server; real SDK tracer and meter providers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

pytest.importorskip("openai")

from openai import OpenAI

import costspan
from costspan import attributes as A
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.otel_internals.sampling import ignores_attributes
from costspan.pricing import RateCard
from costspan.rollup.call_pricing import CallPricer
from costspan.telemetry.metrics import CallMetrics
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

INPUT, OUTPUT, CACHED = 1200, 400, 200
# gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
COST = float(((INPUT - CACHED) * Decimal("2.50") + CACHED * Decimal("1.25") + OUTPUT * 10) / 1_000_000)
REQUEST = {
    A.GEN_AI_OPERATION_NAME: "chat",
    A.GEN_AI_PROVIDER_NAME: "openai",
    A.GEN_AI_REQUEST_MODEL: "gpt-4o",
    "server.address": "127.0.0.1",
    "gen_ai.request.max_tokens": 50,
}


class RecordingSampler(sampling.Sampler):
    """Samples everything and keeps the attributes each span was started with."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> sampling.SamplingResult:
        self.seen.append(dict(attributes or {}))
        return sampling.SamplingResult(sampling.Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(
            s, usage=OpenAIUsage(prompt_tokens=INPUT, completion_tokens=OUTPUT, cached_tokens=CACHED)
        )
        yield s


def _pipeline(
    sampler: sampling.Sampler | None = None, card: RateCard | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(costspan.CostSpanProcessor(rate_card=card))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _chat(server: FakeProviderServer, provider: TracerProvider, **instrument: Any) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, **instrument)
    try:
        client = OpenAI(api_key="test", base_url=server.base_url + "/v1", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=50
        )
        client.close()
    finally:
        instrumentor.uninstrument()


def _request_attributes(attributes: Any) -> dict[str, Any]:
    return {key: attributes[key] for key in REQUEST if key in attributes}


def test_a_sampler_that_may_read_attributes_gets_the_request_attributes_at_start(server) -> None:
    sampler = RecordingSampler()
    provider, exporter = _pipeline(sampler)
    _chat(server, provider)
    assert [_request_attributes(seen) for seen in sampler.seen] == [REQUEST]
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(COST, rel=1e-12)


@pytest.mark.parametrize(
    "sampler",
    [None, sampling.ALWAYS_ON, sampling.ParentBased(sampling.TraceIdRatioBased(1.0))],
    ids=["default", "always_on", "parentbased_ratio"],
)
def test_under_the_sdk_samplers_the_exported_span_carries_the_same_attributes(server, sampler) -> None:
    provider, exporter = _pipeline(sampler)
    _chat(server, provider)
    (span,) = exporter.get_finished_spans()
    assert _request_attributes(span.attributes) == REQUEST
    assert span.attributes["server.port"] == server.port
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(COST, rel=1e-12)


def test_which_samplers_count_as_not_reading_attributes() -> None:
    class Subclass(sampling.StaticSampler):
        pass

    assert ignores_attributes(sampling.ALWAYS_ON)
    assert ignores_attributes(sampling.DEFAULT_ON)
    assert ignores_attributes(sampling.ParentBasedTraceIdRatio(0.5))
    assert not ignores_attributes(RecordingSampler())
    assert not ignores_attributes(Subclass(sampling.Decision.RECORD_AND_SAMPLE))
    assert not ignores_attributes(sampling.ParentBased(RecordingSampler()))
    assert not ignores_attributes(None)


class CountingCard(RateCard):
    """The default prices, counting how often the processor's card is asked."""

    __slots__ = ("asked",)

    def __init__(self) -> None:
        super().__init__(_base=RateCard.default()._base)
        self.asked = 0

    def price(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        return super().price(*args, **kwargs)


def test_an_instrumented_call_is_priced_once_and_rolled_up_from_the_instrumentors_tally(server) -> None:
    card = CountingCard()
    provider, exporter = _pipeline(card=card)
    with provider.get_tracer("test").start_as_current_span("task"):
        _chat(server, provider, rate_card=card)
    assert card.asked == 1  # by the instrumentor; the processor rolls up the tally it left
    span, task = exporter.get_finished_spans()
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(COST, rel=1e-12)
    assert task.attributes[A.ROLLUP_COST_USD] == span.attributes[A.GEN_AI_USAGE_COST]
    assert task.attributes[A.ROLLUP_LLM_CALLS] == 1
    assert task.attributes[A.ROLLUP_INPUT_TOKENS] == INPUT
    assert task.attributes[A.ROLLUP_CACHE_READ_TOKENS] == CACHED
    assert not any(key.startswith(("_costspan", "costspan.rollup.")) for key in span.attributes)


def test_call_metrics_know_when_they_record_nowhere() -> None:
    assert not CallMetrics(NoOpMeterProvider()).recording()
    assert CallMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()])).recording()


def test_metrics_of_a_global_proxy_start_recording_once_a_provider_is_set() -> None:
    proxy = _ProxyMeterProvider()
    metrics = CallMetrics(proxy)
    assert not metrics.recording()  # nothing behind the proxy yet: each call skips the work
    reader = InMemoryMetricReader()
    proxy.on_set_meter_provider(MeterProvider(metric_readers=[reader]))
    assert metrics.recording()
    metrics.record({A.GEN_AI_PROVIDER_NAME: "openai"}, {}, 0.5, 10, 2, 0.25, None)
    data = reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "costspan.cost"}


def test_a_card_whose_price_is_overridden_is_always_asked_through_price() -> None:
    card = CountingCard()
    tally = CallPricer(card).price_llm(
        {
            A.GEN_AI_PROVIDER_NAME: "openai",
            A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        },
        False,
        0,
        {},
    )
    assert card.asked == 1
    assert tally[0] > 0


def test_a_card_whose_pricer_for_is_overridden_is_asked_through_price() -> None:
    """A subclass may hand out price objects of its own (with only `cost`): the fast path, which
    needs `cost_usd`, is not taken for it."""

    class CostOnly:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def cost(self, *args: int) -> Any:
            return self.inner.cost(*args)

    class WrappingCard(RateCard):
        def __init__(self) -> None:
            super().__init__(_base=RateCard.default()._base)

        def pricer_for(self, provider: str | None, model: str) -> Any:
            pricer = super().pricer_for(provider, model)
            return CostOnly(pricer) if pricer is not None else None

    out: dict[str, Any] = {}
    tally = CallPricer(WrappingCard()).price_llm(
        {
            A.GEN_AI_PROVIDER_NAME: "openai",
            A.GEN_AI_REQUEST_MODEL: "gpt-4o",
            A.GEN_AI_USAGE_INPUT_TOKENS: INPUT,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
        },
        False,
        0,
        out,
    )
    assert out[A.COST_STATUS] == A.STATUS_PRICED
    assert out[A.GEN_AI_USAGE_COST] == pytest.approx((INPUT * 2.5 + OUTPUT * 10) / 1e6, rel=1e-12)
    assert tally[0] == INPUT * 2_500_000_000_000_000_000 + OUTPUT * 10_000_000_000_000_000_000


def _counting_chunk_builds(client: Any) -> list[int]:
    """Counts the typed objects the SDK builds from SSE events (its `_process_response_data`)."""
    built = [0]
    build = client._process_response_data

    def counting(*args: Any, **kwargs: Any) -> Any:
        built[0] += 1
        return build(*args, **kwargs)

    client._process_response_data = counting
    return built


def test_the_usage_chunk_costspan_asked_for_is_never_built_by_the_sdk(server) -> None:
    provider, exporter = _pipeline()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = OpenAI(api_key="test", base_url=server.base_url + "/v1", max_retries=0)
        built = _counting_chunk_builds(client)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        client.close()
    finally:
        instrumentor.uninstrument()
    assert chunks and all(chunk.choices for chunk in chunks)
    assert built[0] == len(chunks)  # no typed object for the hidden usage-only chunk
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == INPUT
    assert span.attributes[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == CACHED
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(COST, rel=1e-12)


def test_async_streams_read_the_usage_chunk_off_the_events_too(server) -> None:
    from openai import AsyncOpenAI

    provider, exporter = _pipeline()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    async def run() -> tuple[list[Any], int]:
        client = AsyncOpenAI(api_key="test", base_url=server.base_url + "/v1", max_retries=0)
        built = _counting_chunk_builds(client)
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
        return chunks, built[0]

    try:
        chunks, built = asyncio.run(run())
    finally:
        instrumentor.uninstrument()
    assert chunks and built == len(chunks)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == OUTPUT
    assert span.attributes[A.GEN_AI_USAGE_COST] == pytest.approx(COST, rel=1e-12)
