"""Cost per group (task type, customer, feature, agent, step, model) from the `calls` and `runs` tables.

What counts where:
- a call (LLM or tool) counts in the group its own attributes name; its cost is its own
  `gen_ai.usage.cost` (never a rollup), so the groups' costs add up to the files' total;
- a run (one `costspan.task` run: task type + task id) counts in every group where it has a call,
  with the cost of its calls in that group; for task, customer and feature a run with no call at
  all counts too (at $0), in the group its task span names;
- a run is successful when its task span says `costspan.task.outcome=success`, or has no outcome
  and its status is not ERROR; a run whose task span is not in the files (still running, lost)
  is not successful;
- $/run p50 and p95 are nearest-rank percentiles (an actual run's cost); $/successful run is the
  group's whole cost over its successful runs (what one success costs, failures included);
- by model, a tool's cost is in the group `tool <name>`;
- retry cost is the runs' `costspan.rollup.retry_cost_usd`: a run-level figure, so it is given for
  task, customer and feature and is None for agent, step and model;
- `--since` / `--until` select runs by their task span's start (calls outside a run by their own).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from costspan.analysis.spans import MONEY

__all__ = ["DIMENSIONS", "NO_GROUP", "GroupCost", "group_costs", "time_filter"]

# dimension -> (the calls' column, the runs' column or None when runs carry no such value)
DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "task": ("task", "task"),
    "customer": ("customer", "customer"),
    "feature": ("feature", "feature"),
    "agent": ("agent", None),
    "step": ("step", None),
    "model": ("model", None),
}
NO_GROUP = "(none)"


@dataclass(frozen=True)
class GroupCost:
    group: str
    runs: int
    successful_runs: int
    cost_usd: Decimal
    cost_per_run_p50: Decimal | None
    cost_per_run_p95: Decimal | None
    cost_per_successful_run: Decimal | None
    retry_cost_usd: Decimal | None
    llm_calls: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


def time_filter(since: datetime | None, until: datetime | None, column: str) -> str:
    clauses = []
    if since is not None:
        clauses.append(f"{column} >= {_ns(since)}")
    if until is not None:
        clauses.append(f"{column} < {_ns(until)}")
    return " AND ".join(clauses) or "TRUE"


def group_costs(
    con: Any,
    by: str = "task",
    since: datetime | None = None,
    until: datetime | None = None,
    calls_table: str = "calls",
) -> list[GroupCost]:
    """One GroupCost per group, dearest first."""
    call_column, run_column = DIMENSIONS[by]
    when = time_filter(since, until, "coalesce(r.start_ns, c.start_ns)")
    run_when = time_filter(since, until, "start_ns")
    zero_runs = (
        f"UNION ALL SELECT {run_column} AS grp, task, task_id, CAST(0 AS {MONEY}) FROM runs WHERE {run_when}"
        if run_column
        else ""
    )
    retry = "sum(coalesce(r.retry_cost, 0))" if run_column else "NULL"
    rows = con.execute(f"""
        WITH c AS (
            SELECT c.{call_column} AS grp, c.task, c.task_id, c.cost, c.is_tool, c.unpriced,
                   c.input_tokens, c.output_tokens
            FROM {calls_table} c LEFT JOIN runs r ON r.task = c.task AND r.task_id = c.task_id
            WHERE {when}
        ), per_run AS (
            SELECT grp, task, task_id, sum(cost) AS cost FROM (
                SELECT grp, task, task_id, coalesce(cost, 0) AS cost FROM c WHERE task_id IS NOT NULL
                {zero_runs}
            ) GROUP BY ALL
        ), run_stats AS (
            SELECT p.grp, count(*) AS runs,
                   count(*) FILTER (WHERE coalesce(r.success, false)) AS successful_runs,
                   quantile_disc(p.cost, 0.5) AS p50, quantile_disc(p.cost, 0.95) AS p95,
                   {retry} AS retry_cost
            FROM per_run p LEFT JOIN runs r ON r.task = p.task AND r.task_id = p.task_id
            GROUP BY p.grp
        ), call_stats AS (
            SELECT grp, coalesce(sum(cost), 0) AS cost,
                   count(*) FILTER (WHERE NOT is_tool) AS llm_calls,
                   count(*) FILTER (WHERE unpriced) AS unpriced_calls,
                   coalesce(sum(input_tokens) FILTER (WHERE NOT is_tool), 0) AS input_tokens,
                   coalesce(sum(output_tokens) FILTER (WHERE NOT is_tool), 0) AS output_tokens
            FROM c GROUP BY grp
        )
        SELECT coalesce(s.grp, r.grp) AS grp, coalesce(r.runs, 0), coalesce(r.successful_runs, 0),
               coalesce(s.cost, 0), r.p50, r.p95,
               {"coalesce(r.retry_cost, 0)" if run_column else "NULL"},
               coalesce(s.llm_calls, 0), coalesce(s.unpriced_calls, 0),
               coalesce(s.input_tokens, 0), coalesce(s.output_tokens, 0)
        FROM call_stats s FULL OUTER JOIN run_stats r ON s.grp IS NOT DISTINCT FROM r.grp
        ORDER BY coalesce(s.grp, r.grp) IS NULL, 4 DESC, coalesce(s.grp, r.grp)
    """).fetchall()
    result = []
    for grp, runs, ok, cost, p50, p95, retry_cost, calls, unpriced, tokens_in, tokens_out in rows:
        cost = _money(cost)
        result.append(
            GroupCost(
                group=NO_GROUP if grp is None else str(grp),
                runs=int(runs),
                successful_runs=int(ok),
                cost_usd=cost,
                cost_per_run_p50=None if p50 is None else _money(p50),
                cost_per_run_p95=None if p95 is None else _money(p95),
                cost_per_successful_run=_divide(cost, ok) if ok else None,
                retry_cost_usd=None if retry_cost is None else _money(retry_cost),
                llm_calls=int(calls),
                unpriced_calls=int(unpriced),
                input_tokens=int(tokens_in),
                output_tokens=int(tokens_out),
            )
        )
    return result


def _money(value: Decimal | int) -> Decimal:
    """Exact, without trailing zeros (0.120720000... -> 0.12072); a quotient to 1e-24 USD."""
    with localcontext() as context:
        context.prec = 80
        quantized = Decimal(value).quantize(Decimal("1e-24"))
    normal = quantized.normalize()
    return normal if normal != 0 else Decimal(0)


def _divide(total: Decimal, count: int) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return _money(total / count)
