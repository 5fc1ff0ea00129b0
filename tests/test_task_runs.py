"""Task runs: the `costspan.task.cost` histogram, outcomes, retry waste (costspan.attempt, real
tenacity), nesting and outliers, with the real openai SDK against the local fake OpenAI server."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("openai")

import tenacity
from openai import OpenAI

import costspan
from budget_support import GPT4O_CALL, MESSAGES, USAGE
from costspan import attributes as attrs
from costspan.budget.task_ledger import TASK_LEDGER
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.telemetry.metrics import record_tools_on
from costspan.telemetry.task_metrics import BUCKETS, record_task_runs_on
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

CALL = float(GPT4O_CALL)  # $0.0007


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(**vars(USAGE)))
        yield s


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[OpenAI]:
    c = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
    yield c
    c.close()


@pytest.fixture
def obs(observed: Any, no_configured_budgets: None) -> Iterator[Any]:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    record_task_runs_on(observed.meter_provider)
    record_tools_on(observed.meter_provider)
    TASK_LEDGER.clear()
    yield observed
    inst.uninstrument()
    TASK_LEDGER.clear()


def chat(client: OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def task_points(observed: Any, **where: str) -> list[Any]:
    return [
        p
        for p in observed.metric_points("costspan.task.cost")
        if all(p.attributes.get(k) == v for k, v in where.items())
    ]


def retry_cost(observed: Any, **where: str) -> float:
    return sum(
        p.value
        for p in observed.metric_points("costspan.task.retry_cost")
        if all(p.attributes.get(k) == v for k, v in where.items())
    )


def span_named(observed: Any, name: str) -> Any:
    found = [s for s in observed.finished() if s.name == name]
    assert len(found) == 1, [s.name for s in observed.finished()]
    return found[0]


def test_a_run_records_its_exact_cost_with_outcome_and_dimensions(obs: Any, client: OpenAI) -> None:
    with costspan.task("classify", customer_id="cus_1", feature="inbox", tracer_provider=obs.tracer_provider):
        chat(client)
        chat(client)
    (point,) = task_points(obs)
    assert point.count == 1
    assert point.sum == pytest.approx(2 * CALL, rel=1e-12, abs=0)
    assert dict(point.attributes) == {
        attrs.TASK: "classify",
        attrs.TASK_OUTCOME: "success",
        attrs.CUSTOMER_ID: "cus_1",
        attrs.FEATURE: "inbox",
    }
    assert tuple(point.explicit_bounds) == BUCKETS
    assert BUCKETS[0] == 0.0001 and BUCKETS[-1] == 100.0
    # $0.0014 falls in the ($0.001, $0.002] bucket.
    assert point.bucket_counts[BUCKETS.index(0.002)] == 1
    span = span_named(obs, "classify")
    assert span.attributes[attrs.TASK_OUTCOME] == "success"
    assert span.attributes[attrs.ROLLUP_COST_USD] == pytest.approx(point.sum, rel=1e-12)
    assert attrs.ROLLUP_RETRY_COST_USD not in span.attributes
    assert obs.metric_points("costspan.task.retry_cost") == []  # added only when not 0


def test_a_run_that_raised_is_an_error(obs: Any, client: OpenAI) -> None:
    @costspan.task("extract", customer_id="cus_2", tracer_provider=obs.tracer_provider)
    def extract() -> None:
        chat(client)
        raise ValueError("no answer")

    with pytest.raises(ValueError):
        extract()
    (point,) = task_points(obs)
    assert point.attributes[attrs.TASK_OUTCOME] == "error"
    assert point.sum == pytest.approx(CALL, rel=1e-12)
    span = span_named(obs, "extract")
    assert span.attributes[attrs.TASK_OUTCOME] == "error"
    assert span.status.status_code.name == "ERROR"


def test_task_failed_marks_the_run_failed_without_raising(obs: Any, client: OpenAI) -> None:
    with costspan.task("summarise", tracer_provider=obs.tracer_provider):
        chat(client)
        costspan.task_failed("invalid_json")
    (point,) = task_points(obs)
    assert point.attributes[attrs.TASK_OUTCOME] == "error"
    span = span_named(obs, "summarise")
    assert span.attributes[attrs.TASK_OUTCOME] == "error"
    assert span.attributes[attrs.TASK_FAILURE_REASON] == "invalid_json"
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "invalid_json"


def test_an_outcome_the_app_writes_on_the_task_span_wins(obs: Any, client: OpenAI) -> None:
    with costspan.task("classify", tracer_provider=obs.tracer_provider) as span:
        chat(client)
        span.set_attribute(attrs.TASK_OUTCOME, "refused")  # e.g. its own policy said no
    with costspan.task("classify", tracer_provider=obs.tracer_provider) as span:
        span.set_attribute(attrs.TASK_OUTCOME, "maybe")  # not an outcome: costspan's own applies
    outcomes = sorted(point.attributes[attrs.TASK_OUTCOME] for point in task_points(obs))
    assert outcomes == ["refused", "success"]
    spans = [s for s in obs.exporter.get_finished_spans() if s.name == "classify"]
    assert [s.attributes[attrs.TASK_OUTCOME] for s in spans] == ["refused", "success"]


def test_task_failed_outside_a_task_does_nothing(obs: Any) -> None:
    costspan.task_failed("nothing to mark")  # no exception, no run
    assert task_points(obs) == []


def test_a_run_that_ended_on_a_budget_refusal_is_refused(obs: Any, client: OpenAI) -> None:
    with (
        pytest.raises(costspan.BudgetExceeded),
        costspan.task("draft", tracer_provider=obs.tracer_provider),
        costspan.budget("0.001"),
    ):
        chat(client)  # $0.0007
        chat(client)  # $0.0014: the budget is now spent
        chat(client)  # refused before any request
    (point,) = task_points(obs)
    assert point.attributes[attrs.TASK_OUTCOME] == "refused"
    assert point.sum == pytest.approx(2 * CALL, rel=1e-12)
    assert span_named(obs, "draft").attributes[attrs.TASK_OUTCOME] == "refused"


def test_failed_attempts_followed_by_another_are_retry_waste(obs: Any, client: OpenAI) -> None:
    with costspan.task("answer", customer_id="cus_3", tracer_provider=obs.tracer_provider):
        for number in range(3):
            try:
                with costspan.attempt():
                    chat(client)
                    if number < 2:
                        raise ValueError("rejected")
                break
            except ValueError:
                continue
    (point,) = task_points(obs)
    assert point.sum == pytest.approx(3 * CALL, rel=1e-12)
    assert retry_cost(obs, **{attrs.TASK: "answer"}) == pytest.approx(2 * CALL, rel=1e-12)
    span = span_named(obs, "answer")
    assert span.attributes[attrs.ROLLUP_RETRY_COST_USD] == pytest.approx(2 * CALL, rel=1e-12)
    assert span.attributes[attrs.ROLLUP_COST_USD] == pytest.approx(3 * CALL, rel=1e-12)
    assert span.attributes[attrs.TASK_OUTCOME] == "success"


def test_the_last_failed_attempt_is_not_waste_and_fail_marks_without_raising(
    obs: Any, client: OpenAI
) -> None:
    with costspan.task("judge", tracer_provider=obs.tracer_provider):
        chat(client)  # outside any attempt: never waste
        with costspan.attempt() as first:
            chat(client)
            first.fail()  # rejected without raising, then retried
        with costspan.attempt() as second:
            chat(client)
            second.fail()  # rejected, and not retried: the run's failure, not retry waste
        costspan.task_failed("gave_up")
    assert retry_cost(obs) == pytest.approx(CALL, rel=1e-12)
    (point,) = task_points(obs)
    assert point.sum == pytest.approx(3 * CALL, rel=1e-12)
    assert point.attributes[attrs.TASK_OUTCOME] == "error"


def test_tenacity_before_hook_counts_retried_attempts(obs: Any, client: OpenAI) -> None:
    tries: list[int] = []

    @costspan.task("plan", customer_id="cus_4")
    @tenacity.retry(stop=tenacity.stop_after_attempt(5), before=costspan.before_attempt)
    def plan() -> str:
        chat(client)
        tries.append(1)
        if len(tries) < 3:
            raise ValueError("not valid yet")
        return "ok"

    chat_before = 0
    assert plan() == "ok"
    assert len(tries) == 3 + chat_before
    (point,) = task_points(obs)
    assert point.sum == pytest.approx(3 * CALL, rel=1e-12)
    assert point.attributes[attrs.TASK_OUTCOME] == "success"
    assert retry_cost(obs) == pytest.approx(2 * CALL, rel=1e-12)


def test_costspan_retrying_wraps_tenacity_and_keeps_the_users_before_hook(obs: Any, client: OpenAI) -> None:
    seen: list[int] = []

    @costspan.task("route")
    @costspan.retrying(
        stop=tenacity.stop_after_attempt(2),
        before=lambda state: seen.append(state.attempt_number),
        reraise=True,
    )
    def route() -> None:
        chat(client)
        chat(client)
        raise ValueError("always")

    with pytest.raises(ValueError):
        route()
    assert seen == [1, 2]
    (point,) = task_points(obs)
    assert point.sum == pytest.approx(4 * CALL, rel=1e-12)
    assert point.attributes[attrs.TASK_OUTCOME] == "error"
    # The first attempt was retried (waste); the second, the last, was not.
    assert retry_cost(obs) == pytest.approx(2 * CALL, rel=1e-12)


def test_tenacity_giving_up_on_a_budget_refusal_is_refused(obs: Any, client: OpenAI) -> None:
    @costspan.task("loop")
    @costspan.retrying(stop=tenacity.stop_after_attempt(4))
    def loop() -> None:
        chat(client)  # the first attempt's call spends the block's budget; the next are refused
        raise ValueError("rejected")

    with pytest.raises(tenacity.RetryError), costspan.budget("0.0001", scope="block"):
        loop()
    (point,) = task_points(obs)
    assert point.attributes[attrs.TASK_OUTCOME] == "refused"


def test_nested_runs_each_count_what_ran_inside_them(obs: Any, client: OpenAI) -> None:
    with costspan.task("outer", tracer_provider=obs.tracer_provider):
        chat(client)
        with costspan.task("inner", tracer_provider=obs.tracer_provider):
            chat(client)
    (outer,) = task_points(obs, **{attrs.TASK: "outer"})
    (inner,) = task_points(obs, **{attrs.TASK: "inner"})
    assert inner.sum == pytest.approx(CALL, rel=1e-12)
    assert outer.sum == pytest.approx(2 * CALL, rel=1e-12)  # like its span's costspan.rollup.cost_usd
    assert span_named(obs, "outer").attributes[attrs.ROLLUP_COST_USD] == pytest.approx(outer.sum, rel=1e-12)


def test_configured_dimensions_apply_and_task_id_never_does(obs: Any) -> None:
    record_task_runs_on(obs.meter_provider, (attrs.TASK, attrs.FEATURE))
    with (
        costspan.task(
            "tag", task_id="t-1", customer_id="cus_9", feature="f", tracer_provider=obs.tracer_provider
        ),
        costspan.tool("lookup", cost_usd=0.5, tracer_provider=obs.tracer_provider),
    ):
        pass
    (point,) = task_points(obs)
    assert dict(point.attributes) == {attrs.TASK: "tag", attrs.TASK_OUTCOME: "success", attrs.FEATURE: "f"}
    assert point.sum == 0.5
    with pytest.raises(ValueError, match="task_id"):
        record_task_runs_on(obs.meter_provider, (attrs.TASK_ID,))


def test_a_run_far_above_its_median_is_flagged(obs: Any) -> None:
    def run(cost: float) -> None:
        with (
            costspan.task("score", tracer_provider=obs.tracer_provider),
            costspan.tool("model", cost_usd=cost, tracer_provider=obs.tracer_provider),
        ):
            pass

    for _ in range(20):
        run(0.01)
    run(0.029)  # under 3x the median: not flagged
    run(0.05)  # 5x
    flagged = [s.attributes.get("costspan.task.cost_outlier") for s in obs.finished() if s.name == "score"]
    assert flagged[:21] == [None] * 21
    assert flagged[21] is True
    (outliers,) = obs.metric_points("costspan.task.cost_outliers")
    assert outliers.value == 1
    assert outliers.attributes[attrs.TASK] == "score"


def test_a_call_outside_any_task_records_no_run(obs: Any, client: OpenAI) -> None:
    chat(client)
    assert task_points(obs) == []
    assert Decimal(str(sum(p.value for p in obs.metric_points("costspan.cost")))) == GPT4O_CALL
