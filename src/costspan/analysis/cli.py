"""`costspan report`: cost per task type, customer, feature, agent, step or model from span files.

costspan report PATH... [--by task|customer|feature|agent|step|model] [--since T] [--until T]
                        [--format table|json|csv|html] [-o FILE] [--reprice [FILE]]
costspan report PATH... --trace TRACE_ID
costspan report PATH... --save-baseline FILE
costspan report PATH... --baseline FILE [--max-increase 10%]     (exit 1 past the threshold)
costspan report --clickhouse URL [--clickhouse-table NAME] [--by ...] [--since T] [--until T]
                [--format table|json|csv] [--save-baseline FILE | --baseline FILE]
    (the OpenTelemetry Collector clickhouse exporter's table, over ClickHouse's HTTP interface;
    URL: http[s]://[USER[:PASSWORD]@]HOST:8123/[?database=DB], see costspan.analysis.clickhouse)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from costspan.analysis import baseline as gate
from costspan.analysis.formats import to_csv, to_json, to_table
from costspan.analysis.report import DIMENSIONS, group_costs
from costspan.analysis.spans import SpanFileError, connect, expand_paths, load_spans

__all__ = ["main", "parse_time"]

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (`2026-11-01`, `2026-11-01T12:00`, with or without offset; none means UTC) or a
    duration before now (`24h`, `7d`)."""
    raw = text.strip()
    relative = _RELATIVE.match(raw)
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (2026-11-01, 2026-11-01T12:00Z, 24h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costspan report",
        description="Cost per task type, customer, feature, agent, step or model, from span files "
        "(OTLP JSON lines written by the costspan_file exporter or a Collector's file exporter).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="span files, directories or globs")
    parser.add_argument("--by", choices=list(DIMENSIONS), default="task", help="group by (default: task)")
    parser.add_argument("--since", type=parse_time, help="runs that started at or after T")
    parser.add_argument("--until", type=parse_time, help="runs that started before T")
    parser.add_argument("--format", choices=["table", "json", "csv", "html"], default="table")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--trace", metavar="TRACE_ID", help="print this trace's cost tree")
    parser.add_argument(
        "--reprice",
        nargs="?",
        const="",
        metavar="FILE",
        help="recompute every call's cost from its tokens with the bundled card (plus FILE's overrides)",
    )
    parser.add_argument("--save-baseline", metavar="FILE", help="save cost per successful run per task type")
    parser.add_argument(
        "--baseline", metavar="FILE", help="compare with a saved baseline (exit 1 past the threshold)"
    )
    parser.add_argument(
        "--max-increase", default="10%", help="allowed rise in cost per successful run (default 10%%)"
    )
    parser.add_argument(
        "--clickhouse",
        metavar="URL",
        help="instead of span files, query the table the Collector's clickhouse exporter writes, "
        "over ClickHouse's HTTP interface: http[s]://[USER[:PASSWORD]@]HOST:8123/[?database=DB]",
    )
    parser.add_argument(
        "--clickhouse-table",
        default="otel_traces",
        metavar="NAME",
        help="the exporter's traces_table_name, in the URL's database (default otel_traces)",
    )
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB's memory limit (default 2GB)")
    return parser


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.clickhouse:
        return _from_clickhouse(parser, args)
    if not args.paths:
        parser.error("name at least one span file (or --clickhouse URL)")
    try:
        paths = expand_paths(args.paths)
        con = connect(args.memory_limit)
        if args.trace:
            from costspan.analysis.trace_tree import trace_tree

            tree = trace_tree(con, paths, args.trace)
            if tree is None:
                where = ", ".join(args.paths)
                print(f"costspan report: trace {args.trace} is not in {where}", file=sys.stderr)
                return 1
            _emit(tree + "\n", args.output)
            return 0
        load_spans(con, paths)
    except SpanFileError as exc:
        print(f"costspan report: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # DuckDB's errors name the file and line
        if type(exc).__module__.startswith("duckdb") or type(exc).__module__.startswith("_duckdb"):
            print(f"costspan report: cannot read {', '.join(args.paths)}: {exc}", file=sys.stderr)
            return 2
        raise
    notes: list[str] = []
    calls_table = "calls"
    if args.reprice is not None:
        from costspan.analysis.reprice import reprice

        try:
            outcome = reprice(con, args.reprice or None)
        except ValueError as exc:
            print(f"costspan report: --reprice: {exc}", file=sys.stderr)
            return 2
        calls_table = outcome.table
        notes += outcome.notes()
    if args.baseline or args.save_baseline:
        rows = group_costs(con, "task", args.since, args.until, calls_table=calls_table)
        return _gate(args, rows)
    rows = group_costs(con, args.by, args.since, args.until, calls_table=calls_table)
    if args.format == "html":
        from costspan.analysis.html import chart_data

        args.charts = chart_data(con, calls_table, args.since, args.until)
    return _finish(args, rows, notes)


def _from_clickhouse(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from costspan.analysis.clickhouse import ClickHouseError, clickhouse_group_costs

    if args.paths:
        parser.error("name span files or --clickhouse URL, not both")
    for flag, given in (("--format html", args.format == "html"), ("--trace", args.trace)):
        if given:
            parser.error(f"{flag} reads span files (not --clickhouse)")
    if args.reprice is not None:
        parser.error("--reprice reads span files (not --clickhouse)")
    gating = bool(args.baseline or args.save_baseline)
    try:
        rows = clickhouse_group_costs(
            args.clickhouse,
            "task" if gating else args.by,
            args.since,
            args.until,
            table=args.clickhouse_table,
        )
    except ClickHouseError as exc:
        print(f"costspan report: {exc}", file=sys.stderr)
        return 2
    return _gate(args, rows) if gating else _finish(args, rows, notes=[])


def _gate(args: argparse.Namespace, rows: list) -> int:
    """--save-baseline / --baseline on cost per task type."""
    if args.save_baseline:
        gate.save_baseline(args.save_baseline, rows)
        saved_to = args.save_baseline
        print(f"costspan report: baseline of {len(rows)} task types saved to {saved_to}", file=sys.stderr)
    if args.baseline:
        try:
            saved = gate.load_baseline(args.baseline)
            limit = gate.parse_increase(args.max_increase)
        except gate.BaselineError as exc:
            print(f"costspan report: {exc}", file=sys.stderr)
            return 2
        result = gate.check(saved, rows, limit)
        _emit(result.table(), args.output)
        return 1 if result.failed else 0
    return 0


def _finish(args: argparse.Namespace, rows: list, notes: list[str]) -> int:
    if args.format == "json":
        text = to_json(rows)
    elif args.format == "csv":
        text = to_csv(rows)
    elif args.format == "html":
        from costspan.analysis.html import to_html

        text = to_html(rows, args.by, args.charts)
    else:
        text = to_table(rows, args.by) + "".join(note + "\n" for note in notes)
    for note in notes if args.format != "table" else ():
        print(note, file=sys.stderr)
    _emit(text, args.output)
    return 0
