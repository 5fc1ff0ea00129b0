"""pydantic-ai `Agent.instrument_all()`: its `chat` span wraps costspan's SDK span (parent-child)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

import costspan
from conftest import TOOL, Run


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
