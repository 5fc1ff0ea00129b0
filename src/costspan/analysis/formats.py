"""A report as a table for a terminal, CSV or JSON (HTML: costspan.analysis.html)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal

from costspan.analysis.report import GroupCost

__all__ = ["JSON_KEYS", "to_csv", "to_json", "to_table", "usd"]

JSON_KEYS = (
    "group",
    "runs",
    "successful_runs",
    "cost_usd",
    "cost_per_run_p50",
    "cost_per_run_p95",
    "cost_per_successful_run",
    "retry_cost_usd",
    "llm_calls",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
)


def usd(value: Decimal | None, places: int = 6) -> str:
    if value is None:
        return "-"
    return f"${value:,.{places}f}"


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def to_json(rows: Sequence[GroupCost]) -> str:
    """A list of objects with exactly JSON_KEYS; money as JSON numbers written in full (no float)."""
    marks: dict[str, str] = {}

    def encode(value: object) -> object:
        if isinstance(value, Decimal):
            mark = f"\x00{len(marks)}\x00"
            marks[json.dumps(mark)] = format(value, "f")
            return mark
        return value

    objects = [{key: encode(getattr(row, key)) for key in JSON_KEYS} for row in rows]
    text = json.dumps(objects, indent=2)
    for quoted, number in marks.items():
        text = text.replace(quoted, number, 1)
    return text + "\n"


def to_csv(rows: Sequence[GroupCost]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JSON_KEYS)
    for row in rows:
        writer.writerow([_plain(getattr(row, key)) for key in JSON_KEYS])
    return out.getvalue()


_HEADERS = (
    "runs",
    "ok",
    "cost",
    "$/run p50",
    "$/run p95",
    "$/ok run",
    "retries",
    "calls",
    "unpriced",
    "in tok",
    "out tok",
)


def to_table(rows: Sequence[GroupCost], by: str) -> str:
    body = [
        [
            row.group,
            f"{row.runs:,}",
            f"{row.successful_runs:,}",
            usd(row.cost_usd),
            usd(row.cost_per_run_p50),
            usd(row.cost_per_run_p95),
            usd(row.cost_per_successful_run),
            usd(row.retry_cost_usd),
            f"{row.llm_calls:,}",
            f"{row.unpriced_calls:,}",
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
        ]
        for row in rows
    ]
    total = sum((row.cost_usd for row in rows), Decimal(0))
    header = [by, *_HEADERS]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in [header, *body]
    ]
    lines.append(f"total {usd(total)} in {sum(r.llm_calls for r in rows):,} LLM calls")
    return "\n".join(lines) + "\n"
