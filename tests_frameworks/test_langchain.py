"""LangChain `create_agent` (LangGraph) through OpenInference and OpenLLMetry: their LLM span is a
sibling of costspan's SDK span (neither attaches its span as the current context)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

import costspan
from conftest import TOOL, Run


def _openinference() -> Any:
    from openinference.instrumentation.langchain import LangChainInstrumentor

    return LangChainInstrumentor()


def _openllmetry() -> Any:
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    return LangchainInstrumentor()


@pytest.fixture(params=[_openinference, _openllmetry], ids=["openinference", "openllmetry"])
def bridge(request: pytest.FixtureRequest, run: Run) -> Iterator[str]:
    instrumentor = request.param()
    instrumentor.instrument(tracer_provider=run.tracer_provider)
    yield type(instrumentor).__module__
    instrumentor.uninstrument()


@tool(TOOL)
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_langchain_agent_costs_each_request_once(run: Run, bridge: str, streamed: bool) -> None:
    llm = ChatOpenAI(
        model="gpt-4o", base_url=run.openai_base_url, api_key="test", streaming=streamed, stream_usage=True
    )
    agent = create_agent(llm, tools=[get_weather], name="weather_agent")
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        if streamed:
            for _ in agent.stream({"messages": [("user", "Weather in Paris?")]}, stream_mode="messages"):
                pass
        else:
            result = agent.invoke({"messages": [("user", "Weather in Paris?")]})
            assert result["messages"][-1].content == "It is sunny."
    run.assert_one_cost_per_request(budget=spend)
    duplicates = [s for s in run.spans() if s.attributes.get("costspan.cost.status") == "duplicate"]
    assert len(duplicates) == 2
    # The bridge's span is the duplicate: costspan's SDK span, with the cached tokens, counts.
    assert {s.instrumentation_scope.name.split(".")[0] for s in duplicates} == {bridge.split(".")[0]}
