"""attribute() and the task/agent/step/tool scopes: baggage set, nested, restored."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import baggage, trace

import costspan
from costspan import attributes as A


def bag() -> dict[str, str]:
    return costspan.current_attribution()


def test_attribute_nests_overrides_only_what_it_names_and_restores():
    assert bag() == {}
    with costspan.attribute(customer_id="cus_1", feature="search"):
        assert bag() == {A.CUSTOMER_ID: "cus_1", A.FEATURE: "search"}
        with costspan.attribute(feature="chat", step="s1"):
            assert bag() == {A.CUSTOMER_ID: "cus_1", A.FEATURE: "chat", A.STEP: "s1"}
            with costspan.attribute(customer_id="cus_2"):
                assert bag() == {A.CUSTOMER_ID: "cus_2", A.FEATURE: "chat", A.STEP: "s1"}
            assert bag()[A.CUSTOMER_ID] == "cus_1"
        assert bag() == {A.CUSTOMER_ID: "cus_1", A.FEATURE: "search"}
    assert bag() == {}


def test_attribute_restores_after_exception():
    with pytest.raises(KeyError), costspan.attribute(customer_id="cus_1"):
        raise KeyError("x")
    assert bag() == {}


def test_attribute_leaves_other_baggage_alone():
    from opentelemetry import context

    token = context.attach(baggage.set_baggage("tenant.region", "eu"))
    try:
        with costspan.attribute(customer_id="cus_1"):
            assert baggage.get_baggage("tenant.region") == "eu"
        assert baggage.get_all() == {"tenant.region": "eu"}
    finally:
        context.detach(token)


def test_attribute_decorates_sync_and_async_functions():
    @costspan.attribute(customer_id="cus_sync")
    def sync_fn(x: int) -> tuple[int, dict[str, str]]:
        return x + 1, bag()

    @costspan.attribute(customer_id="cus_async", agent="a")
    async def async_fn() -> dict[str, str]:
        await asyncio.sleep(0)
        return bag()

    assert sync_fn(1) == (2, {A.CUSTOMER_ID: "cus_sync"})
    assert asyncio.run(async_fn()) == {A.CUSTOMER_ID: "cus_async", A.AGENT: "a"}
    assert bag() == {}


def test_same_attribute_object_is_reentrant():
    scope = costspan.attribute(customer_id="cus_1")
    with scope:
        with costspan.attribute(customer_id="cus_2"), scope:
            assert bag()[A.CUSTOMER_ID] == "cus_1"
        assert bag()[A.CUSTOMER_ID] == "cus_1"
    assert bag() == {}


def test_concurrent_asyncio_tasks_keep_their_own_attribution():
    async def work(customer: str) -> str:
        with costspan.attribute(customer_id=customer):
            await asyncio.sleep(0.01)
            return bag()[A.CUSTOMER_ID]

    async def main() -> list[str]:
        return await asyncio.gather(*(work(f"cus_{i}") for i in range(20)))

    assert asyncio.run(main()) == [f"cus_{i}" for i in range(20)]


def test_task_sets_name_and_generated_task_id_inherited_by_nested_task(traced):
    with costspan.task("outer", customer_id="cus_9", tracer_provider=traced.provider) as outer:
        outer_id = bag()[A.TASK_ID]
        with costspan.task("inner", tracer_provider=traced.provider):
            assert bag()[A.TASK] == "inner"
            assert bag()[A.TASK_ID] == outer_id
        with costspan.task("explicit", task_id="job-42", tracer_provider=traced.provider):
            assert bag()[A.TASK_ID] == "job-42"
        assert outer.is_recording()
    spans = traced.spans()
    assert len(outer_id) == 32 and int(outer_id, 16) >= 0
    assert spans["outer"].attributes[A.TASK] == "outer"
    assert spans["outer"].kind is trace.SpanKind.INTERNAL
    assert spans["inner"].attributes[A.TASK_ID] == outer_id
    assert spans["inner"].attributes[A.CUSTOMER_ID] == "cus_9"
    assert spans["explicit"].attributes[A.TASK_ID] == "job-42"
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id


def test_task_decorator_names_span_after_function_and_new_id_per_run(traced):
    ids: list[str] = []

    @costspan.task
    def enrich_lead() -> None:
        ids.append(bag()[A.TASK_ID])

    @costspan.task(customer_id="cus_3", tracer_provider=traced.provider)
    def named_by_qualname() -> None:
        ids.append(bag()[A.TASK_ID])

    trace_provider_before = trace.get_tracer_provider()
    enrich_lead()
    enrich_lead()
    named_by_qualname()
    assert trace.get_tracer_provider() is trace_provider_before
    assert len(set(ids)) == 3
    span = traced.spans()[named_by_qualname.__qualname__]
    assert span.attributes[A.TASK] == named_by_qualname.__qualname__
    assert span.attributes[A.CUSTOMER_ID] == "cus_3"


def test_task_as_context_manager_needs_a_name():
    with pytest.raises(TypeError, match="needs a name"), costspan.task():
        pass


def test_agent_step_decorate_generators_and_async_generators(traced):
    seen: list[tuple[str, str | None]] = []

    @costspan.agent("planner", tracer_provider=traced.provider)
    def plan(n: int):
        for i in range(n):
            seen.append(("gen", bag().get(A.AGENT)))
            yield i

    @costspan.step("fetch", tracer_provider=traced.provider)
    async def fetch(n: int):
        for i in range(n):
            await asyncio.sleep(0)
            seen.append(("agen", bag().get(A.STEP)))
            yield i

    gen = plan(3)
    assert next(gen) == 0
    assert bag() == {}  # not leaked to the consumer between items
    assert list(gen) == [1, 2]

    async def consume() -> list[int]:
        return [i async for i in fetch(2)]

    assert asyncio.run(consume()) == [0, 1]
    assert seen == [("gen", "planner")] * 3 + [("agen", "fetch")] * 2
    spans = traced.spans()
    assert spans["invoke_agent planner"].attributes[A.GEN_AI_AGENT_NAME] == "planner"
    assert spans["fetch"].attributes[A.STEP] == "fetch"


def test_generator_closed_early_ends_span_without_error(traced):
    @costspan.step("stream", tracer_provider=traced.provider)
    def stream():
        yield 1
        yield 2

    gen = stream()
    next(gen)
    gen.close()
    span = traced.spans()["stream"]
    assert span.end_time is not None
    assert span.status.status_code is trace.StatusCode.UNSET


def test_async_function_error_recorded_and_reraised(traced):
    @costspan.agent("a", tracer_provider=traced.provider)
    async def fails() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        asyncio.run(fails())
    span = traced.spans()["invoke_agent a"]
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "ValueError"


def test_bad_names_and_costs_fail_at_configuration():
    with pytest.raises(TypeError):
        costspan.agent("")
    with pytest.raises(ValueError, match="cost_usd"):
        costspan.tool("x", cost_usd=-1)
    with pytest.raises(ValueError, match="cost_usd"):
        costspan.tool("x", cost_usd=float("nan"))
