"""Budgets with the real openai SDK against the local fake OpenAI server: exact stop points, no
request after the stop, warn, callable, downgrade, pre-flight, streams, tools, configuration."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

pytest.importorskip("openai")

from openai import AsyncOpenAI, OpenAI

import costspan
from budget_support import GPT4O_CALL, MESSAGES, MINI_CALL, USAGE
from costspan.budget import BudgetExceeded, InMemoryLedger
from costspan.instrumentation._call import FAULTS
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.testing import FakeProviderServer
from costspan.testing.openai import CHAT_PATH, OpenAIUsage, add_openai_routes


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(**vars(USAGE)))
        yield s


@pytest.fixture
def instrumented(observed: Any) -> Iterator[OpenAIInstrumentor]:
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    yield inst
    inst.uninstrument()


pytestmark = pytest.mark.usefixtures("no_configured_budgets")


@pytest.fixture
def client(server: FakeProviderServer) -> Iterator[OpenAI]:
    c = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
    yield c
    c.close()


def chat(client: OpenAI, model: str = "gpt-4o", **kwargs: Any) -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, **kwargs)


def chat_requests(server: FakeProviderServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


def budget_events(span: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "costspan.budget.exceeded"]


def metric_sum(observed: Any, name: str, **where: str) -> float:
    total = 0.0
    for point in observed.metric_points(name):
        if all(point.attributes.get(k) == v for k, v in where.items()):
            total += point.value
    return total


# --- raise: the exact stop point ----------------------------------------------------------------


@pytest.mark.parametrize("calls_to_limit", [3, 2.5], ids=["limit-on-a-call", "limit-mid-call"])
def test_raise_stops_at_the_first_call_made_after_spend_reached_the_limit(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: OpenAI, calls_to_limit: float
) -> None:
    limit = GPT4O_CALL * Decimal(str(calls_to_limit))  # $0.0021 or $0.00175
    with costspan.budget(limit, scope="block") as spend:
        for _ in range(3):
            chat(client)  # spend before each: 0, 0.0007, 0.0014 (< limit): sent
        assert spend.spent_usd == 3 * GPT4O_CALL
        with pytest.raises(BudgetExceeded) as refused:
            chat(client)
        assert len(chat_requests(server)) == 3  # nothing reached the server after the stop
        with pytest.raises(BudgetExceeded):
            chat(client, model="gpt-4o-mini")  # any model: the budget is spent
    assert len(chat_requests(server)) == 3
    exc = refused.value
    assert (exc.scope, exc.limit_usd, exc.spent_usd, exc.model) == ("block", limit, 3 * GPT4O_CALL, "gpt-4o")
    assert str(exc) == (
        f"block budget exceeded: limit ${limit.normalize():f}, spent $0.0021; "
        "the gpt-4o call was refused before sending"
    )
    assert isinstance(exc, Exception)
    spans = observed.llm_spans()
    assert len(spans) == 5
    refused_span = spans[3]
    assert refused_span.status.status_code is StatusCode.ERROR
    assert refused_span.attributes["error.type"] == "BudgetExceeded"
    assert "gen_ai.usage.cost" not in refused_span.attributes
    assert budget_events(refused_span) == [
        {
            "costspan.budget.scope": "block",
            "costspan.budget.limit_usd": float(limit),
            "costspan.budget.spent_usd": 0.0021,
            "costspan.budget.action": "raise",
        }
    ]
    assert [s.attributes["gen_ai.usage.cost"] for s in spans[:3]] == [float(GPT4O_CALL)] * 3
    assert metric_sum(observed, "costspan.budget.exceeded", **{"costspan.budget.action": "raise"}) == 2


def test_budget_exceeded_reaches_the_caller_of_an_async_client(
    instrumented: Any, server: FakeProviderServer
) -> None:
    async def run() -> int:
        client = AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
        sent = 0
        async with client:
            with costspan.budget(GPT4O_CALL * 2, scope="block"):
                try:
                    for _ in range(5):
                        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                        sent += 1
                except BudgetExceeded:
                    return sent
        return -1

    assert asyncio.run(run()) == 2
    assert len(chat_requests(server)) == 2


def test_decorated_function_gets_a_fresh_block_per_call(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    @costspan.budget(GPT4O_CALL, scope="block")
    def one_call_allowed() -> None:
        chat(client)
        chat(client)

    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            one_call_allowed()
    assert len(chat_requests(server)) == 2


def test_one_budget_object_entered_in_two_threads_at_once_is_two_blocks(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    shared = costspan.budget(GPT4O_CALL, scope="block")
    both_inside = threading.Barrier(2)
    spent_when_refused: list[Decimal] = []

    def worker() -> None:
        with shared as spend:
            both_inside.wait()
            chat(client)
            both_inside.wait()
            with pytest.raises(BudgetExceeded):
                chat(client)
            spent_when_refused.append(spend.spent_usd)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spent_when_refused == [GPT4O_CALL, GPT4O_CALL]
    assert len(chat_requests(server)) == 2


def test_decorated_coroutine_is_budgeted(instrumented: Any, server: FakeProviderServer) -> None:
    @costspan.budget(GPT4O_CALL * 2, scope="block")
    async def agent_loop(client: AsyncOpenAI) -> int:
        turns = 0
        try:
            while True:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                turns += 1
        except BudgetExceeded:
            return turns

    async def run() -> list[int]:
        async with AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0) as client:
            return [await agent_loop(client), await agent_loop(client)]

    assert asyncio.run(run()) == [2, 2]
    assert len(chat_requests(server)) == 4


def test_budgets_hold_when_spans_are_not_sampled(server: FakeProviderServer, client: OpenAI) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        with costspan.budget(GPT4O_CALL * 2, scope="block") as spend:
            chat(client)
            with costspan.tool("search", cost_usd=0.01):
                pass
            assert spend.spent_usd == GPT4O_CALL + Decimal("0.01")
            with pytest.raises(BudgetExceeded):
                chat(client)
    finally:
        inst.uninstrument()
    assert len(chat_requests(server)) == 1


# --- nested scopes, task and customer -----------------------------------------------------------


def test_nested_budgets_all_apply_and_a_task_budget_is_shared_by_its_blocks(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    with costspan.task("research") as _, costspan.budget(GPT4O_CALL * 3, scope="task") as task_spend:
        with costspan.budget(GPT4O_CALL, scope="block"):
            chat(client)
            with pytest.raises(BudgetExceeded) as inner:
                chat(client)
            assert inner.value.scope == "block"
        with costspan.budget(GPT4O_CALL * 3, scope="task") as again:  # same task: same account
            assert again.spent_usd == GPT4O_CALL
            chat(client)
            chat(client)
            with pytest.raises(BudgetExceeded) as outer:
                chat(client)
        assert outer.value.scope == "task"
        assert outer.value.subject == costspan.current_attribution()["costspan.task_id"]
        assert task_spend.spent_usd == 3 * GPT4O_CALL
    assert len(chat_requests(server)) == 3


def test_task_budget_counts_worker_threads_of_the_task(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    with costspan.task("fan-out"), costspan.budget(GPT4O_CALL * 2, scope="task") as spend:
        workers = [
            threading.Thread(target=contextvars.copy_context().run, args=(chat, client)) for _ in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert spend.spent_usd == 2 * GPT4O_CALL
        with pytest.raises(BudgetExceeded):
            chat(client)
    assert len(chat_requests(server)) == 2


def test_task_scope_without_a_task_counts_its_block(
    instrumented: Any, server: FakeProviderServer, client: OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "costspan.budget"):
        for _ in range(2):
            with costspan.budget(GPT4O_CALL) as spend:
                assert spend.scope == "block"
                chat(client)
                with pytest.raises(BudgetExceeded):
                    chat(client)
    assert len(chat_requests(server)) == 2


def test_configured_budgets_by_task_type_and_by_customer(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    costspan.configure_budgets(
        {
            "tasks": {"summarize": {"usd": str(GPT4O_CALL)}, "*": str(GPT4O_CALL * 2)},
            "customers": {"*": {"usd": str(GPT4O_CALL * 3), "window": "day"}},
        }
    )
    sent = []

    def run_task(name: str, customer: str) -> int:
        before = len(chat_requests(server))
        with costspan.task(name, customer_id=customer):
            try:
                for _ in range(5):
                    chat(client)
            except BudgetExceeded as exc:
                sent.append((exc.scope, exc.name))
        return len(chat_requests(server)) - before

    assert run_task("summarize", "cus_a") == 1  # the task budget stops it
    assert run_task("summarize", "cus_a") == 1  # a new task instance: a new task budget
    assert run_task("plan", "cus_a") == 1  # "*" allows 2, but cus_a has $0.0021 a day: 3 used now
    assert run_task("plan", "cus_b") == 2  # another customer, another window
    assert sent == [("task", "summarize"), ("task", "summarize"), ("customer", None), ("task", None)]


def test_customer_window_resets_when_the_window_ends(
    instrumented: Any, server: FakeProviderServer, client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costspan.budget import accounts

    clock = [86_400.0 * 20_000 + 86_399.0]  # one second before 00:00 UTC
    monkeypatch.setattr(accounts, "wall_clock", lambda: clock[0])
    ledger = InMemoryLedger(clock=lambda: clock[0])
    costspan.configure_budgets(
        {"customers": {"cus_1": {"usd": str(GPT4O_CALL), "window": "day"}}}, ledger=ledger
    )
    with costspan.attribute(customer_id="cus_1"):
        chat(client)
        with pytest.raises(BudgetExceeded) as refused:
            chat(client)
        assert refused.value.subject == "cus_1"
        clock[0] += 1.0  # a new UTC day
        chat(client)
        with pytest.raises(BudgetExceeded):
            chat(client)
    assert len(chat_requests(server)) == 2
    today = 20_001
    assert ledger.spent(f"customer:cus_1:86400:{today - 1}") == 0  # yesterday's window expired
    assert ledger.spent(f"customer:cus_1:86400:{today}") == GPT4O_CALL.scaleb(24)
    clock[0] += 60.0
    ledger.add("customer:other", 1, None)  # adding a key sweeps the expired ones
    assert len(ledger) == 2


# --- concurrency --------------------------------------------------------------------------------


def _slow_chat_route(server: FakeProviderServer, delay_s: float, in_flight: list[int]) -> None:
    """Delay every chat reply and record the most requests the server held at once."""
    lock = threading.Lock()
    current = [0]
    routes = server._routes
    for i, (method, pattern, handler) in enumerate(routes):
        if pattern.pattern != CHAT_PATH:
            continue

        def slow(request: Any, handler: Any = handler) -> Any:
            with lock:
                current[0] += 1
                in_flight[0] = max(in_flight[0], current[0])
            time.sleep(delay_s)
            with lock:
                current[0] -= 1
            return handler(request)

        routes[i] = (method, pattern, slow)


WORKERS = 8
CALLS_TO_LIMIT = 20


def test_threads_overspend_by_at_most_one_in_flight_call_each(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    peak = [0]
    _slow_chat_route(server, 0.01, peak)
    refused = []

    def worker() -> None:
        try:
            while True:
                chat(client)
        except BudgetExceeded:
            refused.append(1)

    with costspan.budget(GPT4O_CALL * CALLS_TO_LIMIT, scope="block") as spend:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(worker,)) for _ in range(WORKERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    sent = len(chat_requests(server))
    assert len(refused) == WORKERS
    assert spend.spent_usd == sent * GPT4O_CALL  # every call that reached the server was charged
    assert CALLS_TO_LIMIT <= sent <= CALLS_TO_LIMIT - 1 + WORKERS
    assert spend.spent_usd - spend.limit_usd < WORKERS * GPT4O_CALL
    assert peak[0] > 1  # the workers really overlapped
    print(f"threads: {sent} calls for a {CALLS_TO_LIMIT}-call limit, peak {peak[0]} in flight")


def test_asyncio_tasks_overspend_by_at_most_one_in_flight_call_each(
    instrumented: Any, server: FakeProviderServer
) -> None:
    peak = [0]
    _slow_chat_route(server, 0.01, peak)

    async def run() -> Any:
        client = AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)

        async def worker() -> None:
            try:
                while True:
                    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            except BudgetExceeded:
                pass

        async with client:
            with costspan.budget(GPT4O_CALL * CALLS_TO_LIMIT, scope="block") as spend:
                await asyncio.gather(*(worker() for _ in range(WORKERS)))
        return spend

    spend = asyncio.run(run())
    sent = len(chat_requests(server))
    assert spend.spent_usd == sent * GPT4O_CALL
    assert CALLS_TO_LIMIT <= sent <= CALLS_TO_LIMIT - 1 + WORKERS
    assert peak[0] > 1
    print(f"asyncio: {sent} calls for a {CALLS_TO_LIMIT}-call limit, peak {peak[0]} in flight")


# --- warn, callable, downgrade, pre-flight ------------------------------------------------------


def test_warn_proceeds_with_an_event_one_log_line_and_a_metric(
    instrumented: Any,
    observed: Any,
    server: FakeProviderServer,
    client: OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, "costspan"),
        costspan.budget(GPT4O_CALL * 2, scope="block", on_exceed="warn", name="dev") as spend,
    ):
        for _ in range(4):
            chat(client)
    assert len(chat_requests(server)) == 4
    assert spend.spent_usd == 4 * GPT4O_CALL
    spans = observed.llm_spans()
    assert [len(budget_events(s)) for s in spans] == [0, 0, 1, 1]
    assert budget_events(spans[3])[0] == {
        "costspan.budget.scope": "block",
        "costspan.budget.limit_usd": 0.0014,
        "costspan.budget.spent_usd": 0.0021,
        "costspan.budget.action": "warn",
        "costspan.budget.name": "dev",
    }
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)
    lines = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert lines == [
        "costspan: block budget 'dev' exceeded: limit $0.0014, spent $0.0014; "
        "calls proceed (on_exceed='warn')"
    ]
    assert metric_sum(observed, "costspan.budget.exceeded", **{"costspan.budget.action": "warn"}) == 2


def test_on_exceed_callable_decides(instrumented: Any, server: FakeProviderServer, client: OpenAI) -> None:
    seen: list[BudgetExceeded] = []

    class Stop(RuntimeError):
        pass

    def decide(event: BudgetExceeded) -> None:
        seen.append(event)
        if len(seen) > 1:
            raise Stop("second time over: stop")

    with costspan.budget(GPT4O_CALL, scope="block", on_exceed=decide):
        chat(client)
        chat(client)  # over: decide() returns, the call proceeds
        with pytest.raises(Stop):
            chat(client)
    assert len(chat_requests(server)) == 2
    assert [e.spent_usd for e in seen] == [GPT4O_CALL, 2 * GPT4O_CALL]


def test_downgrade_sends_the_cheaper_model_past_the_threshold_and_prices_it(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    with costspan.budget(
        1, scope="block", downgrade={"gpt-4o": "gpt-4o-mini"}, downgrade_at=GPT4O_CALL * 2
    ) as spend:
        for _ in range(4):
            chat(client)
        chat(client, model="gpt-4.1")  # not in the mapping: unchanged
    assert [r.json()["model"] for r in chat_requests(server)] == [
        "gpt-4o",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4.1",
    ]
    spans = observed.llm_spans()
    assert [s.name for s in spans] == [
        "chat gpt-4o",
        "chat gpt-4o",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "chat gpt-4.1",
    ]
    third = spans[2].attributes
    assert third["gen_ai.request.model"] == "gpt-4o-mini"
    assert third["costspan.budget.downgraded_from"] == "gpt-4o"
    assert third["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert third["gen_ai.usage.cost"] == float(MINI_CALL)
    assert "costspan.budget.downgraded_from" not in spans[1].attributes
    gpt41 = (120 * Decimal("2") + 40 * Decimal("8")) / 1_000_000
    assert spend.spent_usd == 2 * GPT4O_CALL + 2 * MINI_CALL + gpt41
    assert metric_sum(observed, "costspan.budget.downgrades") == 2


def test_downgrade_then_raise_at_the_limit(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    limit = GPT4O_CALL + 3 * MINI_CALL
    with costspan.budget(limit, scope="block", downgrade={"gpt-4o": "gpt-4o-mini"}):  # default: 80%
        sent = 0
        with pytest.raises(BudgetExceeded):
            while True:
                chat(client)
                sent += 1
    # 0 -> gpt-4o ($0.0007 >= 80% of $0.000826): then minis until the limit is reached.
    assert [r.json()["model"] for r in chat_requests(server)] == ["gpt-4o"] + ["gpt-4o-mini"] * 3
    assert sent == 4


def test_preflight_refuses_a_call_whose_worst_case_would_cross_the_limit(
    instrumented: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    messages = [{"role": "user", "content": "x" * 400}]  # 404 characters -> 101 tokens estimated
    worst = (101 * Decimal("2.50") + 100 * Decimal("10")) / 1_000_000  # $0.0012525
    limit = Decimal("0.002")
    with costspan.budget(limit, scope="block", preflight=True) as spend:
        for _ in range(2):  # spend 0 and 0.0007: + worst case stays within $0.002
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
        with pytest.raises(BudgetExceeded) as refused:
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
        assert spend.spent_usd == 2 * GPT4O_CALL < limit
    assert refused.value.worst_case_usd == worst
    assert str(refused.value) == (
        "block budget would be exceeded: limit $0.002, spent $0.0014, worst case of the gpt-4o call "
        "$0.0012525; refused before sending"
    )
    assert len(chat_requests(server)) == 2
    with costspan.budget(limit, scope="block"):  # without pre-flight the same third call is sent
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
    assert len(chat_requests(server)) == 5


# --- streams ------------------------------------------------------------------------------------


def test_a_stream_in_flight_finishes_by_default(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    with costspan.budget(GPT4O_CALL, scope="block") as spend:
        stream = chat(client, stream=True)
        first = next(stream)
        with costspan.tool("crawl", cost_usd=0.01):  # the limit is crossed while the stream runs
            pass
        rest = list(stream)
        assert first is not None and rest
        assert spend.spent_usd == Decimal("0.01") + GPT4O_CALL
        with pytest.raises(BudgetExceeded):
            chat(client)
    assert observed.llm_spans()[0].attributes["gen_ai.usage.cost"] == float(GPT4O_CALL)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_abort_streams_stops_a_stream_in_flight_at_its_next_chunk(
    instrumented: Any, observed: Any, server: FakeProviderServer, use_async: bool
) -> None:
    async def consume_async() -> tuple[int, BudgetExceeded | None]:
        client = AsyncOpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
        async with client:
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            await stream.__anext__()
            with costspan.tool("crawl", cost_usd=0.01):
                pass
            got = 1
            try:
                async for _ in stream:
                    got += 1
            except BudgetExceeded as exc:
                return got, exc
            return got, None

    with costspan.budget(GPT4O_CALL, scope="block", abort_streams=True):
        if use_async:
            got, exc = asyncio.run(consume_async())
        else:
            client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
            stream = chat(client, stream=True)
            next(stream)
            with costspan.tool("crawl", cost_usd=0.01):
                pass
            got, exc = 1, None
            try:
                for _ in stream:
                    got += 1
            except BudgetExceeded as caught:
                exc = caught
            client.close()
    assert got == 1
    assert exc is not None and exc.in_stream
    assert "stopped mid-stream" in str(exc)
    span = observed.llm_spans()[0]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "BudgetExceeded"
    assert budget_events(span)[0]["costspan.budget.action"] == "abort_stream"
    assert len(chat_requests(server)) == 1


# --- faults and configuration errors ------------------------------------------------------------


class _BrokenLedger:
    remote = False

    def add(self, key: str, units: int, expire_at: float | None) -> int:
        raise ConnectionError("ledger down")

    def spent(self, key: str) -> int:
        raise ConnectionError("ledger down")


def test_a_failing_ledger_never_breaks_the_call(
    instrumented: Any, observed: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    before = FAULTS.counts().get("budget check", 0)
    with costspan.task("t"), costspan.budget(0.000001, scope="task", ledger=_BrokenLedger()):
        response = chat(client)
    assert response.choices[0].message.content
    assert FAULTS.counts()["budget check"] == before + 1
    assert observed.llm_spans()[0].attributes["gen_ai.usage.cost"] == float(GPT4O_CALL)


def test_a_call_that_cannot_cost_anything_passes_a_spent_budget(
    observed: Any, server: FakeProviderServer, client: OpenAI
) -> None:
    """A model priced at $0 (here an override entry: a local model) cannot overspend: it is sent and
    priced at $0 while every priced call is refused; a warn budget records nothing for it."""
    card = costspan.RateCard.default().with_overrides(
        {"models": [{"model": "local-llm", "input_per_mtok": 0, "output_per_mtok": 0}]}
    )
    inst = OpenAIInstrumentor()
    inst.instrument(
        tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider, rate_card=card
    )
    try:
        with costspan.budget(GPT4O_CALL, scope="block") as spend:
            chat(client)  # spends the whole budget
            with pytest.raises(BudgetExceeded):
                chat(client)
            free = chat(client, model="local-llm")
            with pytest.raises(BudgetExceeded):
                chat(client, model="gpt-4o-mini")
        assert free.choices[0].message.content
        assert spend.spent_usd == GPT4O_CALL
        assert [r.json()["model"] for r in chat_requests(server)] == ["gpt-4o", "local-llm"]
        with costspan.budget(GPT4O_CALL, scope="block", on_exceed="warn"):
            chat(client)
            chat(client, model="local-llm")
    finally:
        inst.uninstrument()
    spans = observed.llm_spans()
    assert [(s.attributes["gen_ai.request.model"], s.status.status_code) for s in spans] == [
        ("gpt-4o", StatusCode.UNSET),
        ("gpt-4o", StatusCode.ERROR),
        ("local-llm", StatusCode.UNSET),
        ("gpt-4o-mini", StatusCode.ERROR),
        ("gpt-4o", StatusCode.UNSET),
        ("local-llm", StatusCode.UNSET),
    ]
    assert spans[2].attributes["gen_ai.usage.cost"] == 0.0
    assert budget_events(spans[2]) == [] and budget_events(spans[5]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"usd": -1}, "costspan.budget: usd must be a finite number of USD >= 0, got -1"),
        ({"usd": "ten"}, "costspan.budget: usd must be a number of USD >= 0, got 'ten'"),
        ({"usd": 1, "scope": "tenant"}, "scope must be one of task, customer, block, got 'tenant'"),
        ({"usd": 1, "on_exceed": "stop"}, "on_exceed must be 'raise', 'warn' or a callable, got 'stop'"),
        ({"usd": 1, "window": "day"}, "window applies to scope='customer' only"),
        ({"usd": 1, "scope": "customer", "window": "fortnight"}, "window must be minute, hour, day"),
        ({"usd": 1, "downgrade": {"gpt-4o": ""}}, "downgrade entries must map a model name"),
        ({"usd": 1, "downgrade": {"a": "b"}, "downgrade_at": 2}, "downgrade_at (2) must not be above"),
    ],
)
def test_bad_budget_arguments_fail_at_once(kwargs: dict[str, Any], message: str) -> None:
    usd = kwargs.pop("usd")
    with pytest.raises(costspan.BudgetConfigError) as err:
        costspan.budget(usd, **kwargs)
    assert message in str(err.value)


def test_bad_budget_file_names_file_key_and_value(tmp_path: Any) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("customers:\n  cus_1: {usd: 50, window: day, on_exceed: explode}\n")
    with pytest.raises(costspan.BudgetConfigError) as err:
        costspan.configure_budgets(path)
    assert str(err.value) == (
        f"{path}: customers.cus_1: on_exceed must be 'raise', 'warn' or a callable, got 'explode'"
    )
    path.write_text("tasks:\n  research: {usd: 5, max: 3}\n")
    with pytest.raises(costspan.BudgetConfigError, match=r"tasks.research: unknown field 'max'"):
        costspan.configure_budgets(path)
    toml = tmp_path / "budgets.toml"
    toml.write_text('ledger = "memory"\n[tasks]\nresearch = 5\n[customers."*"]\nusd = 50\nwindow = "day"\n')
    registry = costspan.budget.configure_budgets(toml)
    assert registry.tasks["research"].limit_usd == 5
    assert registry.customers["*"].window_s == 86_400


# --- the console tree shows when and why a budget acted -----------------------------------------


def test_console_tree_shows_downgrades_warnings_and_refusals(
    server: FakeProviderServer, client: OpenAI
) -> None:
    import io

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    out = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(costspan.CostSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(costspan.ConsoleCostTreeExporter(out)))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        with (
            costspan.task("triage", tracer_provider=provider),
            costspan.budget(
                GPT4O_CALL + 3 * MINI_CALL, downgrade={"gpt-4o": "gpt-4o-mini"}, downgrade_at=GPT4O_CALL
            ),
        ):
            chat(client)
            chat(client)
            with costspan.budget(MINI_CALL, scope="block", on_exceed="warn"):
                chat(client, model="gpt-4o-mini")
                chat(client, model="gpt-4o-mini")
            with contextlib.suppress(BudgetExceeded):
                chat(client)
    finally:
        inst.uninstrument()
        provider.shutdown()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("triage  $0.000826 total  5 calls  1 failed  task_id=")
    assert lines[1:] == [
        "├─ chat gpt-4o  $0.0007  120 in / 40 out",
        "├─ chat gpt-4o-mini  $0.000042  120 in / 40 out  [budget: downgraded from gpt-4o]",
        "├─ chat gpt-4o-mini  $0.000042  120 in / 40 out",
        "├─ chat gpt-4o-mini  $0.000042  120 in / 40 out  [budget block: over the limit, spent $0.000042 of "
        "$0.000042]",
        "└─ chat gpt-4o-mini  FAILED BudgetExceeded  [budget: downgraded from gpt-4o]  "
        "[budget task: refused, spent $0.000826 of $0.000826]",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_child_forked_while_a_thread_holds_the_ledger_lock_can_still_count() -> None:
    ledger = InMemoryLedger()
    ledger.add("task:t", 5, None)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ledger._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: no thread holds the lock here
        signal.alarm(5)  # a deadlock kills the child (SIGALRM) and fails the test
        code = 0 if ledger.add("task:t", 2, None) == 7 else 1
        os._exit(code)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ledger.spent("task:t") == 5  # the parent's count is its own
