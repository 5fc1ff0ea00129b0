"""Load: many threads and asyncio tasks at once; rolled-up totals exact, no span lost, ledger empty.

The issue's full size (100 threads x 1,000 tasks, 10,000 concurrent asyncio tasks) runs with
`python benchmarks/bench_load.py` (timings in benchmarks/RESULTS.md); CI runs the same code with
100 threads x `COSTSPAN_LOAD_TASKS` tasks each (default 30) and the full 10,000 asyncio tasks.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer

import costspan
from costspan import attributes as A
from costspan.rollup import processor as processor_module

# Published USD per million tokens: input, cached input, output.
PRICES = {
    "gpt-4o": (Fraction("2.5"), Fraction("1.25"), Fraction(10)),
    "gpt-4o-mini": (Fraction("0.15"), Fraction("0.075"), Fraction("0.6")),
    "gpt-4.1": (Fraction(2), Fraction("0.5"), Fraction(8)),
}
MODELS = sorted(PRICES)
TASKS_PER_THREAD = int(os.environ.get("COSTSPAN_LOAD_TASKS", "30"))


@dataclass
class Call:
    model: str
    input_tokens: int
    cached: int
    output_tokens: int

    def usd(self) -> Fraction:
        p_in, p_cached, p_out = PRICES[self.model]
        return (
            (self.input_tokens - self.cached) * p_in + self.cached * p_cached + self.output_tokens * p_out
        ) / (1_000_000)


@dataclass
class Node:
    calls: list[Call]
    tool_cents: int | None = None
    children: list[Node] = field(default_factory=list)

    def totals(self) -> tuple[Fraction, int, int, int]:
        """Cost, LLM calls, input tokens, spans (this node's own span included)."""
        cost = sum((c.usd() for c in self.calls), Fraction(0))
        calls, tokens, spans = len(self.calls), sum(c.input_tokens for c in self.calls), 1 + len(self.calls)
        if self.tool_cents is not None:
            cost += Fraction(self.tool_cents, 100)
            spans += 1
        for child in self.children:
            c_cost, c_calls, c_tokens, c_spans = child.totals()
            cost, calls, tokens, spans = cost + c_cost, calls + c_calls, tokens + c_tokens, spans + c_spans
        return cost, calls, tokens, spans


def random_tree(rng: random.Random, depth: int = 0) -> Node:
    calls = []
    for _ in range(rng.randint(0 if depth else 1, 2)):
        inp = rng.randint(0, 200_000)
        calls.append(Call(rng.choice(MODELS), inp, inp * rng.randint(0, 100) // 100, rng.randint(0, 20_000)))
    tool = rng.randint(0, 50) if rng.random() < 0.3 else None
    children = [random_tree(rng, depth + 1) for _ in range(rng.randint(0, 3 - depth))] if depth < 2 else []
    return Node(calls, tool, children)


def call_attributes(call: Call) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": call.model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.cache_read.input_tokens": call.cached,
        "gen_ai.usage.output_tokens": call.output_tokens,
    }


def run_node(tracer: Tracer, provider: TracerProvider, node: Node, name: str) -> None:
    with costspan.step(name, tracer_provider=provider):
        for call in node.calls:
            tracer.start_span(
                f"chat {call.model}", kind=SpanKind.CLIENT, attributes=call_attributes(call)
            ).end()
        if node.tool_cents is not None:
            with costspan.tool("lookup", cost_usd=node.tool_cents / 100, tracer_provider=provider):
                pass
        for i, child in enumerate(node.children):
            run_node(tracer, provider, child, f"{name}.{i}")


async def run_node_async(tracer: Tracer, provider: TracerProvider, node: Node, name: str) -> None:
    with costspan.step(name, tracer_provider=provider):
        for call in node.calls:
            span = tracer.start_span(
                f"chat {call.model}", kind=SpanKind.CLIENT, attributes=call_attributes(call)
            )
            await asyncio.sleep(0)  # the call is in flight: other tasks run
            span.end()
        if node.tool_cents is not None:
            with costspan.tool("lookup", cost_usd=node.tool_cents / 100, tracer_provider=provider):
                await asyncio.sleep(0)
        for i, child in enumerate(node.children):
            await run_node_async(tracer, provider, child, f"{name}.{i}")


class RootsExporter(SpanExporter):
    """An in-memory exporter that keeps what the checks need (span count, the task spans' totals).

    Keeping every span object alive would make the test measure the garbage collector scanning
    hundreds of thousands of retained spans, which no real exporter does.
    """

    def __init__(self) -> None:
        self.count = 0
        self.roots: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                self.count += 1
                if span.parent is None:
                    attributes = span.attributes or {}
                    self.roots[str(attributes.get(A.TASK_ID, span.name))] = dict(attributes)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@dataclass
class LoadRun:
    provider: TracerProvider
    exporter: RootsExporter
    processor: costspan.CostSpanProcessor
    expected: dict[str, tuple[Fraction, int, int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, task_id: str, tree: Node) -> None:
        cost, calls, tokens, spans = tree.totals()
        with self.lock:
            self.expected[task_id] = (cost, calls, tokens, spans + 1)  # + the task span


def new_run() -> LoadRun:
    provider = TracerProvider()
    processor = costspan.CostSpanProcessor()
    exporter = RootsExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return LoadRun(provider, exporter, processor)


def live_nodes() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is processor_module._Node)


def check(run: LoadRun, nodes_before: int) -> None:
    exporter = run.exporter
    assert exporter.count == sum(e[3] for e in run.expected.values())  # no span lost
    assert set(exporter.roots) == set(run.expected)
    for task_id, root in exporter.roots.items():
        cost, calls, tokens, _ = run.expected[task_id]
        # The exact sum, rounded once (a task with no calls at all carries no rollup).
        assert root.get(A.ROLLUP_COST_USD, 0.0) == float(cost)
        assert root.get(A.ROLLUP_LLM_CALLS, 0) == calls
        assert root.get(A.ROLLUP_INPUT_TOKENS, 0) == tokens
    assert run.processor.faults() == {}
    assert live_nodes() <= nodes_before  # the ledger is empty: no node outlives its spans


def run_threads(threads: int, tasks_per_thread: int, seed: int = 7) -> LoadRun:
    run = new_run()
    tracer = run.provider.get_tracer("load")
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        rng = random.Random(seed * 1_000_003 + index)
        start.wait()
        for i in range(tasks_per_thread):
            tree = random_tree(rng)
            task_id = f"t{index}-{i}"
            run.expect(task_id, tree)
            with costspan.task(
                "load", task_id=task_id, customer_id=f"cus_{index % 7}", tracer_provider=run.provider
            ):
                run_node(tracer, run.provider, tree, "root")

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return run


def run_asyncio(tasks: int, seed: int = 11) -> LoadRun:
    run = new_run()
    tracer = run.provider.get_tracer("load")
    rng = random.Random(seed)
    # One step of 0-2 calls (and maybe a tool) per task: the point here is 10,000 open at once.
    trees = [random_tree(rng, depth=2) for _ in range(tasks)]

    async def one(i: int, tree: Node) -> None:
        task_id = f"a{i}"
        run.expect(task_id, tree)
        with costspan.task("load", task_id=task_id, tracer_provider=run.provider):
            await run_node_async(tracer, run.provider, tree, "root")

    async def main() -> None:
        await asyncio.gather(*(one(i, tree) for i, tree in enumerate(trees)))

    asyncio.run(main())
    return run


def test_100_threads_of_random_task_trees() -> None:
    before = live_nodes()
    run = run_threads(100, TASKS_PER_THREAD)
    assert len(run.expected) == 100 * TASKS_PER_THREAD
    check(run, before)
    run.provider.shutdown()


def test_10000_concurrent_asyncio_tasks() -> None:
    before = live_nodes()
    run = run_asyncio(10_000)
    assert len(run.expected) == 10_000
    check(run, before)
    run.provider.shutdown()
