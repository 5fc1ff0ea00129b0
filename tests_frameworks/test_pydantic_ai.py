"""pydantic-ai `Agent.instrument_all()`: its `chat` span wraps costspan's SDK span (parent-child),
with OpenAI (chat and responses models) and Anthropic models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel, AnthropicModelSettings
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

import costspan
from conftest import CLAUDE, CLAUDE_AGENT_COST, CLAUDE_TURN_COST, TOOL, Run


@pytest.fixture
def instrumented(run: Run) -> Iterator[None]:
    Agent.instrument_all(
        InstrumentationSettings(tracer_provider=run.tracer_provider, meter_provider=run.meter_provider)
    )
    yield
    Agent.instrument_all(False)


def _agent(run: Run, model_class: type) -> Agent[None, str]:
    model = model_class("gpt-4o", provider=OpenAIProvider(base_url=run.openai_base_url, api_key="test"))
    agent: Agent[None, str] = Agent(model, name="weather_agent")

    @agent.tool_plain(name=TOOL)
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    return agent


@pytest.mark.parametrize("model_class", [OpenAIChatModel, OpenAIResponsesModel], ids=["chat", "responses"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_pydantic_ai_agent_costs_each_request_once(
    run: Run, instrumented: None, model_class: type, streamed: bool
) -> None:
    agent = _agent(run, model_class)
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        if streamed:

            async def stream() -> None:
                async with agent.run_stream("Weather in Paris?") as result:
                    async for _ in result.stream_text():
                        pass

            asyncio.run(stream())
        else:
            assert agent.run_sync("Weather in Paris?").output == "It is sunny."
    run.assert_one_cost_per_request(agent="weather_agent", budget=spend)
    wrappers = [
        s for s in run.spans() if s.instrumentation_scope.name == "pydantic-ai" and s.name == "chat gpt-4o"
    ]
    assert len(wrappers) == 2
    for wrapper in wrappers:
        assert wrapper.attributes["costspan.cost.status"] == "duplicate"
        (child,) = [
            s for s in run.spans() if s.parent is not None and s.parent.span_id == wrapper.context.span_id
        ]
        assert wrapper.attributes["costspan.cost.counted_in"] == format(child.context.span_id, "016x")
        assert wrapper.attributes["costspan.rollup.llm_calls"] == 1  # its rollup is the request below


def _claude_agent(run: Run) -> Agent[None, str]:
    provider = AnthropicProvider(base_url=run.anthropic_base_url, api_key="test")
    # max_tokens below the size for which pydantic-ai streams a "whole" request behind the scenes.
    model = AnthropicModel(CLAUDE, provider=provider, settings=AnthropicModelSettings(max_tokens=1024))
    agent: Agent[None, str] = Agent(model, name="weather_agent")

    @agent.tool_plain(name=TOOL)
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    return agent


def _drive(agent: Agent[None, str], streamed: bool) -> None:
    if streamed:

        async def stream() -> None:
            async with agent.run_stream("Weather in Paris?") as result:
                async for _ in result.stream_text():
                    pass

        asyncio.run(stream())
    else:
        assert agent.run_sync("Weather in Paris?").output == "It is sunny."


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_pydantic_ai_anthropic_agent_costs_each_request_once(
    run: Run, instrumented: None, streamed: bool
) -> None:
    """AnthropicModel (the SDK's `beta.messages.create`): pydantic-ai's `chat` span wraps costspan's,
    and the SDK's own span for the call is not made while costspan's instrumentor is on."""
    agent = _claude_agent(run)
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        _drive(agent, streamed)
    run.assert_one_cost_per_request(agent="weather_agent", budget=spend, provider="anthropic")
    assert [bool((r.json() or {}).get("stream")) for r in run.server.requests] == [streamed, streamed]
    wrappers = [
        s for s in run.spans() if s.instrumentation_scope.name == "pydantic-ai" and s.name == f"chat {CLAUDE}"
    ]
    assert len(wrappers) == 2
    for wrapper in wrappers:
        assert wrapper.attributes["costspan.cost.status"] == "duplicate"
        (child,) = [
            s for s in run.spans() if s.parent is not None and s.parent.span_id == wrapper.context.span_id
        ]
        assert child.instrumentation_scope.name == "costspan.instrumentation.anthropic"
        assert child.attributes["gen_ai.usage.cache_read.input_tokens"] == 400
        assert wrapper.attributes["costspan.cost.counted_in"] == format(child.context.span_id, "016x")


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_pydantic_ai_anthropic_sdk_own_span_counted_once_without_costspans_instrumentor(
    run: Run, instrumented: None, streamed: bool
) -> None:
    """anthropic 2.x traces its own calls (`anthropic.messages.create`, on the global provider): with
    costspan's Anthropic instrumentor off, that span is the call below pydantic-ai's `chat` span and
    the one priced. The metric and budgets are charged by costspan's own call spans only (README,
    "Late and backdated calls"), so here they see nothing."""
    from costspan.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().uninstrument()
    agent = _claude_agent(run)
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        _drive(agent, streamed)
    assert run.model_requests() == 2
    sdk = run.sdk_spans()
    assert [s.name for s in sdk] == ["anthropic.messages.create"] * 2
    rollup = run.span("ask").attributes
    assert Decimal(repr(rollup["costspan.rollup.cost_usd"])) == CLAUDE_AGENT_COST
    assert rollup["costspan.rollup.llm_calls"] == 2
    assert rollup["costspan.rollup.cache_read_tokens"] == 800
    assert run.trace_cost_sum() == CLAUDE_AGENT_COST
    priced = [s for s in run.spans() if "gen_ai.usage.cost" in s.attributes]
    assert priced == sdk
    for span in sdk:
        assert Decimal(repr(span.attributes["gen_ai.usage.cost"])) == CLAUDE_TURN_COST
        wrapper = run.span_by_id(span.parent.span_id)
        assert wrapper.name == f"chat {CLAUDE}"
        assert wrapper.attributes["costspan.cost.status"] == "duplicate"
        assert wrapper.attributes["costspan.cost.counted_in"] == format(span.context.span_id, "016x")
    assert run.metric_cost() == 0
    assert spend.spent_usd == 0
