"""Budgets with the real google-genai SDK against the fake Gemini server: downgrade, then refusal
before the request, for generate_content and streams (sync and client.aio)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("google.genai")

from google import genai
from google.genai import types

import costspan
from costspan.budget import BudgetExceeded
from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.google_genai import GeminiUsage, add_gemini_routes

MTOK = Decimal(1_000_000)
# Published prices (USD per million tokens, prompts up to 200k tokens): 2.5 Pro $1.25 / $10,
# 2.5 Flash $0.30 / $2.50. The fake reports 120 input and 40 output tokens.
PRO_CALL = (120 * Decimal("1.25") + 40 * Decimal("10")) / MTOK  # $0.00055
FLASH_CALL = (120 * Decimal("0.30") + 40 * Decimal("2.50")) / MTOK  # $0.000136


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_gemini_routes(s, usage=GeminiUsage(), model_version=None)  # echoes the requested model
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[GoogleGenAIInstrumentor]:
    inst = GoogleGenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[genai.Client]:
    c = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.base_url))
    yield c
    c.close()


def models_requested(server: FakeProviderServer) -> list[str]:
    return [r.path.split("/models/")[1].split(":")[0] for r in server.requests]


def test_downgrade_then_refuse_generate_content(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: genai.Client
) -> None:
    downgrade = {"gemini-2.5-pro": "gemini-2.5-flash"}
    limit = 2 * PRO_CALL + FLASH_CALL
    with costspan.budget(limit, scope="block", downgrade=downgrade, downgrade_at=2 * PRO_CALL) as spend:
        for _ in range(3):
            client.models.generate_content(model="gemini-2.5-pro", contents="hi")
        with pytest.raises(BudgetExceeded) as refused:
            client.models.generate_content(model="gemini-2.5-pro", contents="hi")
        with pytest.raises(BudgetExceeded):
            list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi"))
    assert models_requested(server) == ["gemini-2.5-pro", "gemini-2.5-pro", "gemini-2.5-flash"]
    assert spend.spent_usd == limit
    assert refused.value.model == "gemini-2.5-flash"  # the refused call would have been downgraded
    spans = observed.llm_spans()
    third = spans[2].attributes
    assert spans[2].name == "generate_content gemini-2.5-flash"
    assert third["costspan.budget.downgraded_from"] == "gemini-2.5-pro"
    assert third["gen_ai.usage.cost"] == float(FLASH_CALL)
    assert [s.attributes["error.type"] for s in spans[3:]] == ["BudgetExceeded", "BudgetExceeded"]


def test_async_client_and_stream_are_refused_before_any_request(
    instrumented: Any, server: FakeProviderServer
) -> None:
    async def run() -> list[str]:
        client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.base_url))
        outcomes = []
        with costspan.budget(PRO_CALL, scope="block"):
            stream = await client.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="hi")
            outcomes.extend(["chunk" async for _ in stream])
            for attempt in ("call", "stream"):
                try:
                    if attempt == "call":
                        await client.aio.models.generate_content(model="gemini-2.5-pro", contents="hi")
                    else:
                        await client.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="hi")
                    outcomes.append(f"{attempt} sent")
                except BudgetExceeded:
                    outcomes.append(f"{attempt} refused")
        await client.aio.aclose()
        return outcomes

    outcomes = asyncio.run(run())
    assert outcomes[-2:] == ["call refused", "stream refused"]
    assert set(outcomes[:-2]) == {"chunk"}
    assert len(server.requests) == 1


def test_a_model_the_card_prices_at_zero_passes_a_spent_budget(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: genai.Client
) -> None:
    """Gemma on the Gemini API is $0 on the bundled card: it cannot overspend a spent budget."""
    with costspan.budget(FLASH_CALL, scope="block"):
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        with pytest.raises(BudgetExceeded):
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        reply = client.models.generate_content(model="gemma-3-27b-it", contents="hi")
    assert reply.usage_metadata is not None
    assert models_requested(server) == ["gemini-2.5-flash", "gemma-3-27b-it"]
    gemma = observed.llm_spans()[-1]
    assert gemma.attributes["gen_ai.request.model"] == "gemma-3-27b-it"
    assert gemma.attributes["gen_ai.usage.cost"] == 0.0
