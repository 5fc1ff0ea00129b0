"""LangChain `create_agent` (LangGraph) through OpenInference and OpenLLMetry, with ChatOpenAI and
ChatAnthropic (langchain-anthropic): their LLM span is a sibling of costspan's SDK span (neither
attaches its span as the current context)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

import costspan
from conftest import CLAUDE, TOOL, Run


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


def _llm(run: Run, provider: str, streamed: bool) -> Any:
    if provider == "anthropic":
        return ChatAnthropic(
            model_name=CLAUDE,
            base_url=run.anthropic_base_url,
            api_key=SecretStr("test"),
            max_tokens=1024,
            streaming=streamed,
            stream_usage=True,
        )
    return ChatOpenAI(
        model="gpt-4o", base_url=run.openai_base_url, api_key="test", streaming=streamed, stream_usage=True
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_langchain_agent_costs_each_request_once(
    run: Run, bridge: str, provider: str, streamed: bool
) -> None:
    agent = create_agent(_llm(run, provider, streamed), tools=[get_weather], name="weather_agent")
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        if streamed:
            for _ in agent.stream({"messages": [("user", "Weather in Paris?")]}, stream_mode="messages"):
                pass
        else:
            result = agent.invoke({"messages": [("user", "Weather in Paris?")]})
            assert result["messages"][-1].content == "It is sunny."
    run.assert_one_cost_per_request(budget=spend, provider=provider)
    assert [bool((r.json() or {}).get("stream")) for r in run.server.requests] == [streamed, streamed]
    duplicates = [s for s in run.spans() if s.attributes.get("costspan.cost.status") == "duplicate"]
    assert len(duplicates) == 2
    # The bridge's span is the duplicate: costspan's SDK span, with the cached tokens, counts.
    assert {s.instrumentation_scope.name.split(".")[0] for s in duplicates} == {bridge.split(".")[0]}
