"""The exit summary (COSTSPAN_SUMMARY / configure(summary=True)) and the bounds of its ledger."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap

from costspan import attributes as attrs
from costspan.budget.task_ledger import (
    EXACT_RUNS,
    MAX_TASK_TYPES,
    OTHER_TASK_TYPES,
    TOP_CAPACITY,
    CostSketch,
    TaskLedger,
    TopSpenders,
)
from costspan.pricing import UNITS_PER_USD
from costspan.setup.settings import read_settings
from costspan.setup.summary import format_summary

APP = textwrap.dedent(
    """
    import sys
    import costspan
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    costspan.configure(tracer_provider=provider, instrument=False, **eval(sys.argv[1]))

    def run(task, customer, costs, fail=False):
        with costspan.task(task, customer_id=customer, tracer_provider=provider):
            for number, cost in enumerate(costs):
                try:
                    with costspan.attempt():
                        with costspan.tool("model", cost_usd=cost, tracer_provider=provider):
                            pass
                        if number < len(costs) - 1:
                            raise ValueError("retry")
                except ValueError:
                    pass
            if fail:
                costspan.task_failed("rejected")

    run("triage", "acme", [0.25])
    run("triage", "acme", [0.5, 0.25])       # one retried attempt: $0.50 waste
    run("triage", "globex", [0.75], fail=True)
    run("triage", "initech", [0.125])
    run("write", "acme", [2.0])
    print("app output")
    """
)

EXPECTED = """\
costspan: task runs in this process (totals exact; p50/p95 exact to 1,024 runs, then within 1%)

task write
  runs              1
  outcomes          success 1, error 0, refused 0
  success rate      100.0%
  total             $2.0000
  $/run p50 / p95   $2.0000 / $2.0000
  $/successful run  $2.0000
  retry overhead    0.0% ($0.0000 on retried attempts)
  top customers     acme $2.0000

task triage
  runs              4
  outcomes          success 3, error 1, refused 0
  success rate      75.0%
  total             $1.8750
  $/run p50 / p95   $0.2500 / $0.7500
  $/successful run  $0.6250
  retry overhead    36.4% ($0.5000 on retried attempts)
  top customers     acme $1.0000, globex $0.7500, initech $0.1250
"""


def _run_app(arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COSTSPAN_", "OTEL_"))}
    environ.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", **env)
    return subprocess.run(
        [sys.executable, "-c", APP, arguments],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=True,
    )


def test_costspan_summary_prints_one_table_per_task_type_at_exit() -> None:
    done = _run_app("{}", COSTSPAN_SUMMARY="true")
    assert done.stdout == "app output\n"  # the summary stays off standard out
    assert done.stderr == EXPECTED


def test_configure_summary_argument_wins_over_the_variable() -> None:
    assert _run_app("{'summary': True}").stderr == EXPECTED
    assert _run_app("{'summary': False}", COSTSPAN_SUMMARY="true").stderr == ""
    assert _run_app("{}").stderr == ""


def test_a_bad_costspan_summary_value_is_reported() -> None:
    settings = read_settings({"COSTSPAN_SUMMARY": "maybe"})
    assert settings.summary is None
    assert settings.problems == (
        "COSTSPAN_SUMMARY='maybe' is not a boolean (use true or false); no task-run summary is printed",
    )


def _units(usd: float) -> int:
    return round(usd * UNITS_PER_USD)


def test_quantiles_are_exact_then_within_one_percent() -> None:
    rng = random.Random(7)
    costs = [rng.lognormvariate(-5, 1.5) for _ in range(EXACT_RUNS * 5)]
    sketch = CostSketch()
    for cost in costs[:EXACT_RUNS]:
        sketch.add(cost)
    ordered = sorted(costs[:EXACT_RUNS])
    assert sketch.quantile(0.5) == ordered[EXACT_RUNS // 2 - 1]
    assert sketch.quantile(0.95) == ordered[math.ceil(0.95 * EXACT_RUNS) - 1]  # nearest rank
    for cost in costs[EXACT_RUNS:]:
        sketch.add(cost)
    assert sketch.exact is None  # the kept costs were dropped: bounded
    ordered = sorted(costs)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(costs)) - 1]
        approx = sketch.quantile(q)
        assert approx is not None and abs(approx - exact) <= 0.01 * exact
    assert len(sketch.buckets) <= 1280


def test_top_customers_are_exact_under_capacity_and_bounded_above() -> None:
    top = TopSpenders()
    for number in range(TOP_CAPACITY):
        top.add(f"c{number}", number + 1)
    assert top.top(2) == [
        (f"c{TOP_CAPACITY - 1}", TOP_CAPACITY, False),
        (f"c{TOP_CAPACITY - 2}", TOP_CAPACITY - 1, False),
    ]
    for number in range(10_000):  # many small customers
        top.add(f"small{number}", 1)
    top.add("whale", 1_000_000)
    assert len(top.spend) == TOP_CAPACITY
    customer, units, overstated = top.top(1)[0]
    assert customer == "whale" and overstated
    assert 1_000_000 <= units <= 1_000_000 + min(top.spend.values())


def test_task_types_past_the_cap_share_one_row() -> None:
    ledger = TaskLedger()
    for number in range(MAX_TASK_TYPES + 10):
        ledger.add(f"type{number}", attrs.OUTCOME_SUCCESS, None, _units(0.5), 0)
    snapshot = ledger.snapshot()
    assert len(snapshot) == MAX_TASK_TYPES + 1
    assert snapshot[OTHER_TASK_TYPES].runs == 10
    assert "task (other task types)" in format_summary(ledger)
