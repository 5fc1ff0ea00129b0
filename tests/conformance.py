"""One scenario set for every provider instrumentor, each provider on its fake routes (costspan.testing).

A provider is described once (`Provider`: its instrumentor, routes, client, one chat call, one
stream, a failing reply); the scenarios are the same for all: a chat call priced exactly, a stream
priced exactly, a failing call that re-raises what the SDK raises uninstrumented and leaves one
error span. `tests/test_provider_conformance.py` runs them for the SDK instrumentors,
`tests_frameworks/test_litellm_conformance.py` for LiteLLM (its own virtualenv in CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode

from costspan.testing import FakeProviderServer, Reply

MTOK = Decimal(1_000_000)
PROMPT = "SECRET-PROMPT-7f3a tell me about cost"
MESSAGES = [{"role": "user", "content": PROMPT}]


@dataclass(frozen=True)
class Provider:
    """How one provider's SDK is driven against its fake routes, and what its call costs."""

    name: str
    instrumentor: Callable[[], Any]
    add_routes: Callable[[FakeProviderServer], None]
    client: Callable[[FakeProviderServer], Any]  # made without retries: one request per call
    chat: Callable[[Any], Any]
    stream: Callable[[Any], list[Any]]  # reads the whole stream
    failure: Reply  # a reply the SDK raises on, without retrying
    error_type: str
    provider: str  # gen_ai.provider.name
    operation: str  # gen_ai.operation.name
    input_tokens: int
    output_tokens: int
    cost: Decimal  # the exact price of one call, from the published prices

    def __str__(self) -> str:
        return self.name


@contextmanager
def instrumented(provider: Provider, observed: Any) -> Iterator[None]:
    inst = provider.instrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    try:
        yield
    finally:
        inst.uninstrument()


@contextmanager
def client_of(provider: Provider, server: FakeProviderServer) -> Iterator[Any]:
    client = provider.client(server)
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if callable(close):
            close()


def assert_priced(provider: Provider, span: Any) -> None:
    a = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is not StatusCode.ERROR
    assert a["gen_ai.provider.name"] == provider.provider
    assert a["gen_ai.operation.name"] == provider.operation
    assert a["gen_ai.usage.input_tokens"] == provider.input_tokens
    assert a["gen_ai.usage.output_tokens"] == provider.output_tokens
    assert a["costspan.cost.status"] == "priced"
    assert a["gen_ai.usage.cost"] == float(provider.cost)
    assert "error.type" not in a


def chat_is_priced_exactly(provider: Provider, observed: Any, server: FakeProviderServer) -> None:
    with instrumented(provider, observed), client_of(provider, server) as client:
        provider.chat(client)
    (span,) = observed.llm_spans()
    assert_priced(provider, span)


def stream_is_priced_exactly(provider: Provider, observed: Any, server: FakeProviderServer) -> None:
    with instrumented(provider, observed), client_of(provider, server) as client:
        assert provider.stream(client)
    (span,) = observed.llm_spans()
    assert_priced(provider, span)


def _raised(provider: Provider, server: FakeProviderServer) -> BaseException:
    server.script(provider.failure)
    with client_of(provider, server) as client:
        try:
            provider.chat(client)
        except Exception as exc:
            return exc
    raise AssertionError(f"{provider.name}: the failing reply raised nothing")


def failing_call_reraises_and_records_one_error(
    provider: Provider, observed: Any, server: FakeProviderServer
) -> None:
    bare = _raised(provider, server)  # what the SDK raises uninstrumented
    with instrumented(provider, observed):
        traced = _raised(provider, server)
    assert type(traced) is type(bare)
    assert str(traced) == str(bare)
    (span,) = observed.llm_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == provider.error_type
    assert "gen_ai.usage.cost" not in span.attributes


SCENARIOS = (chat_is_priced_exactly, stream_is_priced_exactly, failing_call_reraises_and_records_one_error)
