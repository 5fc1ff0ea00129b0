"""Rollup sums are exact on random span trees, with children in threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass, field
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace

from conftest import make_traced
from costspan import attributes as A
from llm import llm_call

# Published USD per million tokens: (input, cached input, output)
PRICES = {
    "gpt-4o": (Fraction("2.5"), Fraction("1.25"), Fraction(10)),
    "gpt-4o-mini": (Fraction("0.15"), Fraction("0.075"), Fraction("0.6")),
    "gpt-4.1": (Fraction(2), Fraction("0.5"), Fraction(8)),
}


@dataclass
class Call:
    model: str
    input_tokens: int
    cached: int
    output_tokens: int

    def usd(self) -> Fraction:
        p_in, p_cached, p_out = PRICES[self.model]
        uncached = self.input_tokens - self.cached
        return (uncached * p_in + self.cached * p_cached + self.output_tokens * p_out) / 1_000_000


@dataclass
class Node:
    calls: list[Call]
    children: list[Node] = field(default_factory=list)

    def subtree(self) -> tuple[Fraction, int, int]:
        cost = sum((c.usd() for c in self.calls), Fraction(0))
        n_calls = len(self.calls)
        tokens = sum(c.input_tokens for c in self.calls)
        for child in self.children:
            c_cost, c_calls, c_tokens = child.subtree()
            cost, n_calls, tokens = cost + c_cost, n_calls + c_calls, tokens + c_tokens
        return cost, n_calls, tokens


calls = st.builds(
    lambda model, inp, frac, out: Call(model, inp, inp * frac // 100, out),
    st.sampled_from(sorted(PRICES)),
    st.integers(0, 2_000_000),
    st.integers(0, 100),
    st.integers(0, 200_000),
)
trees = st.recursive(
    st.builds(Node, st.lists(calls, min_size=1, max_size=3)),
    lambda children: st.builds(Node, st.lists(calls, max_size=3), st.lists(children, min_size=1, max_size=4)),
    max_leaves=30,
)


def run_threaded(tracer: trace.Tracer, node: Node, path: str) -> None:
    with tracer.start_as_current_span(path):
        # A thread per child: a bounded pool would deadlock on deep trees waiting on itself.
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run, args=(run_threaded, tracer, child, f"{path}.{i}")
            )
            for i, child in enumerate(node.children)
        ]
        for thread in threads:
            thread.start()
        for j, c in enumerate(node.calls):
            llm_call(
                tracer, c.model, c.input_tokens, c.output_tokens, cache_read=c.cached, name=f"{path}/call{j}"
            )
        for thread in threads:
            thread.join()


async def run_async(tracer: trace.Tracer, node: Node, path: str) -> None:
    with tracer.start_as_current_span(path):
        tasks = [
            asyncio.create_task(run_async(tracer, child, f"{path}.{i}"))
            for i, child in enumerate(node.children)
        ]
        for j, c in enumerate(node.calls):
            await asyncio.sleep(0)
            llm_call(
                tracer, c.model, c.input_tokens, c.output_tokens, cache_read=c.cached, name=f"{path}/call{j}"
            )
        await asyncio.gather(*tasks)


def check_every_node(spans: dict, node: Node, path: str) -> None:
    cost, n_calls, tokens = node.subtree()
    got = spans[path].attributes
    assert got[A.ROLLUP_COST_USD] == float(cost), path
    assert got[A.ROLLUP_LLM_CALLS] == n_calls
    assert got.get(A.ROLLUP_INPUT_TOKENS, 0) == tokens
    for i, child in enumerate(node.children):
        check_every_node(spans, child, f"{path}.{i}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, cost_first=st.booleans())
def test_rollup_exact_on_random_trees_in_threads(tree: Node, cost_first: bool):
    t = make_traced(cost_first)
    run_threaded(t.tracer, tree, "r")
    check_every_node(t.spans(), tree, "r")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, cost_first=st.booleans())
def test_rollup_exact_on_random_trees_in_asyncio(tree: Node, cost_first: bool):
    t = make_traced(cost_first)
    asyncio.run(run_async(t.tracer, tree, "r"))
    check_every_node(t.spans(), tree, "r")


def test_no_float_drift_over_thousands_of_children():
    t = make_traced(True)
    call = Call("gpt-4o-mini", 1, 0, 1)  # $0.00000075 each: not representable in binary floats
    with t.tracer.start_as_current_span("root"):
        for i in range(5000):
            llm_call(t.tracer, call.model, 1, 1, name=f"c{i}")
    root = t.spans()["root"].attributes
    assert root[A.ROLLUP_COST_USD] == float(call.usd() * 5000) == 0.00375
    naive = 0.0
    for _ in range(5000):
        naive += float(call.usd())
    assert naive != 0.00375  # the float sum a naive rollup would produce drifts
