"""One cost per provider request when other libraries record the same call (costspan.rollup.matching).

Spans are made by hand with the instrumentation scopes and attributes the real libraries use (the
real frameworks run in tests_frameworks/): the rule, both processor orders, either end order.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Tracer, use_span

import costspan
from conftest import Traced, make_traced

# gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output.
FULL = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200}
CACHED = {**FULL, "gen_ai.usage.cache_read.input_tokens": 400}
FULL_COST = 0.0045  # 1000 x 2.50 + 200 x 10, per million
CACHED_COST = 0.004  # 600 x 2.50 + 400 x 1.25 + 200 x 10, per million
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


@pytest.fixture(params=[True, False], ids=["cost-first", "export-first"])
def t(request: pytest.FixtureRequest) -> Traced:
    return make_traced(request.param)


def tracer(t: Traced, scope: str) -> Tracer:
    return t.provider.get_tracer(scope)


def call(t: Traced, scope: str, name: str, attributes: dict[str, Any], start_time: int | None = None) -> Any:
    return tracer(t, scope).start_span(name, attributes={**CHAT, **attributes}, start_time=start_time)


def hex_id(span: Any) -> str:
    return format(span.get_span_context().span_id, "016x")


def trace_sum(t: Traced) -> float:
    return round(sum(s.attributes.get("gen_ai.usage.cost", 0.0) for s in t.exporter.get_finished_spans()), 12)


def assert_duplicate_of(span: ReadableSpan, counted: Any) -> None:
    assert span.attributes["costspan.cost.status"] == "duplicate"
    assert span.attributes["costspan.cost.counted_in"] == hex_id(counted)
    assert "gen_ai.usage.cost" not in span.attributes


def test_wrapper_span_is_the_duplicate_of_the_call_below(t: Traced) -> None:
    root = t.tracer.start_span("root")
    with costspan.task("t", tracer_provider=t.provider):
        # pydantic-ai's `chat` span over an SDK span with the cache count (processor-priced here).
        outer = call(t, "pydantic-ai", "chat gpt-4o", {**FULL, "gen_ai.usage.cost": 0.5})
        with_outer = use_span(outer, end_on_exit=False)
        with with_outer:
            inner = call(t, "opentelemetry.instrumentation.openai.v1", "inner", CACHED)
            inner.end()
        outer.end()
    root.end()
    spans = t.spans()
    assert spans["inner"].attributes["gen_ai.usage.cost"] == CACHED_COST
    # The framework's own gen_ai.usage.cost is removed too: backends sum it.
    assert_duplicate_of(spans["chat gpt-4o"], inner)
    assert spans["chat gpt-4o"].attributes["costspan.rollup.llm_calls"] == 1
    task = spans["t"].attributes
    assert task["costspan.rollup.cost_usd"] == CACHED_COST
    assert task["costspan.rollup.llm_calls"] == 1
    assert task["costspan.rollup.cache_read_tokens"] == 400
    assert trace_sum(t) == CACHED_COST


@pytest.mark.parametrize("first", ["framework", "sdk"])
def test_siblings_with_the_same_response_id_count_once_whichever_ends_first(t: Traced, first: str) -> None:
    with costspan.task("t", tracer_provider=t.provider):
        framework = call(
            t, "openinference.instrumentation.langchain", "framework", {**FULL, "gen_ai.response.id": "r1"}
        )
        sdk = call(t, "some.sdk", "sdk", {**CACHED, "gen_ai.response.id": "r1"})
        ends = [framework, sdk] if first == "framework" else [sdk, framework]
        for span in ends:
            span.end()
    spans = t.spans()
    counted, duplicate = (ends[0], ends[1])
    assert_duplicate_of(spans[duplicate.name], counted)
    expected = FULL_COST if first == "framework" else CACHED_COST
    assert spans[counted.name].attributes["gen_ai.usage.cost"] == expected
    assert spans["t"].attributes["costspan.rollup.cost_usd"] == expected
    assert spans["t"].attributes["costspan.rollup.llm_calls"] == 1
    assert trace_sum(t) == expected


def test_sibling_without_response_id_matches_on_model_and_counts(t: Traced) -> None:
    with costspan.task("t", tracer_provider=t.provider):
        framework = tracer(t, "openinference.instrumentation.langchain").start_span(
            "ChatOpenAI",
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-2024-08-06",
                "llm.token_count.prompt": 1000,
                "llm.token_count.completion": 200,
            },
        )
        sdk = call(
            t,
            "some.sdk",
            "sdk",
            {**CACHED, "gen_ai.response.id": "r1", "gen_ai.response.model": "gpt-4o-2024-08-06"},
        )
        sdk.end()
        framework.end()
    spans = t.spans()
    assert_duplicate_of(spans["ChatOpenAI"], sdk)
    assert spans["t"].attributes["costspan.rollup.cost_usd"] == CACHED_COST
    assert trace_sum(t) == CACHED_COST


def test_spans_that_cannot_be_matched_for_sure_are_both_counted(t: Traced) -> None:
    with costspan.task("t", tracer_provider=t.provider):
        # Overlapping, different response ids: two requests.
        a = call(t, "openinference.instrumentation.langchain", "a", {**FULL, "gen_ai.response.id": "r1"})
        b = call(t, "some.sdk", "b", {**FULL, "gen_ai.response.id": "r2"})
        b.end()
        a.end()
        # One without an id and the same counts, but one after the other: two requests.
        c = call(t, "some.sdk", "c", {**FULL, "gen_ai.response.id": "r3"})
        c.end()
        d = call(t, "openinference.instrumentation.langchain", "d", FULL)
        d.end()
        # Overlapping, no id, different counts: two requests.
        e = call(
            t, "openinference.instrumentation.langchain", "e", {**FULL, "gen_ai.usage.output_tokens": 201}
        )
        f = call(t, "some.sdk", "f", FULL)
        f.end()
        e.end()
    spans = t.spans()
    assert not [s for s in spans.values() if s.attributes.get("costspan.cost.status") == "duplicate"]
    assert spans["t"].attributes["costspan.rollup.llm_calls"] == 6


def test_usage_on_a_costspan_task_or_a_chain_span_is_not_a_call(
    t: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="costspan")
    with costspan.task("t", tracer_provider=t.provider) as task_span:
        task_span.set_attributes({**CHAT, **FULL})  # as LiteLLM's callback writes onto the current span
        chain = tracer(t, "openinference.instrumentation.langchain").start_span(
            "chain", attributes={"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 10}
        )
        chain.end()
    spans = t.spans()
    for name in ("t", "chain"):
        assert "gen_ai.usage.cost" not in spans[name].attributes
        assert "costspan.cost.status" not in spans[name].attributes
    assert "costspan.rollup.llm_calls" not in spans["t"].attributes
    assert t.processor.usage_on_non_calls() == 2
    assert caplog.text.count("is not an LLM call") == 1


def test_backdated_and_orphaned_calls_are_late(t: Traced) -> None:
    with costspan.task("t", tracer_provider=t.provider):
        # Created after the call with the call's start: before its parent started.
        backdated = call(t, "litellm", "backdated", CACHED, start_time=time.time_ns() - 10_000_000_000)
        backdated.end()
        ended_parent = t.tracer.start_span("ended")
        ended_parent.end()
        with use_span(ended_parent):
            orphan = call(t, "litellm", "orphan", CACHED)
            orphan.end()
    spans = t.spans()
    assert spans["backdated"].attributes["costspan.rollup.late"] is True
    assert spans["t"].attributes["costspan.rollup.cost_usd"] == CACHED_COST  # it still reached the task
    assert spans["orphan"].attributes["costspan.rollup.late"] is True
    assert spans["orphan"].attributes["gen_ai.usage.cost"] == CACHED_COST
    assert trace_sum(t) == 2 * CACHED_COST


def test_framework_agent_names_the_spans_below_unless_the_user_did(t: Traced) -> None:

    agent = tracer(t, "pydantic-ai").start_span(
        "invoke_agent bot", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot"}
    )
    with use_span(agent, end_on_exit=True):
        call(t, "some.sdk", "under-bot", FULL).end()
        oi_agent = tracer(t, "openinference.instrumentation.openai_agents").start_span(
            "helper", attributes={"openinference.span.kind": "AGENT"}
        )
        with use_span(oi_agent, end_on_exit=True):
            call(t, "some.sdk", "under-helper", FULL).end()
        with costspan.agent("mine", tracer_provider=t.provider):
            call(t, "some.sdk", "under-mine", FULL).end()
    spans = t.spans()
    assert spans["under-bot"].attributes["costspan.agent"] == "bot"
    assert spans["under-helper"].attributes["costspan.agent"] == "helper"
    assert spans["under-mine"].attributes["costspan.agent"] == "mine"


def test_costspan_alone_never_turns_matching_on(t: Traced) -> None:
    with costspan.task("t", tracer_provider=t.provider):
        a = call(t, "costspan.instrumentation.openai", "a", {**FULL, "gen_ai.response.id": "same"})
        b = call(t, "costspan.instrumentation.anthropic", "b", {**FULL, "gen_ai.response.id": "same"})
        b.end()
        a.end()
    assert t.processor._matching is False
    assert t.spans()["t"].attributes["costspan.rollup.llm_calls"] == 2


def test_recent_own_calls_match_by_trace_response_id_and_overlap_and_stay_bounded() -> None:
    from costspan.rollup.matching import RecentOwnCalls, describe

    recent = RecentOwnCalls(maxsize=3)
    recent.remember(1, "resp-a", 0xA, start=100, end=200)

    def late(trace_id: int, response_id: str, start: int, end: int) -> int | None:
        call = describe(0xF, {"gen_ai.response.id": response_id}, start, end)
        return recent.counted(trace_id, call)

    assert late(1, "resp-a", 150, 190) == 0xA  # same trace, same id, inside the call's time
    assert late(2, "resp-a", 150, 190) is None  # another trace
    assert late(1, "resp-b", 150, 190) is None  # another response
    assert late(1, "resp-a", 300, 400) is None  # a later request answered with the same id
    for n in range(10):
        recent.remember(1, f"resp-{n}", n, start=0, end=1)
    assert len(recent) == 3  # the oldest go first
    assert late(1, "resp-a", 150, 190) is None
    assert late(1, "resp-9", 0, 1) == 9
