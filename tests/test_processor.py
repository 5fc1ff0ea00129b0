"""CostSpanProcessor: pricing, rollup and stamping as an exporter sees them."""

from __future__ import annotations

import gc
import logging
from fractions import Fraction

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import costspan
from costspan import RateCard
from costspan import attributes as A
from costspan.rollup.processor import _Node
from llm import llm_call

# Published prices, USD per million tokens.
GPT_4O = {"in": Fraction("2.50"), "cached": Fraction("1.25"), "out": Fraction("10.00")}
GPT_4O_MINI = {"in": Fraction("0.15"), "cached": Fraction("0.075"), "out": Fraction("0.60")}
SONNET_46 = {"in": Fraction(3), "read": Fraction("0.30"), "write": Fraction("3.75"), "out": Fraction(15)}


def gpt_4o_usd(inp: int, out: int, cached: int = 0) -> Fraction:
    return ((inp - cached) * GPT_4O["in"] + cached * GPT_4O["cached"] + out * GPT_4O["out"]) / 1_000_000


def test_gpt_4o_call_priced_exactly(traced, cost_parts):
    llm_call(traced.tracer, "gpt-4o", 2480, 514, cache_read=1024)
    span = traced.spans()["chat gpt-4o"]
    # 1,456 uncached x $2.50 + 1,024 cached x $1.25 + 514 out x $10.00 per million = $0.01006
    assert span.attributes[A.GEN_AI_USAGE_COST] == 0.01006
    assert span.attributes[A.COST_INPUT_USD] == 0.00364
    assert span.attributes[A.COST_CACHE_READ_USD] == 0.00128
    assert span.attributes[A.COST_OUTPUT_USD] == 0.00514
    assert A.COST_CACHE_WRITE_USD not in span.attributes  # zero parts are not written
    assert span.attributes[A.COST_STATUS] == "priced"
    assert A.PRICE_SOURCE not in span.attributes  # the bundled card (the default) is not named
    # the call is its own subtree: no rollup repeats its own figures
    assert not [key for key in span.attributes if key.startswith("costspan.rollup.")]


def test_a_priced_call_carries_cost_and_status_only_by_default(traced):
    llm_call(traced.tracer, "gpt-4o", 2480, 514, cache_read=1024)
    costspan_keys = {key for key in traced.spans()["chat gpt-4o"].attributes if "cost" in key}
    assert costspan_keys == {A.GEN_AI_USAGE_COST, A.COST_STATUS}


def test_an_override_price_names_its_source(cost_parts):
    from conftest import make_traced

    t = make_traced(
        True,
        rate_card=RateCard.default().with_overrides(
            {"models": [{"model": "gpt-4o", "input_per_mtok": 5, "output_per_mtok": 20}]}
        ),
    )
    llm_call(t.tracer, "gpt-4o", 1_000_000, 1_000_000)
    span = t.spans()["chat gpt-4o"]
    assert span.attributes[A.GEN_AI_USAGE_COST] == 25.0
    assert span.attributes[A.PRICE_SOURCE] == "override:<mapping>"


def test_claude_sonnet_46_with_cache_write_under_legacy_system_attribute(traced, cost_parts):
    tracer = traced.tracer
    span = tracer.start_span(
        "anthropic.chat",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-6",
            "gen_ai.response.model": "claude-sonnet-4-6",
            "gen_ai.usage.input_tokens": 12_000,
            "gen_ai.usage.output_tokens": 800,
            "gen_ai.usage.cache_read.input_tokens": 6_000,
            "gen_ai.usage.cache_write.input_tokens": 4_000,
        },
    )
    span.end()
    got = traced.spans()["anthropic.chat"].attributes
    # 2,000 x $3 + 6,000 x $0.30 + 4,000 x $3.75 + 800 x $15 per million = $0.0348
    expected = (
        2000 * SONNET_46["in"] + 6000 * SONNET_46["read"] + 4000 * SONNET_46["write"] + 800 * SONNET_46["out"]
    ) / 10**6
    assert expected == Fraction("0.0348")
    assert got[A.GEN_AI_USAGE_COST] == 0.0348
    assert got[A.COST_CACHE_WRITE_USD] == 0.015


