"""The task-run summary printed at exit (`COSTSPAN_SUMMARY=true`, or `configure(summary=True)`).

One table per task type, from the task ledger (`costspan.budget.task_ledger`): every run that
ended in this process, sampled or not. Written to standard error, so that a program's own output
on standard out stays clean.

- success rate: successful runs / runs;
- total: exact; $/run p50 and p95: from the ledger's sketch (within 1%);
- $/successful run: total spend of all runs / successful runs (what one success costs, failed
  runs and retries included);
- retry overhead: cost of retried attempts / the rest of the cost (the base cost);
- top customers by spend (exact unless a task type had more than 32 customers: then "<=").
"""

from __future__ import annotations

import atexit
import sys
import threading
from decimal import Decimal
from typing import TextIO

from costspan.budget.errors import format_usd
from costspan.budget.task_ledger import TASK_LEDGER, TaskLedger, TaskTypeStats
from costspan.pricing import UNITS_PER_USD

TOP_CUSTOMERS = 5

_installed: list[bool] = []
_lock = threading.Lock()


def _usd(units: int) -> str:
    return format_usd(Decimal(units) / UNITS_PER_USD)


def _approx_usd(value: float | None) -> str:
    return "-" if value is None else format_usd(Decimal(f"{value:.6g}"))


def _rows(name: str, stats: TaskTypeStats) -> list[tuple[str, str]]:
    rate = stats.successes / stats.runs if stats.runs else 0.0
    base = stats.units - stats.retry_units
    overhead = (
        f"{100 * stats.retry_units / base:.1f}%" if base > 0 else ("-" if not stats.retry_units else "inf")
    )
    per_success = _usd(stats.units // stats.successes) if stats.successes else "- (no successful run)"
    customers = ", ".join(
        f"{customer} {'<=' if overstated else ''}{_usd(units)}"
        for customer, units, overstated in stats.customers.top(TOP_CUSTOMERS)
    )
    return [
        ("runs", f"{stats.runs:,}"),
        ("outcomes", f"success {stats.successes:,}, error {stats.errors:,}, refused {stats.refused:,}"),
        ("success rate", f"{100 * rate:.1f}%"),
        ("total", _usd(stats.units)),
        (
            "$/run p50 / p95",
            f"{_approx_usd(stats.sketch.quantile(0.5))} / {_approx_usd(stats.sketch.quantile(0.95))}",
        ),
        ("$/successful run", per_success),
        ("retry overhead", f"{overhead} ({_usd(stats.retry_units)} on retried attempts)"),
        ("top customers", customers or "-"),
    ]


def format_summary(ledger: TaskLedger = TASK_LEDGER) -> str:
    """The summary text; empty when no task run ended."""
    snapshot = ledger.snapshot()
    if not snapshot:
        return ""
    lines = [
        "costspan: task runs in this process (totals exact; p50/p95 exact to 1,024 runs, then within 1%)"
    ]
    ordered = sorted(snapshot.items(), key=lambda item: (-item[1].units, item[0]))
    for name, stats in ordered:
        rows = _rows(name, stats)
        width = max(len(label) for label, _value in rows)
        lines.append("")
        lines.append(f"task {name}")
        lines.extend(f"  {label:<{width}}  {value}" for label, value in rows)
    return "\n".join(lines) + "\n"


def print_summary(stream: TextIO | None = None) -> None:
    try:
        text = format_summary()
        if text:
            (stream or sys.stderr).write(text)
    except Exception as exc:  # at exit: say so, never raise
        sys.stderr.write(f"costspan: the task-run summary failed: {exc!r}\n")


def install_summary() -> None:
    """Print the summary when the process exits (once, however often this is called)."""
    with _lock:
        if _installed:
            return
        _installed.append(True)
    atexit.register(print_summary)
