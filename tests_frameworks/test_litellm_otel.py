"""LiteLLM's OTel callback (`litellm.callbacks = ["otel"]`), without costspan's LiteLLM instrumentor
(disabled here), then beside it.

Without request spans the callback writes the call's `gen_ai.*` attributes onto whatever span is
current (costspan's task span): that span is not a call and is never priced. With
`USE_OTEL_LITELLM_REQUEST_SPAN=true` each call gets a `litellm_request` span, created by LiteLLM's
logging after the call: priced with LiteLLM's own `gen_ai.cost.total_cost`, and `costspan.rollup.late`
when the task had already ended.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import litellm
import pytest

import costspan
from conftest import AGENT_COST, TOOL, TURN_COST, Run

_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def costspan_litellm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether `costspan.configure()` (the `run` fixture) instruments LiteLLM too; by default not."""
    on = bool(getattr(request, "param", False))
    if not on:
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "costspan_litellm")
    return on


@pytest.fixture
def otel_callback(costspan_litellm: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(litellm, "callbacks", ["otel"])
    yield
    litellm.logging_callback_manager._reset_all_callbacks()


def _two_turns(run: Run, streamed: bool) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if streamed else {}
    for turn in range(2):
        reply: Any = litellm.completion(
            model="openai/gpt-4o",
            messages=messages,
            tools=_TOOLS,
            api_base=run.openai_base_url,
            api_key="test",
            stream=streamed,
            **options,
        )
        if streamed:
            reply = litellm.stream_chunk_builder(list(reply), messages=messages)
        if turn == 0:
            call = reply.choices[0].message.tool_calls[0]
            messages.append(reply.choices[0].message.model_dump())
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})


def _wait_for(run: Run, name: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [s for s in run.spans() if s.name == name]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} {name} spans expected, got {[s.name for s in run.spans()]}")


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_usage_litellm_writes_on_the_task_span_does_not_make_it_a_call(
    otel_callback: None, run: Run, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USE_OTEL_LITELLM_REQUEST_SPAN", raising=False)
    assert run.setup.processor is not None
    before = run.setup.processor.usage_on_non_calls()
    with costspan.task("ask", customer_id="cus_1"):
        _two_turns(run, streamed)
    litellm_span = _wait_for(run, "raw_gen_ai_request", 2)
    assert run.model_requests() == 2
    task = run.span("ask").attributes
    assert task["gen_ai.usage.input_tokens"] == 1000  # what LiteLLM wrote onto it
    assert "gen_ai.usage.cost" not in task and "costspan.cost.status" not in task
    assert "costspan.rollup.llm_calls" not in task
    assert run.trace_cost_sum() == 0  # no call span at all: costspan's LiteLLM instrumentor makes them
    assert run.setup.processor.usage_on_non_calls() > before  # counted (and logged once a process)
    assert litellm_span


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_litellm_request_spans_priced_with_litellm_cost_late_ones_marked(
    otel_callback: None, run: Run, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USE_OTEL_LITELLM_REQUEST_SPAN", "true")
    with costspan.task("ask", customer_id="cus_1"):
        _two_turns(run, streamed)
    requests = _wait_for(run, "litellm_request", 2)
    assert run.model_requests() == 2
    for span in requests:
        assert Decimal(repr(span.attributes["gen_ai.usage.cost"])) == TURN_COST
        assert span.attributes["costspan.price.source"] == "reported:gen_ai.cost.total_cost"
    assert run.trace_cost_sum() == AGENT_COST
    # Where each request's cost went: into the task's rollup if it ended before the task, else it
    # stays on its own span, marked late.
    task = run.span("ask").attributes
    late = [s for s in requests if s.attributes.get("costspan.rollup.late")]
    rolled = Decimal(repr(task.get("costspan.rollup.cost_usd", 0.0)))
    assert rolled + len(late) * TURN_COST == AGENT_COST
    # LiteLLM gives its late spans the call's times: only costspan.rollup.late tells them apart.
    assert late or task["costspan.rollup.llm_calls"] == 2


@pytest.mark.parametrize("costspan_litellm", [True], indirect=True)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_request_spans_beside_costspans_litellm_instrumentor_count_each_request_once(
    otel_callback: None, run: Run, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USE_OTEL_LITELLM_REQUEST_SPAN", "true")
    with costspan.task("ask", customer_id="cus_1"):
        _two_turns(run, streamed)
    requests = _wait_for(run, "litellm_request", 2)
    assert run.model_requests() == 2
    calls = [s for s in run.spans() if s.instrumentation_scope.name == "costspan.instrumentation.litellm"]
    assert len(calls) == 2
    by_id = {s.attributes["gen_ai.response.id"]: s for s in calls}
    for request in requests:
        call = by_id[request.attributes["gen_ai.response.id"]]
        pair = {"costspan": call, "litellm": request}
        counted = [k for k, s in pair.items() if s.attributes["costspan.cost.status"] == "priced"]
        assert len(counted) == 1, pair
        other = pair["litellm" if counted == ["costspan"] else "costspan"].attributes
        assert other["costspan.cost.status"] == "duplicate"
        assert other["costspan.cost.counted_in"] == format(pair[counted[0]].context.span_id, "016x")
        assert "gen_ai.usage.cost" not in other
        assert Decimal(repr(pair[counted[0]].attributes["gen_ai.usage.cost"])) == TURN_COST
        if not streamed:
            # LiteLLM's logging thread makes its span after costspan's has ended: costspan's counts.
            assert counted == ["costspan"]
    # A stream's request span may end first (LiteLLM logs from a thread as the stream ends, under
    # the task): then it counts, with LiteLLM's own cost, and costspan's is the duplicate.
    assert run.trace_cost_sum() == AGENT_COST
    assert Decimal(repr(run.span("ask").attributes["costspan.rollup.cost_usd"])) == AGENT_COST
    assert run.metric_cost() == AGENT_COST
