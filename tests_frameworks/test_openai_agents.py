"""The OpenAI Agents SDK through OpenInference's and OpenLLMetry's bridges: their LLM span wraps
costspan's SDK span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_trace_processors,
)
from openai import AsyncOpenAI

import costspan
from conftest import CLAUDE, Run


def _openinference() -> Any:
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    return OpenAIAgentsInstrumentor()


def _openllmetry() -> Any:
    from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    return OpenAIAgentsInstrumentor()


@pytest.fixture(params=[_openinference, _openllmetry], ids=["openinference", "openllmetry"])
def bridge(request: pytest.FixtureRequest, run: Run) -> Iterator[None]:
    instrumentor = request.param()
    set_trace_processors([])  # the SDK's default exporter (to OpenAI) off; only the bridge records
    instrumentor.instrument(tracer_provider=run.tracer_provider)
    yield
    instrumentor.uninstrument()
    set_trace_processors([])  # uninstrument leaves the bridge's trace processor registered


@function_tool
def get_weather(city: str) -> str:
    return f"sunny in {city}"


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_openai_agents_costs_each_request_once(run: Run, bridge: None, api: str, streamed: bool) -> None:
    set_default_openai_api(api)  # type: ignore[arg-type]
    agent = Agent(name="weather_agent", model="gpt-4o", tools=[get_weather])

    async def go() -> str:
        client = AsyncOpenAI(base_url=run.openai_base_url, api_key="test")
        set_default_openai_client(client, use_for_tracing=False)
        async with client:
            return await turns()

    async def turns() -> str:
        if streamed:
            result = Runner.run_streamed(agent, "Weather in Paris?")
            async for _ in result.stream_events():
                pass
            return str(result.final_output)
        return str((await Runner.run(agent, "Weather in Paris?")).final_output)

    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        assert asyncio.run(go()) == "It is sunny."
    run.assert_one_cost_per_request(agent="weather_agent", budget=spend)
    assert sum(1 for s in run.spans() if s.attributes.get("costspan.cost.status") == "duplicate") == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_openai_agents_litellm_model_on_anthropic_costs_each_request_once(
    run: Run, bridge: None, streamed: bool
) -> None:
    """The Agents SDK's Anthropic route: `LitellmModel("anthropic/...")` (its litellm extension), so
    costspan's LiteLLM span is the request's call."""
    from agents.extensions.models.litellm_model import LitellmModel

    model = LitellmModel(f"anthropic/{CLAUDE}", base_url=run.anthropic_base_url, api_key="test")
    agent = Agent(name="weather_agent", model=model, tools=[get_weather])

    async def go() -> str:
        if streamed:
            result = Runner.run_streamed(agent, "Weather in Paris?")
            async for _ in result.stream_events():
                pass
            return str(result.final_output)
        return str((await Runner.run(agent, "Weather in Paris?")).final_output)

    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        assert asyncio.run(go()) == "It is sunny."
    run.assert_one_cost_per_request(
        agent="weather_agent",
        budget=spend,
        provider="anthropic",
        counted_scope="costspan.instrumentation.litellm",
    )
    assert [bool((r.json() or {}).get("stream")) for r in run.server.requests] == [streamed, streamed]
    assert sum(1 for s in run.spans() if s.attributes.get("costspan.cost.status") == "duplicate") == 2
