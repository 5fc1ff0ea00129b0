"""`costspan report` over spans from real SDK calls: exact dollars, counts and tokens per group."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D

from conftest import Scenario, costspan_report, report_json

KEYS = [
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
]


def test_by_task_exact(scenario: Scenario) -> None:
    rows = json.loads(costspan_report(str(scenario.path), "--format", "json").stdout, parse_float=D)
    assert [list(row) for row in rows] == [KEYS] * 3
    by = {row["group"]: row for row in rows}
    assert by["summarize"] == {
        "group": "summarize",
        "runs": 3,
        "successful_runs": 2,  # the run that raised is not a success
        "cost_usd": D("0.00672"),  # 2 x gpt-4o-mini $0.00036 + gpt-4o $0.006
        "cost_per_run_p50": D("0.00036"),
        "cost_per_run_p95": D("0.006"),
        "cost_per_successful_run": D("0.00336"),
        "retry_cost_usd": 0,
        "llm_calls": 3,
        "unpriced_calls": 0,
        "input_tokens": 3600,
        "output_tokens": 900,
    }
    research = by["research"]
    # gpt-4o $0.006 + claude-haiku-4-5 $0.0035 + the enrich tool $0.10 (not an LLM call)
    assert research["cost_usd"] == D("0.1095")
    assert research["retry_cost_usd"] == D("0.006")
    assert (research["runs"], research["successful_runs"], research["llm_calls"]) == (1, 1, 2)
    assert (research["input_tokens"], research["output_tokens"]) == (2700, 700)
    classify = by["classify"]
    # the unknown model is unpriced; the duplicate span's $5 and 999 tokens are never counted
    assert classify["cost_usd"] == 0
    assert (classify["llm_calls"], classify["unpriced_calls"]) == (1, 1)
    assert (classify["input_tokens"], classify["output_tokens"]) == (1200, 300)
    # outcome=refused wins over a status that is not ERROR
    assert (classify["runs"], classify["successful_runs"]) == (1, 0)
    assert classify["cost_per_successful_run"] is None


def test_by_customer_feature_model_agent(scenario: Scenario) -> None:
    customers = report_json(str(scenario.path), "--by", "customer")
    assert customers["cus_a"]["cost_usd"] == D("0.11022")
    assert (customers["cus_a"]["runs"], customers["cus_a"]["successful_runs"]) == (3, 3)
    assert customers["cus_a"]["cost_per_successful_run"] == D("0.03674")
    assert customers["cus_b"]["cost_usd"] == D("0.006")
    assert (customers["cus_b"]["runs"], customers["cus_b"]["successful_runs"]) == (2, 0)
    features = report_json(str(scenario.path), "--by", "feature")
    assert {k: v["cost_usd"] for k, v in features.items()} == {"lead-gen": D("0.1095"), "notes": D("0.00672")}
    models = report_json(str(scenario.path), "--by", "model")
    assert {k: (v["cost_usd"], v["llm_calls"]) for k, v in models.items()} == {
        "tool enrich": (D("0.1"), 0),
        "gpt-4o-2024-08-06": (D("0.012"), 2),
        "claude-haiku-4-5-20251001": (D("0.0035"), 1),
        "gpt-4o-mini-2024-07-18": (D("0.00072"), 2),
        "mystery-model-1": (0, 1),
    }
    assert models["gpt-4o-2024-08-06"]["retry_cost_usd"] is None  # a run-level figure
    agents = report_json(str(scenario.path), "--by", "agent")
    assert agents["planner"]["cost_usd"] == D("0.006") and agents["writer"]["cost_usd"] == D("0.0035")
    # every group adds up to the same total: no call counted twice, none lost
    for grouping in (customers, features, models, agents):
        assert sum(row["cost_usd"] for row in grouping.values()) == D("0.11622")


def test_table_and_csv(scenario: Scenario) -> None:
    table = costspan_report(str(scenario.path)).stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["task", "runs", "ok", "cost"]
    assert lines[1].split()[:6] == ["research", "1", "1", "$0.109500", "$0.109500", "$0.109500"]
    assert lines[-1] == "total $0.116220 in 6 LLM calls"
    rows = list(csv.DictReader(io.StringIO(costspan_report(str(scenario.path), "--format", "csv").stdout)))
    assert list(rows[0]) == KEYS
    assert {row["group"]: row["cost_usd"] for row in rows} == {
        "research": "0.1095",
        "summarize": "0.00672",
        "classify": "0",
    }


def test_output_file_and_time_window(scenario: Scenario, tmp_path) -> None:
    out = tmp_path / "r.json"
    costspan_report(str(scenario.path), "--format", "json", "-o", str(out))
    assert {row["group"] for row in json.loads(out.read_text())} == {"research", "summarize", "classify"}
    later = costspan_report(str(scenario.path), "--since", "2999-01-01", "--format", "json")
    assert json.loads(later.stdout) == []
    everything = report_json(str(scenario.path), "--until", "2999-01-01", "--since", "2000-01-01T00:00Z")
    assert everything["research"]["cost_usd"] == D("0.1095")


def test_trace_tree(scenario: Scenario) -> None:
    tree = costspan_report(str(scenario.path), "--trace", scenario.traces["research"]).stdout.splitlines()
    root = "research  $0.1095 total  2 calls  1 tool call  customer=cus_a feature=lead-gen"
    assert tree[0].startswith(root)
    assert tree[1:] == [
        "├─ invoke_agent planner  $0.0060",
        "│  └─ chat gpt-4o  $0.0060  1,200 in / 300 out",
        "├─ invoke_agent writer  $0.0035",
        "│  └─ chat claude-haiku-4-5  $0.0035  1,500 in / 400 out",
        "└─ execute_tool enrich  $0.1000",
    ]
    missing = costspan_report(str(scenario.path), "--trace", "0" * 32, check=False)
    assert missing.returncode == 1 and "not in" in missing.stderr


def test_bad_input_is_a_short_error(tmp_path) -> None:
    done = costspan_report(str(tmp_path / "nope.jsonl"), check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"costspan report: {tmp_path / 'nope.jsonl'}: no such file"
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("this is not json\n")
    done = costspan_report(str(garbage), check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"costspan report: cannot read {garbage}")


# A line as the OpenTelemetry Collector's file exporter writes it (pdata's OTLP JSON marshaler):
# hex ids, int64 as strings, enums as numbers; a span priced by the CostSpanProcessor in another
# process (OpenInference token names), and its task span.
COLLECTOR_LINE = (
    '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},'
    '"scopeSpans":[{"scope":{"name":"openinference.instrumentation.openai","version":"0.1.66"},"spans":['
    '{"traceId":"5b8aa5a2d2c872e8321cf37308d69df2","spanId":"051581bf3cb55c13","parentSpanId":"0c1a2b3c4d5e6f70",'
    '"name":"ChatCompletion","kind":1,"startTimeUnixNano":"1764000000000000000","endTimeUnixNano":"1764000001000000000",'
    '"attributes":[{"key":"llm.model_name","value":{"stringValue":"gpt-4o-mini"}},'
    '{"key":"llm.token_count.prompt","value":{"intValue":"1200"}},'
    '{"key":"llm.token_count.completion","value":{"intValue":"300"}},'
    '{"key":"gen_ai.usage.cost","value":{"doubleValue":0.00036}},'
    '{"key":"costspan.cost.status","value":{"stringValue":"priced"}},'
    '{"key":"costspan.task","value":{"stringValue":"triage"}},'
    '{"key":"costspan.task_id","value":{"stringValue":"t1"}},'
    '{"key":"costspan.customer_id","value":{"stringValue":"cus_z"}}],"status":{}}]},'
    '{"scope":{"name":"costspan"},"spans":[{"traceId":"5b8aa5a2d2c872e8321cf37308d69df2","spanId":"0c1a2b3c4d5e6f70",'
    '"name":"triage","kind":1,"startTimeUnixNano":"1764000000000000000","endTimeUnixNano":"1764000002000000000",'
    '"attributes":[{"key":"costspan.task","value":{"stringValue":"triage"}},'
    '{"key":"costspan.task_id","value":{"stringValue":"t1"}},'
    '{"key":"costspan.customer_id","value":{"stringValue":"cus_z"}},'
    '{"key":"costspan.rollup.cost_usd","value":{"doubleValue":0.00036}},'
    '{"key":"costspan.rollup.llm_calls","value":{"intValue":"1"}}],"status":{"code":2,"message":"boom"}}]}]}]}\n'
)


def test_collector_written_file_reports_the_same(tmp_path) -> None:
    path = tmp_path / "collector.json"
    path.write_text(COLLECTOR_LINE)
    triage = report_json(str(path))["triage"]
    assert (triage["cost_usd"], triage["llm_calls"], triage["input_tokens"], triage["output_tokens"]) == (
        D("0.00036"),
        1,
        1200,
        300,
    )
    assert (triage["runs"], triage["successful_runs"]) == (1, 0)  # status ERROR, no outcome attribute
    assert report_json(str(path), "--by", "model")["gpt-4o-mini"]["cost_usd"] == D("0.00036")


def test_several_files_and_directories(scenario: Scenario, tmp_path) -> None:
    (tmp_path / "a.jsonl").write_bytes(scenario.path.read_bytes())
    (tmp_path / "b.json").write_text(COLLECTOR_LINE)
    rows = report_json(str(tmp_path))
    assert rows["research"]["cost_usd"] == D("0.1095") and rows["triage"]["cost_usd"] == D("0.00036")
    assert report_json(str(tmp_path / "*.jsonl")).keys() == {"research", "summarize", "classify"}
