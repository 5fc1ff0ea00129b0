"""The task ledger stays bounded: RSS over 1,000,000 `costspan.task` runs.

Each run is a task (customer from 200, task type from 20, one retried attempt in every 5th run)
with a priced tool inside, under a 1% trace-id ratio sampler, recording `costspan.task.cost` and
the summary ledger. All metric series (20 task types x 200 customers x outcomes) are made in the
warm-up, so the growth measured after it is the ledger's (and any leak), not the metric SDK's own
series. Target: within 10 MB.

    python benchmarks/bench_task_ledger.py [runs]
"""

from __future__ import annotations

import gc
import sys
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

import costspan
from costspan.budget.task_ledger import TASK_LEDGER
from costspan.telemetry.metrics import record_tools_on
from costspan.telemetry.task_metrics import record_task_runs_on

TASK_TYPES = 20
CUSTOMERS = 200


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def main(runs: int) -> None:
    provider = TracerProvider(sampler=TraceIdRatioBased(0.01))
    provider.add_span_processor(costspan.CostSpanProcessor())
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    record_task_runs_on(meter_provider)
    record_tools_on(meter_provider)

    def run_tasks(first: int, n: int) -> None:
        for number in range(first, first + n):
            task = f"task_{number % TASK_TYPES}"
            customer = f"cus_{(number // TASK_TYPES) % CUSTOMERS}"
            with costspan.task(task, customer_id=customer, tracer_provider=provider):
                if number % 5 == 0:
                    try:
                        with costspan.attempt():
                            with costspan.tool("search", cost_usd=0.002, tracer_provider=provider):
                                pass
                            raise ValueError("retry")
                    except ValueError:
                        pass
                with (
                    costspan.attempt(),
                    costspan.tool("search", cost_usd=0.001 * (1 + number % 7), tracer_provider=provider),
                ):
                    pass
                if number % 11 == 0:
                    costspan.task_failed("rejected")

    warm_up = TASK_TYPES * CUSTOMERS * 11  # every (task, customer, outcome) series, and more
    run_tasks(0, warm_up)
    reader.get_metrics_data()
    gc.collect()
    start_rss = rss_bytes()
    started = time.perf_counter()
    run_tasks(warm_up, runs)
    elapsed = time.perf_counter() - started
    reader.get_metrics_data()
    gc.collect()
    growth = rss_bytes() - start_rss
    total_runs = sum(stats.runs for stats in TASK_LEDGER.snapshot().values())
    assert total_runs == warm_up + runs, total_runs
    print(
        f"task ledger: {runs:,} task runs in {elapsed:.1f} s ({elapsed / runs * 1e6:.0f} us/run), RSS "
        f"{start_rss / 2**20:.1f} -> {(start_rss + growth) / 2**20:.1f} MiB (growth {growth / 2**20:.2f} MiB)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
