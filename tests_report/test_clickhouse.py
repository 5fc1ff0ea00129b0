"""The report's ClickHouse SQL on a real ClickHouse engine (chDB, ClickHouse in process) over the
exact table the Collector's `clickhouse` exporter creates: the same numbers as the DuckDB report.

The spans come from real SDK calls (tests_report/scenario.py, exported by costspan_file) and from a
hand-written file of edge cases; they are turned into the rows the exporter would insert (attribute
values as strings, tests_report/clickhouse_table.py). What is not run here: the Collector itself
(no otelcol-contrib binary), so the rows are built by that conversion, not by the exporter.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import chdb
import pytest
from clickhouse_table import ChdbServer, exporter_rows, go_float

from conftest import ROOT, Scenario
from costspan.analysis.clickhouse import (
    parse_json_rows,
    report_params,
    report_sql,
    rows_to_group_costs,
)
from costspan.analysis.report import DIMENSIONS, GroupCost, group_costs
from costspan.analysis.spans import connect, load_spans


@pytest.fixture(scope="module")
def engine(chdb_engine: ChdbServer, edge_spans: Path) -> ChdbServer:
    chdb_engine.load("edge", edge_spans)
    return chdb_engine


def clickhouse_report(
    engine: ChdbServer, database: str, by: str, since: datetime | None = None, until: datetime | None = None
) -> list[GroupCost]:
    """The shipped SQL, run in ClickHouse with the parameters `costspan report --clickhouse` sends."""
    text = engine.query(database, report_sql(), params=report_params(by, since, until))
    return rows_to_group_costs(parse_json_rows(text))


def duckdb_report(
    path: Path, by: str, since: datetime | None = None, until: datetime | None = None
) -> list[GroupCost]:
    con = connect("1GB", threads=1)
    load_spans(con, [str(path)])
    return group_costs(con, by, since, until)


def test_the_table_is_the_exporters_with_string_attributes(engine: ChdbServer) -> None:
    columns = engine.query(
        "otel",
        "SELECT name, type FROM system.columns WHERE table = 'otel_traces' "
        "AND database = 'otel' ORDER BY position",
    )
    types = {row["name"]: row["type"] for row in parse_json_rows(columns)}
    assert types["SpanAttributes"] == "Map(LowCardinality(String), String)"
    assert types["Timestamp"] == "DateTime64(9)"
    cost = engine.query(
        "otel",
        "SELECT SpanAttributes['gen_ai.usage.cost'] AS cost, "
        "SpanAttributes['gen_ai.usage.input_tokens'] AS tokens, SpanKind, StatusCode FROM otel_traces "
        "WHERE SpanAttributes['gen_ai.response.model'] = 'gpt-4o-mini-2024-07-18'",
    )
    assert {(r["cost"], r["tokens"], r["SpanKind"], r["StatusCode"]) for r in parse_json_rows(cost)} == {
        ("0.00036", "1200", "Client", "Unset")
    }
    failed = engine.query("otel", "SELECT count() AS n FROM otel_traces WHERE StatusCode = 'Error'")
    assert parse_json_rows(failed) == [{"n": 1}]  # the summarize run that raised


@pytest.mark.parametrize("by", list(DIMENSIONS))
def test_same_report_as_duckdb_on_real_sdk_spans(engine: ChdbServer, scenario: Scenario, by: str) -> None:
    clickhouse = clickhouse_report(engine, "otel", by)
    assert clickhouse == duckdb_report(scenario.path, by)
    assert clickhouse  # not two empty reports


def test_exact_dollars_and_tokens(engine: ChdbServer) -> None:
    by_task = {row.group: row for row in clickhouse_report(engine, "otel", "task")}
    assert list(by_task) == ["research", "summarize", "classify"]
    summarize = by_task["summarize"]
    assert (summarize.cost_usd, summarize.cost_per_run_p50, summarize.cost_per_run_p95) == (
        D("0.00672"),
        D("0.00036"),
        D("0.006"),
    )
    assert (summarize.runs, summarize.successful_runs, summarize.cost_per_successful_run) == (
        3,
        2,
        D("0.00336"),
    )
    assert (summarize.llm_calls, summarize.input_tokens, summarize.output_tokens) == (3, 3600, 900)
    research = by_task["research"]
    assert (research.cost_usd, research.retry_cost_usd, research.llm_calls) == (D("0.1095"), D("0.006"), 2)
    assert (research.input_tokens, research.output_tokens) == (2700, 700)
    classify = by_task["classify"]  # the duplicate span's $5 and 999 tokens are never counted
    assert (classify.cost_usd, classify.llm_calls, classify.unpriced_calls) == (D(0), 1, 1)
    assert (classify.input_tokens, classify.output_tokens) == (1200, 300)
    models = {row.group: (row.cost_usd, row.llm_calls) for row in clickhouse_report(engine, "otel", "model")}
    assert models == {
        "tool enrich": (D("0.1"), 0),
        "gpt-4o-2024-08-06": (D("0.012"), 2),
        "claude-haiku-4-5-20251001": (D("0.0035"), 1),
        "gpt-4o-mini-2024-07-18": (D("0.00072"), 2),
        "mystery-model-1": (D(0), 1),
    }
    customers = {row.group: row.cost_usd for row in clickhouse_report(engine, "otel", "customer")}
    assert customers == {"cus_a": D("0.11022"), "cus_b": D("0.006")}


def _task_starts(path: Path) -> list[int]:
    starts = []
    for row in exporter_rows(path):
        attributes = row["SpanAttributes"]
        if attributes.get("costspan.task") == row["SpanName"] and "costspan.cost.status" not in attributes:
            seconds, nanos = row["Timestamp"].split(".")
            starts.append(int(seconds) * 10**9 + int(nanos))
    return sorted(starts)


def test_since_and_until_select_the_same_runs(engine: ChdbServer, scenario: Scenario) -> None:
    starts = _task_starts(scenario.path)
    assert len(starts) == 5
    # a cut just after the third run's start (microseconds, as --since/--until are read)
    cut = datetime.fromtimestamp((starts[2] // 1000 + 1) / 1e6, tz=UTC)
    for since, until in ((cut, None), (None, cut)):
        for by in ("task", "customer", "model"):
            clickhouse = clickhouse_report(engine, "otel", by, since, until)
            assert clickhouse == duckdb_report(scenario.path, by, since, until)
    later = clickhouse_report(engine, "otel", "task", since=cut)
    assert sum(row.runs for row in later) == 2  # research and classify
    assert clickhouse_report(engine, "otel", "task", since=datetime(2100, 1, 1, tzinfo=UTC)) == []


# Edge cases the scenario does not reach, as OTLP JSON lines (what costspan_file writes).
BASE_S = 1_796_000_000
_IDS = itertools.count(1)


def _value(value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _span(name: str, at: float, attributes: dict[str, object], error: bool = False) -> dict[str, Any]:
    n = next(_IDS)
    start = int(BASE_S * 10**9 + at * 10**9)
    return {
        "traceId": f"{n:032x}",
        "spanId": f"{n:016x}",
        "name": name,
        "kind": 3 if "costspan.cost.status" in attributes else 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items()],
        "status": {"code": 2} if error else {},
    }


def _run(task: str, task_id: str, **extra: object) -> dict[str, object]:
    return {"costspan.task": task, "costspan.task_id": task_id, **extra}


def _edge_spans() -> list[dict[str, Any]]:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    return [
        # etl r1: failed run (ERROR, no outcome), customer c1
        _span(
            "etl",
            0,
            _run("etl", "r1", **{"costspan.customer_id": "c1", "costspan.feature": "f1"}),
            error=True,
        ),
        _span(
            "chat",
            1,
            {
                **_run("etl", "r1", **{"costspan.customer_id": "c1", "costspan.feature": "f1"}),
                **chat,
                "llm.model_name": "m-legacy",
                "gen_ai.usage.prompt_tokens": 1000,
                "gen_ai.usage.completion_tokens": 10,
                "gen_ai.usage.cost": 0.0012345,
                "costspan.cost.status": "priced",
                "costspan.agent": "a1",
                "costspan.step": "s1",
            },
        ),
        # no usage on a failed call: not unpriced; on a call that did not fail: unpriced
        _span(
            "chat",
            2,
            {**_run("etl", "r1"), **chat, "gen_ai.request.model": "m1", "costspan.cost.status": "no_usage"},
            error=True,
        ),
        _span(
            "chat",
            3,
            {**_run("etl", "r1"), **chat, "gen_ai.request.model": "m1", "costspan.cost.status": "no_usage"},
        ),
        # invalid usage: its cost and tokens are not read, and it is unpriced
        _span(
            "chat",
            4,
            {
                **_run("etl", "r1"),
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": -5,
                "gen_ai.usage.cost": 9.0,
                "costspan.cost.status": "invalid_usage",
            },
        ),
        # a tool with no gen_ai.tool.name (grouped by its span name), cost as an int
        _span(
            "lookup",
            5,
            {**_run("etl", "r1"), "gen_ai.operation.name": "execute_tool", "gen_ai.usage.cost": 2},
        ),
        # a duplicate: never counted
        _span(
            "chat",
            6,
            {
                **_run("etl", "r1"),
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.cost": 5.0,
                "gen_ai.usage.input_tokens": 999,
                "costspan.cost.status": "duplicate",
            },
        ),
        # etl r2: a run with no call at all (counts at $0 by task, customer, feature), retry cost as int
        _span(
            "etl",
            10,
            _run(
                "etl",
                "r2",
                **{
                    "costspan.customer_id": "c2",
                    "costspan.task.outcome": "success",
                    "costspan.rollup.retry_cost_usd": 1,
                },
            ),
        ),
        # chat r3: outcome error; a tiny cost written in exponent form; OpenInference token keys
        _span(
            "chat-task",
            20,
            _run(
                "chat-task",
                "r3",
                **{"costspan.task.outcome": "error", "costspan.rollup.retry_cost_usd": 0.25},
            ),
        ),
        _span(
            "chat",
            21,
            {
                **_run("chat-task", "r3"),
                **chat,
                "gen_ai.response.model": "m2",
                "llm.token_count.prompt": 7,
                "llm.token_count.completion": 3,
                "gen_ai.usage.cost": 5e-07,
                "costspan.cost.status": "priced",
                "costspan.agent": "a2",
            },
        ),
        _span(
            "chat",
            22,
            {
                **_run("chat-task", "r3"),
                **chat,
                "gen_ai.response.model": "m2",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 4,
                "gen_ai.usage.cost": "0.25",
                "costspan.cost.status": "priced",
                "costspan.customer_id": "",
            },
        ),
        # a call outside any run, and one in a run whose task span is not in the file
        _span(
            "chat",
            30,
            {
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.usage.cost": 0.5,
                "costspan.cost.status": "priced",
            },
        ),
        _span(
            "chat",
            31,
            {
                **_run("etl", "lost"),
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": 1,
                "gen_ai.usage.output_tokens": 1,
                "gen_ai.usage.cost": 0.125,
                "costspan.cost.status": "priced",
            },
        ),
        # a run that started two days before the calls in it: with --since between the two, its calls
        # are not counted (a run is selected by its start)
        _span("long", -200_000, _run("long", "l1", **{"costspan.task.outcome": "success"})),
        _span(
            "chat",
            60,
            {
                **_run("long", "l1"),
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": 5,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.usage.cost": 0.75,
                "costspan.cost.status": "priced",
            },
        ),
        # etl r4: two task spans with one task id (the first decides), several runs for percentiles
        _span(
            "etl", 40, _run("etl", "r4", **{"costspan.customer_id": "c1", "costspan.task.outcome": "success"})
        ),
        _span(
            "etl", 41, _run("etl", "r4", **{"costspan.customer_id": "c9", "costspan.task.outcome": "error"})
        ),
        _span(
            "chat",
            42,
            {
                **_run("etl", "r4", **{"costspan.customer_id": "c1"}),
                **chat,
                "gen_ai.request.model": "m1",
                "gen_ai.usage.input_tokens": 3,
                "gen_ai.usage.output_tokens": 2,
                "gen_ai.usage.cost": 0.000123456789012345,
                "costspan.cost.status": "priced",
            },
        ),
        *(_span("etl", 50 + i, _run("etl", f"p{i}", **{"costspan.customer_id": "c3"})) for i in range(7)),
        *(
            _span(
                "chat",
                50.5 + i,
                {
                    **_run("etl", f"p{i}", **{"costspan.customer_id": "c3"}),
                    **chat,
                    "gen_ai.request.model": "m3",
                    "gen_ai.usage.input_tokens": i,
                    "gen_ai.usage.output_tokens": i,
                    "gen_ai.usage.cost": 0.01 * (i + 1),
                    "costspan.cost.status": "priced",
                },
            )
            for i in range(7)
        ),
    ]


@pytest.fixture(scope="module")
def edge_spans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "spans.jsonl"
    spans = _edge_spans()
    lines = []
    for chunk in (spans[:9], spans[9:]):  # two export requests, two resources
        request = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "edge"}}]},
                    "scopeSpans": [{"scope": {"name": "edge", "version": "1"}, "spans": chunk}],
                }
            ]
        }
        lines.append(json.dumps(request))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("by", list(DIMENSIONS))
def test_same_report_as_duckdb_on_edge_cases(engine: ChdbServer, edge_spans: Path, by: str) -> None:
    clickhouse = clickhouse_report(engine, "edge", by)
    assert clickhouse == duckdb_report(edge_spans, by)
    for since, until in ((BASE_S + 20, None), (None, BASE_S + 40.5), (BASE_S + 9, BASE_S + 45)):
        window = {
            "since": None if since is None else datetime.fromtimestamp(since, tz=UTC),
            "until": None if until is None else datetime.fromtimestamp(until, tz=UTC),
        }
        assert clickhouse_report(engine, "edge", by, **window) == duckdb_report(edge_spans, by, **window)


def test_edge_cases_exact(engine: ChdbServer) -> None:
    tasks = {row.group: row for row in clickhouse_report(engine, "edge", "task")}
    etl = tasks["etl"]
    # r1 $0.0012345 + tool $2 + lost run $0.125 + r4 $0.000123456789012345 + p0..p6 $0.01..$0.07
    assert etl.cost_usd == D("2.406357956789012345")
    # runs: r1, r2, r4, lost, p0..p6; successful: r2, r4 (its first task span says success) and
    # p0..p6 (no outcome, status not ERROR); not r1 (ERROR) nor the lost run (no task span)
    assert (etl.runs, etl.successful_runs) == (11, 9)
    assert etl.retry_cost_usd == D(1)
    # r1: 4 (legacy keys, 2 no-usage, invalid); r4, the lost run, p0..p6: 13 LLM calls; unpriced:
    # the no-usage call that did not fail and the invalid one
    assert (etl.llm_calls, etl.unpriced_calls) == (13, 2)
    assert (etl.input_tokens, etl.output_tokens) == (1000 + 1 + 3 + 21, 10 + 1 + 2 + 21)
    chat_task = tasks["chat-task"]
    assert (chat_task.cost_usd, chat_task.input_tokens, chat_task.output_tokens) == (D("0.2500005"), 18, 7)
    assert tasks["(none)"].cost_usd == D("0.5")  # the call outside any run
    customers = {row.group for row in clickhouse_report(engine, "edge", "customer")}
    assert {"", "c1", "c2", "c3", "(none)"} <= customers  # an empty customer id is a group of its own


def test_go_float_is_the_exporters_number_text() -> None:
    # pcommon.Value.AsString() of a double (ES6 number to string, as Go's encoding/json)
    cases = {
        0.00036: "0.00036",
        1200.0: "1200",
        5e-07: "5e-7",
        1.5e-07: "1.5e-7",
        1e21: "1e+21",
        0.1095: "0.1095",
    }
    assert {value: go_float(value) for value in cases} == cases
    assert go_float(123456789.125) == "123456789.125"


def test_sql_beside_the_collector_config_is_the_packaged_one() -> None:
    shipped = (ROOT / "collector-config" / "clickhouse" / "report.sql").read_text(encoding="utf-8")
    assert shipped == report_sql()


def test_chdb_is_the_clickhouse_engine(engine: ChdbServer) -> None:
    (row,) = parse_json_rows(engine.query("otel", "SELECT version() AS v"))
    assert int(row["v"].split(".")[0]) >= 24, (chdb.__version__, row["v"])
