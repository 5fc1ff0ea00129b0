"""A `costspan.task` run around one openai chat call, with and without the task-run recording.

- `task_chat:recorded`: costspan as shipped: the run's ledger entry in the context, the call charged
  to it, and at the end the outcome on the span, the `costspan.task.cost` histogram, the retry-cost
  and outlier counters (on the same MeterProvider as the call's metrics) and the summary ledger.
- `task_chat:unrecorded`: the same task span and call with the task-run recording taken out (the
  task scope opens the plain span scope it opened before task runs existed).

The difference is what recording a task run costs. Run:
    python benchmarks/callgrind.py task_run_workloads:task_chat:recorded 10 40   (two processes)
or through `per_op_in_process` (see RESULTS.md for the figures).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from llm_workloads import CALLS, Contender
from span_workloads import Workload

import costspan
from costspan.attribution import api
from costspan.telemetry.metrics import record_tools_on
from costspan.telemetry.task_metrics import record_task_runs_on


class _UnrecordedTask(api._EnteredSpan):
    """The task scope as it was before task runs: a span and its baggage, nothing else."""

    def __init__(self, name: str, entries: dict[str, str], tracer_provider: Any) -> None:
        super().__init__(name, entries, {}, tracer_provider)


def task_chat_workload(recorded: bool) -> Workload:
    if not recorded:
        api._EnteredTask = _UnrecordedTask  # type: ignore[misc]
    make_client, do_call = CALLS["openai_chat"]
    setup = Contender("openai_chat", "costspan", with_meter=True)
    setup.on()
    record_task_runs_on(setup.meter_provider)
    record_tools_on(setup.meter_provider)
    client = make_client()
    drain = setup.export_queue.clear
    provider = setup.tracer_provider

    def run(n: int) -> None:
        for number in range(n):
            with costspan.task("summarise", customer_id=f"cus_{number % 10}", tracer_provider=provider):
                do_call(client)
            drain()

    run(40)  # warm-up: imports, pricing caches, every customer's metric points
    gc.collect()
    gc.freeze()
    return run


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "task_chat:recorded": lambda: task_chat_workload(True),
    "task_chat:unrecorded": lambda: task_chat_workload(False),
}
