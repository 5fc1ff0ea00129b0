"""The CI cost gate: a saved cost per successful run per task type, and a check against it.

The baseline file is JSON: `{"version": 1, "by": "task", "tasks": {"<task>": {"cost_per_successful_run":
"0.12072", "runs": 3, "successful_runs": 3}}}` (money as strings: exact). A task type fails the gate
when its cost per successful run rose by more than the allowed fraction; a task type that had
successful runs in the baseline and has none now fails too (its cost per success is unbounded).
New task types (not in the baseline) are listed, not failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from costspan.analysis.formats import usd
from costspan.analysis.report import GroupCost

__all__ = ["BaselineError", "GateResult", "check", "load_baseline", "parse_increase", "save_baseline"]

VERSION = 1


class BaselineError(ValueError):
    """A baseline file or threshold that cannot be used."""


def parse_increase(text: str) -> Decimal:
    """`10%` -> 0.10; `0.1` -> 0.10."""
    raw = text.strip()
    try:
        value = Decimal(raw[:-1]) / 100 if raw.endswith("%") else Decimal(raw)
    except InvalidOperation:
        raise BaselineError(f"--max-increase {text!r}: not a percentage (e.g. 10%)") from None
    if not value.is_finite() or value < 0:
        raise BaselineError(f"--max-increase {text!r}: must be a percentage >= 0")
    return value


def save_baseline(path: str | Path, rows: Sequence[GroupCost]) -> None:
    tasks = {
        row.group: {
            "cost_per_successful_run": None
            if row.cost_per_successful_run is None
            else format(row.cost_per_successful_run, "f"),
            "runs": row.runs,
            "successful_runs": row.successful_runs,
        }
        for row in sorted(rows, key=lambda r: r.group)
    }
    Path(path).write_text(json.dumps({"version": VERSION, "by": "task", "tasks": tasks}, indent=2) + "\n")


def load_baseline(path: str | Path) -> dict[str, Decimal | None]:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise BaselineError(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not JSON ({exc})") from None
    if (
        not isinstance(document, dict)
        or document.get("version") != VERSION
        or not isinstance(document.get("tasks"), dict)
    ):
        raise BaselineError(f"{path}: not a costspan baseline (version {VERSION} with 'tasks')")
    found: dict[str, Decimal | None] = {}
    for task, entry in document["tasks"].items():
        raw = entry.get("cost_per_successful_run") if isinstance(entry, dict) else "?"
        try:
            found[task] = None if raw is None else Decimal(str(raw))
        except InvalidOperation:
            raise BaselineError(
                f"{path}: tasks.{task}.cost_per_successful_run={raw!r} is not a number"
            ) from None
    return found


@dataclass(frozen=True)
class GateRow:
    task: str
    baseline: Decimal | None
    current: Decimal | None
    change: Decimal | None  # fraction; None when either side has no successful run
    failed: bool


@dataclass(frozen=True)
class GateResult:
    rows: list[GateRow]
    max_increase: Decimal

    @property
    def failed(self) -> list[GateRow]:
        return [row for row in self.rows if row.failed]

    def table(self) -> str:
        def pct(change: Decimal | None) -> str:
            return "-" if change is None else f"{change * 100:+.1f}%"

        header = ["task", "baseline $/ok run", "now $/ok run", "change", ""]
        body = [
            [
                row.task,
                usd(row.baseline),
                usd(row.current),
                pct(row.change),
                _verdict(row),
            ]
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(
                c.ljust(widths[i]) if i in (0, 4) else c.rjust(widths[i]) for i, c in enumerate(line)
            ).rstrip()
            for line in [header, *body]
        ]
        limit = f"{(self.max_increase * 100).normalize():f}%"
        failed = self.failed
        if failed:
            lines.append(
                f"cost gate FAILED: {len(failed)} task type{'s' if len(failed) != 1 else ''} "
                f"rose more than {limit} in cost per successful run"
            )
        else:
            lines.append(f"cost gate passed: no task type rose more than {limit} in cost per successful run")
        return "\n".join(lines) + "\n"


def _verdict(row: GateRow) -> str:
    if row.failed:
        return "FAIL"
    return "new" if row.baseline is None and row.current is not None else "ok"


def check(
    baseline: dict[str, Decimal | None], rows: Sequence[GroupCost], max_increase: Decimal
) -> GateResult:
    current = {row.group: row.cost_per_successful_run for row in rows}
    result = []
    for task in sorted(set(baseline) | set(current)):
        before, now = baseline.get(task), current.get(task)
        change = (now - before) / before if before and now is not None else None
        if before is not None and now is None and task in current:
            failed = True  # it had successful runs and now has none
        elif change is not None:
            failed = change > max_increase
        else:
            failed = before == 0 and now is not None and now > 0
        result.append(GateRow(task, before, now, change, failed))
    return GateResult(result, max_increase)