@pytest.mark.parametrize("cost_first", [True, False], ids=["cost-first", "cost-last"])
def test_rollup_through_task_agent_step_tool(cost_first):
    from conftest import make_traced

    rate_card = RateCard.default().with_overrides({"tools": {"clearbit.enrich": 0.10}})
    t = make_traced(cost_first, rate_card=rate_card)
    provider = t.provider
    with costspan.task(
        "lead-enrichment", customer_id="cus_8821", feature="lead-gen", tracer_provider=provider
    ):
        with costspan.agent("company-research", tracer_provider=provider):
            llm_call(t.tracer, "gpt-4o", 2480, 514, cache_read=1024, name="plan")
            with costspan.tool("clearbit.enrich", tracer_provider=provider):
                pass
        with (
            costspan.agent("summariser", tracer_provider=provider),
            costspan.step("write", tracer_provider=provider),
        ):
            llm_call(t.tracer, "gpt-4o-mini", 10_000, 2_000, name="summary")
    spans = t.spans()
    expected_plan = gpt_4o_usd(2480, 514, 1024)
    expected_summary = (10_000 * GPT_4O_MINI["in"] + 2_000 * GPT_4O_MINI["out"]) / 10**6
    root = spans["lead-enrichment"].attributes
    assert root[A.ROLLUP_COST_USD] == float(expected_plan + Fraction("0.10") + expected_summary)
    assert root[A.ROLLUP_LLM_CALLS] == 2
    assert root[A.ROLLUP_TOOL_CALLS] == 1
    assert root[A.ROLLUP_INPUT_TOKENS] == 12_480
    assert root[A.ROLLUP_OUTPUT_TOKENS] == 2_514
    assert root[A.ROLLUP_CACHE_READ_TOKENS] == 1024
    assert A.GEN_AI_USAGE_COST not in root  # rollups never reuse gen_ai.usage.cost
    research = spans["invoke_agent company-research"].attributes
    assert research[A.ROLLUP_COST_USD] == float(expected_plan + Fraction("0.10"))
    assert research[A.GEN_AI_AGENT_NAME] == "company-research"
    assert research[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    tool = spans["execute_tool clearbit.enrich"].attributes
    assert tool[A.GEN_AI_USAGE_COST] == 0.10
    assert tool[A.GEN_AI_TOOL_NAME] == "clearbit.enrich"
    assert tool[A.PRICE_SOURCE] == "override:<mapping>"
    assert spans["write"].attributes[A.ROLLUP_COST_USD] == float(expected_summary)
    # attribution on every span, the innermost agent and step on the call
    for span in spans.values():
        assert span.attributes[A.CUSTOMER_ID] == "cus_8821"
        assert span.attributes[A.FEATURE] == "lead-gen"
        assert span.attributes[A.TASK] == "lead-enrichment"
        assert len(span.attributes[A.TASK_ID]) == 32
    assert spans["summary"].attributes[A.AGENT] == "summariser"
    assert spans["summary"].attributes[A.STEP] == "write"
    assert spans["plan"].attributes[A.AGENT] == "company-research"
    assert A.STEP not in spans["plan"].attributes
    t.provider.shutdown()


def test_tool_priced_from_cost_usd_argument(traced):
    with (
        costspan.task("t", tracer_provider=traced.provider),
        costspan.tool("search", cost_usd=0.005, tracer_provider=traced.provider),
    ):
        pass
    spans = traced.spans()
    assert spans["execute_tool search"].attributes[A.GEN_AI_USAGE_COST] == 0.005
    assert spans["t"].attributes[A.ROLLUP_COST_USD] == 0.005
    assert spans["t"].attributes[A.ROLLUP_TOOL_CALLS] == 1
    assert spans["t"].attributes[A.ROLLUP_LLM_CALLS] == 0


def test_unpriced_tool_and_plain_spans_get_no_rollup(traced):
    with (
        traced.tracer.start_as_current_span("http GET"),
        costspan.tool("free-tool", tracer_provider=traced.provider),
    ):
        pass
    spans = traced.spans()
    for span in spans.values():
        assert not any(key.startswith("costspan.rollup") for key in span.attributes)
        assert A.GEN_AI_USAGE_COST not in span.attributes


def test_unknown_model_is_marked_never_zero(traced, caplog):
    caplog.set_level(logging.WARNING, logger="costspan")
    with traced.tracer.start_as_current_span("root"):
        llm_call(traced.tracer, "acme-llm-7", 100, 10, provider="acme", name="a")
        llm_call(traced.tracer, "acme-llm-7", 100, 10, provider="acme", name="b")
        llm_call(traced.tracer, "gpt-4o-mini", 1_000_000, 0, name="c")
    spans = traced.spans()
    for name in ("a", "b"):
        assert A.GEN_AI_USAGE_COST not in spans[name].attributes
        assert spans[name].attributes[A.COST_STATUS] == "unknown_model"
    root = spans["root"].attributes
    assert root[A.ROLLUP_UNPRICED_CALLS] == 2
    assert root[A.ROLLUP_LLM_CALLS] == 3
    assert root[A.ROLLUP_COST_USD] == 0.15
    assert root[A.ROLLUP_INPUT_TOKENS] == 1_000_200
    logged = [r for r in caplog.records if "acme-llm-7" in r.getMessage()]
    assert len(logged) == 1  # once per name


def test_failed_call_and_call_without_usage(traced):
    with traced.tracer.start_as_current_span("root"):
        llm_call(traced.tracer, "gpt-4o", None, None, name="timeout", error="TimeoutError")
        llm_call(traced.tracer, "gpt-4o", None, None, name="no usage")
    spans = traced.spans()
    assert spans["timeout"].attributes[A.COST_STATUS] == "no_usage"
    assert spans["no usage"].attributes[A.COST_STATUS] == "no_usage"
    root = spans["root"].attributes
    assert root[A.ROLLUP_LLM_CALLS] == 2
    assert root[A.ROLLUP_FAILED_CALLS] == 1
    assert root[A.ROLLUP_UNPRICED_CALLS] == 1  # the failed call is failed, not unpriced
    assert root[A.ROLLUP_COST_USD] == 0.0


def test_existing_cost_is_kept_and_rolled_up(traced):
    with traced.tracer.start_as_current_span("root"):
        span = traced.tracer.start_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 0,
                "gen_ai.usage.cost": 0.5,
            },
        )
        span.end()
    spans = traced.spans()
    assert spans["chat gpt-4o"].attributes[A.GEN_AI_USAGE_COST] == 0.5
    assert A.COST_STATUS not in spans["chat gpt-4o"].attributes
    assert spans["root"].attributes[A.ROLLUP_COST_USD] == 0.5


