"""LiteLLM as the agent's client, through costspan's LiteLLM instrumentor (on by `costspan.configure()`):
a two-turn tool-calling loop on `openai/gpt-4o` and `anthropic/claude-haiku-4-5`, whole and streamed.

LiteLLM sends both through its own HTTP handlers, not the provider SDKs, so costspan's LiteLLM span is
the one span per request (no SDK span beside it to match).
"""

from __future__ import annotations

from typing import Any

import litellm
import pytest

import costspan
from conftest import CLAUDE, TOOL, Run

_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL,
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _two_turns(model: str, api_base: str, streamed: bool) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if streamed else {}
    for turn in range(2):
        reply: Any = litellm.completion(
            model=model,
            messages=messages,
            tools=_TOOLS,
            max_tokens=1024,
            api_base=api_base,
            api_key="test",
            stream=streamed,
            **options,
        )
        if streamed:
            reply = litellm.stream_chunk_builder(list(reply), messages=messages)
        if turn == 0:
            call = reply.choices[0].message.tool_calls[0]
            assert call.function.name == TOOL
            messages.append(reply.choices[0].message.model_dump())
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny in Paris"})
    return str(reply.choices[0].message.content)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_litellm_agent_loop_costs_each_request_once(run: Run, provider: str, streamed: bool) -> None:
    assert "costspan_litellm" in run.setup.instrumented
    model, api_base = (
        (f"anthropic/{CLAUDE}", run.anthropic_base_url)
        if provider == "anthropic"
        else ("openai/gpt-4o", run.openai_base_url)
    )
    with costspan.task("ask", customer_id="cus_1"), costspan.budget(1.0, on_exceed="warn") as spend:
        assert _two_turns(model, api_base, streamed) == "It is sunny."
    run.assert_one_cost_per_request(
        budget=spend, provider=provider, counted_scope="costspan.instrumentation.litellm"
    )
    assert [bool((r.json() or {}).get("stream")) for r in run.server.requests] == [streamed, streamed]
    calls = [s for s in run.spans() if s.instrumentation_scope.name == "costspan.instrumentation.litellm"]
    assert [s.attributes["gen_ai.provider.name"] for s in calls] == [provider, provider]
    assert [s.attributes["gen_ai.usage.cache_read.input_tokens"] for s in calls] == [400, 400]
