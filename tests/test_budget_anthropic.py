"""Budgets with the real anthropic SDK against the fake Anthropic server: downgrade, refusal before
the request (messages.create, the messages.stream helper, async), pre-flight with max_tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("anthropic")

from anthropic import Anthropic, AsyncAnthropic

import costspan
from costspan.budget import BudgetExceeded
from costspan.instrumentation.anthropic import AnthropicInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.anthropic import AnthropicUsage, add_anthropic_routes

MTOK = Decimal(1_000_000)
# Published prices (USD per million tokens): Sonnet 4.6 $3 / $15, Haiku 4.5 $1 / $5. The fake
# reports 100 input and 40 output tokens.
SONNET_CALL = (100 * Decimal(3) + 40 * Decimal(15)) / MTOK  # $0.0009
HAIKU_CALL = (100 * Decimal(1) + 40 * Decimal(5)) / MTOK  # $0.0003
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_anthropic_routes(s, usage=AnthropicUsage())
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[AnthropicInstrumentor]:
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[Anthropic]:
    c = Anthropic(base_url=server.base_url, api_key="test", max_retries=0)
    yield c
    c.close()


def sent_models(server: FakeProviderServer) -> list[str]:
    return [r.json()["model"] for r in server.requests if r.path.startswith("/v1/messages")]


def create(client: Anthropic, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "claude-sonnet-4-6")
    kwargs.setdefault("max_tokens", 1024)
    return client.messages.create(messages=MESSAGES, **kwargs)


def test_downgrade_then_refuse_messages_and_the_stream_helper(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: Anthropic
) -> None:
    downgrade = {"claude-sonnet-4-6": "claude-haiku-4-5"}
    limit = 2 * SONNET_CALL + HAIKU_CALL
    with costspan.budget(limit, scope="block", downgrade=downgrade, downgrade_at=2 * SONNET_CALL) as spend:
        create(client)
        create(client)
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=MESSAGES) as stream:
            text = stream.get_final_text()
        with pytest.raises(BudgetExceeded):
            create(client)
        with pytest.raises(BudgetExceeded):  # noqa: SIM117
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=MESSAGES):
                pass
    assert text
    assert sent_models(server) == ["claude-sonnet-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]
    assert spend.spent_usd == limit
    spans = observed.llm_spans()
    third = spans[2]
    assert third.name == "chat claude-haiku-4-5"
    assert third.attributes["costspan.budget.downgraded_from"] == "claude-sonnet-4-6"
    assert third.attributes["gen_ai.usage.cost"] == float(HAIKU_CALL)
    assert [s.attributes["error.type"] for s in spans[3:]] == ["BudgetExceeded", "BudgetExceeded"]


def test_preflight_uses_max_tokens_and_the_async_client_is_refused(
    instrumented: Any, server: FakeProviderServer
) -> None:
    # "user" + "hello" = 9 characters -> 3 tokens estimated; 1,000 max output tokens x $15/MTok.
    worst = (3 * Decimal(3) + 1000 * Decimal(15)) / MTOK

    async def run() -> BudgetExceeded:
        client = AsyncAnthropic(base_url=server.base_url, api_key="test", max_retries=0)
        async with client:
            with costspan.budget(SONNET_CALL + worst - Decimal("0.000001"), scope="block", preflight=True):
                await client.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES)
                try:
                    await client.messages.create(
                        model="claude-sonnet-4-6", max_tokens=1000, messages=MESSAGES
                    )
                except BudgetExceeded as exc:
                    return exc
        raise AssertionError("not refused")

    refused = asyncio.run(run())
    assert refused.worst_case_usd == worst
    assert refused.spent_usd == SONNET_CALL
    assert len(sent_models(server)) == 1