def test_invalid_usage_is_marked_not_zero(traced):
    with traced.tracer.start_as_current_span("root"):
        llm_call(traced.tracer, "gpt-4o", 100, 10, cache_read=500, name="cache exceeds input")
        span = traced.tracer.start_span(
            "negative", attributes={"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": -5}
        )
        span.end()
    spans = traced.spans()
    assert spans["cache exceeds input"].attributes[A.COST_STATUS] == "invalid_usage"
    assert spans["negative"].attributes[A.COST_STATUS] == "invalid_usage"
    assert spans["root"].attributes[A.ROLLUP_UNPRICED_CALLS] == 2


def test_agent_span_with_summed_usage_is_not_priced_twice(traced):
    with costspan.agent("a", tracer_provider=traced.provider) as agent_span:
        llm_call(traced.tracer, "gpt-4o-mini", 1_000_000, 0, name="call")
        agent_span.set_attribute("gen_ai.usage.input_tokens", 1_000_000)
        agent_span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    agent = traced.spans()["invoke_agent a"].attributes
    assert agent[A.ROLLUP_COST_USD] == 0.15
    assert agent[A.ROLLUP_LLM_CALLS] == 1
    assert A.GEN_AI_USAGE_COST not in agent


def test_late_child_goes_to_nearest_open_ancestor_or_is_marked_late(traced):
    tracer = traced.tracer
    root = tracer.start_span("root")
    root_ctx = trace.set_span_in_context(root)
    parent = tracer.start_span("parent", context=root_ctx)
    parent_ctx = trace.set_span_in_context(parent)
    child = tracer.start_span(
        "late-1",
        context=parent_ctx,
        attributes={"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1_000_000},
    )
    orphan = tracer.start_span(
        "late-2",
        context=parent_ctx,
        attributes={"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.output_tokens": 1_000_000},
    )
    parent.end()
    child.end()  # parent is closed: goes to root
    root.end()
    orphan.end()  # nothing open above it
    spans = traced.spans()
    assert A.ROLLUP_COST_USD not in spans["parent"].attributes
    assert spans["root"].attributes[A.ROLLUP_COST_USD] == 0.15
    assert A.ROLLUP_LATE not in spans["late-1"].attributes
    assert spans["late-2"].attributes[A.ROLLUP_LATE] is True
    assert spans["late-2"].attributes[A.GEN_AI_USAGE_COST] == 0.6


def test_ledger_is_empty_once_roots_end(traced):
    with costspan.task("t", tracer_provider=traced.provider):
        for _ in range(50):
            llm_call(traced.tracer, "gpt-4o", 10, 10)
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, _Node)] == []


class ExplodingRateCard(RateCard):
    def price(self, *args, **kwargs):  # type: ignore[override]
        raise RuntimeError("rate card down")


def test_a_failing_rate_card_never_reaches_the_application(caplog):
    from conftest import make_traced

    t = make_traced(True, ExplodingRateCard())
    caplog.set_level(logging.WARNING, logger="costspan")
    with t.tracer.start_as_current_span("root"):
        llm_call(t.tracer, "gpt-4o", 10, 10, name="a")
        llm_call(t.tracer, "gpt-4o", 10, 10, name="b")
    assert set(t.spans()) == {"root", "a", "b"}  # both calls still exported
    assert t.processor.faults() == {"span end": 2}
    assert len([r for r in caplog.records if "rate card down" in r.getMessage()]) == 1


def test_error_inside_scope_is_recorded_and_reraised(traced):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), costspan.task("t", tracer_provider=traced.provider):
        raise Boom("no")
    span = traced.spans()["t"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE].endswith("Boom")
    assert [e.name for e in span.events] == ["exception"]


def test_span_status_set_by_user_kept(traced):
    with traced.tracer.start_as_current_span("root") as root:
        root.set_status(Status(StatusCode.OK))
    assert traced.spans()["root"].status.status_code is StatusCode.OK
