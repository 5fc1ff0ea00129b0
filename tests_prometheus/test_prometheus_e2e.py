"""End to end: an app's task runs (real openai SDK calls against the fake OpenAI server, tools,
retries, a failure, a budget refusal) reach a real Prometheus server through the OpenTelemetry
Prometheus exporter, and every query of the Grafana dashboard and of the recording rules gives
the exact dollars the workload spent.

Exact, not extrapolated: the workload runs twice; each query is evaluated at the timestamp T1 of
a scrape after the second pass, over a range that starts exactly at the scrape T0 between the
passes (Prometheus 2.x range selectors include both ends, so `increase()` then extrapolates by
nothing). The expected figures are computed here from the published prices, not read from costspan.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server
from prometheus_server import RULE_FILES, RULES_DIR, free_port

import costspan
from costspan.budget.task_ledger import TASK_LEDGER
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.telemetry.metrics import record_tools_on
from costspan.telemetry.task_metrics import BUCKETS, record_task_runs_on
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

MTOK = Decimal(1_000_000)
INPUT, OUTPUT = 120, 40
# Published prices (USD per million tokens): gpt-4o $2.50 in / $10 out; gpt-4o-mini $0.15 / $0.60.
PRICE = {
    "gpt-4o": (INPUT * Decimal("2.50") + OUTPUT * Decimal("10")) / MTOK,  # $0.0007
    "gpt-4o-mini": (INPUT * Decimal("0.15") + OUTPUT * Decimal("0.60")) / MTOK,  # $0.000042
}
MESSAGES = [{"role": "user", "content": "hello"}]
DASHBOARD = RULES_DIR / "costspan-dashboard.json"


@dataclass
class Run:
    task: str
    customer: str
    outcome: str = "success"
    calls: list[str] = field(default_factory=list)  # models, in order
    tools: list[Decimal] = field(default_factory=list)
    retry: Decimal = Decimal(0)
    outlier: bool = False

    @property
    def cost(self) -> Decimal:
        return sum((PRICE[m] for m in self.calls), Decimal(0)) + sum(self.tools, Decimal(0))


class Workload:
    def __init__(self, client: OpenAI, tracer_provider: TracerProvider) -> None:
        self.client = client
        self.tp = tracer_provider
        self.runs: list[Run] = []

    def chat(self, run: Run, model: str) -> None:
        self.client.chat.completions.create(model=model, messages=MESSAGES)
        run.calls.append(model)

    def once(self) -> list[Run]:
        """One pass; the runs it made, as they should be counted."""
        runs: list[Run] = []
        for number in range(8):  # triage: one gpt-4o-mini call each; 2 rejected answers
            run = Run("triage", "acme" if number % 2 else "globex")
            with costspan.task("triage", customer_id=run.customer, tracer_provider=self.tp):
                self.chat(run, "gpt-4o-mini")
                if number >= 6:
                    costspan.task_failed("rejected")
                    run.outcome = "error"
            runs.append(run)
        for _ in range(3):  # draft: the first attempt's answer is rejected and retried
            run = Run("draft", "acme")
            with costspan.task("draft", customer_id="acme", tracer_provider=self.tp):
                for attempt_number in (1, 2):
                    try:
                        with costspan.attempt():
                            self.chat(run, "gpt-4o")
                            if attempt_number == 1:
                                raise ValueError("rejected")
                        break
                    except ValueError:
                        run.retry += PRICE["gpt-4o"]
            runs.append(run)
        run = Run("draft", "acme")
        with costspan.task("draft", customer_id="acme", tracer_provider=self.tp):
            self.chat(run, "gpt-4o")
        runs.append(run)
        run = Run("draft", "acme", outcome="refused")
        with (
            pytest.raises(costspan.BudgetExceeded),
            costspan.task("draft", customer_id="acme", tracer_provider=self.tp),
            costspan.budget("0.0001", scope="block"),
        ):
            self.chat(run, "gpt-4o")  # spends the block's budget
            self.chat(run, "gpt-4o")  # refused: no request, no cost (not appended to run.calls)
        runs.append(run)
        for number in range(21):  # report: a priced tool; the last run costs 5x the median
            cost = Decimal("0.05") if number == 20 else Decimal("0.01")
            run = Run("report", "initech", tools=[cost], outlier=number == 20)
            with (
                costspan.task("report", customer_id="initech", tracer_provider=self.tp),
                costspan.tool("render", cost_usd=float(cost), tracer_provider=self.tp),
            ):
                pass
            runs.append(run)
        return runs


@dataclass
class App:
    metrics_target: str
    workload: Workload


@pytest.fixture
def app() -> Iterator[App]:
    reader = PrometheusMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(costspan.CostSpanProcessor())
    record_task_runs_on(meter_provider)
    record_tools_on(meter_provider)
    costspan.configure_budgets(None)
    TASK_LEDGER.clear()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    port = free_port()
    http_server, thread = start_http_server(port, addr="127.0.0.1")
    with FakeProviderServer() as fake:
        add_openai_routes(fake, usage=OpenAIUsage(prompt_tokens=INPUT, completion_tokens=OUTPUT))
        client = OpenAI(base_url=fake.base_url + "/v1", api_key="test", max_retries=0)
        try:
            yield App(f"127.0.0.1:{port}", Workload(client, tracer_provider))
        finally:
            client.close()
            instrumentor.uninstrument()
            http_server.shutdown()
            thread.join(timeout=10)
            meter_provider.shutdown()  # unregisters the reader's collector
            tracer_provider.shutdown()
            TASK_LEDGER.clear()


def rules_evaluated_every_second(tmp_path: Path) -> list[Path]:
    """The shipped rule files with their groups evaluated every second instead of every minute."""
    copies = []
    for name in RULE_FILES:
        text = (RULES_DIR / name).read_text()
        assert "interval: 1m" in text
        copy = tmp_path / name
        copy.write_text(text.replace("interval: 1m", "interval: 1s"))
        copies.append(copy)
    return copies


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def recording_rules() -> dict[str, str]:
    import yaml

    rules: dict[str, str] = {}
    for group in yaml.safe_load((RULES_DIR / "costspan-task-runs.rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            rules[rule["record"]] = rule["expr"]
    return rules


def expand(expr: str, rules: dict[str, str]) -> str:
    """The expression with each recorded series it reads replaced by that rule's expression."""
    for record, body in rules.items():
        expr = re.sub(rf"{re.escape(record)}(?![\w:\[])", f"({body.strip()})", expr)
    return expr


def over(expr: str, window_ms: int) -> str:
    """The query with every range (Grafana's $__range / $__rate_interval, the rules' 1h, 1d, 5m)
    set to exactly `window_ms`, and the task filter to all task types."""
    expr = expr.replace("$__range", f"{window_ms}ms").replace("$__rate_interval", f"{window_ms}ms")
    expr = re.sub(r"\[(1h|1d|5m|10m)\]", f"[{window_ms}ms]", expr)
    return expr.replace('costspan_task=~"$task"', 'costspan_task=~".*"')


def by(results: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in results}


def prometheus_quantile(q: float, costs: list[Decimal]) -> float:
    """histogram_quantile over the costspan.task.cost buckets, as Prometheus interpolates."""
    bounds = [*BUCKETS, float("inf")]
    cumulative = [sum(1 for c in costs if float(c) <= bound) for bound in bounds]
    rank = q * cumulative[-1]
    index = next(i for i, count in enumerate(cumulative) if count >= rank)
    if index == len(bounds) - 1:
        return bounds[-2]
    start = 0.0 if index == 0 else bounds[index - 1]
    below = 0 if index == 0 else cumulative[index - 1]
    return start + (bounds[index] - start) * ((rank - below) / (cumulative[index] - below))


def close(value: float, expected: Decimal | float) -> bool:
    return value == pytest.approx(float(expected), rel=1e-9, abs=1e-15)


def assert_matches(
    got: dict[tuple[str, ...], float], expected: dict[tuple[str, ...], Decimal | float]
) -> None:
    assert set(got) == set(expected), (got, expected)
    for key, value in expected.items():
        assert close(got[key], value), (key, got[key], value)


def test_dashboard_and_recording_rule_queries_give_exact_dollars(
    app: App, prometheus_factory: Any, tmp_path: Path
) -> None:
    prometheus = prometheus_factory({"app": app.metrics_target}, rules_evaluated_every_second(tmp_path))
    app.workload.once()  # creates every series (Prometheus 2.x counts no increase on a new series)
    t0 = prometheus.wait_for_scrape_after("app", time.time())
    runs = app.workload.once()
    t1 = prometheus.wait_for_scrape_after("app", time.time())
    time.sleep(3)  # a few rule evaluations after t1
    window = round((t1 - t0) * 1000)
    assert window > 0

    tasks = sorted({r.task for r in runs})
    cost: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    success: dict[str, int] = defaultdict(int)
    retry: dict[str, Decimal] = defaultdict(Decimal)
    by_outcome: dict[tuple[str, str], int] = defaultdict(int)
    customer: dict[str, Decimal] = defaultdict(Decimal)
    model_mix: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    outliers: dict[str, int] = defaultdict(int)
    for run in runs:
        cost[run.task] += run.cost
        count[run.task] += 1
        success[run.task] += run.outcome == "success"
        retry[run.task] += run.retry
        by_outcome[(run.task, run.outcome)] += 1
        customer[run.customer] += run.cost
        outliers[run.task] += run.outlier
        for model in run.calls:
            model_mix[(run.task, model)] += PRICE[model]
    assert cost == {"draft": Decimal("0.0056"), "report": Decimal("0.25"), "triage": Decimal("0.000336")}
    assert retry["draft"] == Decimal("0.0021") and outliers == {"triage": 0, "draft": 0, "report": 1}

    per_task = {(t,): cost[t] for t in tasks}
    expected_by_query: dict[str, tuple[tuple[str, ...], dict[tuple[str, ...], Any]]] = {
        "Which task type costs most": (("costspan_task",), per_task),
        "Spend per task type over time": (("costspan_task",), per_task),
        "Success rate per task type": (("costspan_task",), {(t,): success[t] / count[t] for t in tasks}),
        "Runs by outcome": (("costspan_task", "costspan_task_outcome"), dict(by_outcome)),
        "Retry overhead": (
            ("costspan_task",),
            {(t,): retry[t] / (cost[t] - retry[t]) for t in tasks},
        ),
        # The app adds to the outlier counter only for an outlier: only report has a series.
        "Runs above 3x": (("costspan_task",), {(t,): outliers[t] for t in tasks if outliers[t]}),
        "Cost to serve per customer": (
            ("costspan_customer_id",),
            dict(((c,), v) for c, v in customer.items()),
        ),
        "Model mix per task type": (("costspan_task", "gen_ai_request_model"), dict(model_mix)),
    }
    checked = 0
    for title, expr in dashboard_queries():
        results = prometheus.query(over(expr, window), t1)
        if title.startswith("Drift"):
            # Recorded series, as Prometheus evaluated them (now: they are recorded a little after
            # the scrapes they read). Triage costs the same every run, so its last hour and its
            # baseline agree.
            drift = by(prometheus.query(expr.replace("$task", ".*"), time.time()), "costspan_task")
            assert set(drift) == {(t,) for t in tasks}
            assert close(drift[("triage",)], 1.0)
            checked += 1
            continue
        if title.startswith("Cost of one run"):
            q = 0.5 if "histogram_quantile(0.5," in expr else 0.95
            expected = {(t,): prometheus_quantile(q, [r.cost for r in runs if r.task == t]) for t in tasks}
            assert_matches(by(results, "costspan_task"), expected)
            checked += 1
            continue
        if title.startswith("What a successful run costs"):
            successful = "success" in expr
            expected = {
                (t,): cost[t] / (success[t] if successful else count[t])
                for t in tasks
                if not successful or success[t]
            }
            assert_matches(by(results, "costspan_task"), expected)
            checked += 1
            continue
        (labels, expected) = next(v for k, v in expected_by_query.items() if title.startswith(k))
        assert_matches(by(results, *labels), expected)
        checked += 1
    assert checked == len(dashboard_queries()) == 13

    # Every recording rule's expression over the same exact window (the baseline rule reads the
    # rate5m series Prometheus recorded, so it is checked on triage, whose runs all cost the same).
    rules = recording_rules()
    rule_expected: dict[str, tuple[tuple[str, ...], dict[tuple[str, ...], Any]]] = {
        "costspan:task_cost_usd:increase1h": (("costspan_task",), per_task),
        "costspan:task_runs:increase1h": (("costspan_task", "costspan_task_outcome"), dict(by_outcome)),
        "costspan:task_cost_per_run_usd:1h": (("costspan_task",), {(t,): cost[t] / count[t] for t in tasks}),
        "costspan:task_cost_per_successful_run_usd:1h": (
            ("costspan_task",),
            {(t,): cost[t] / success[t] for t in tasks},
        ),
        "costspan:task_cost_usd:p50_1h": (
            ("costspan_task",),
            {(t,): prometheus_quantile(0.5, [r.cost for r in runs if r.task == t]) for t in tasks},
        ),
        "costspan:task_cost_usd:p95_1h": (
            ("costspan_task",),
            {(t,): prometheus_quantile(0.95, [r.cost for r in runs if r.task == t]) for t in tasks},
        ),
        "costspan:task_retry_cost_usd:increase1h": (("costspan_task",), {(t,): retry[t] for t in tasks}),
        "costspan:task_retry_overhead:ratio_1h": (
            ("costspan_task",),
            {(t,): retry[t] / (cost[t] - retry[t]) for t in tasks},
        ),
        "costspan:customer_cost_usd:increase1d": (
            ("costspan_customer_id",),
            dict(((c,), v) for c, v in customer.items()),
        ),
        "costspan:task_cost_usd:rate5m": (
            ("costspan_task",),
            {(t,): cost[t] / (Decimal(window) / 1000) for t in tasks},
        ),
        "costspan:task_runs:rate5m": (("costspan_task",), {(t,): count[t] / (window / 1000) for t in tasks}),
    }
    for record, (labels, expected) in rule_expected.items():
        assert_matches(
            by(prometheus.query(over(expand(rules[record], rules), window), t1), *labels), expected
        )
    baseline = by(
        prometheus.query(rules["costspan:task_cost_per_run_usd:baseline7d"], time.time()), "costspan_task"
    )
    assert close(baseline[("triage",)], PRICE["gpt-4o-mini"])
    assert set(rule_expected) | {"costspan:task_cost_per_run_usd:baseline7d"} == set(rules)

    # The server loaded and evaluated every rule and alert without error.
    groups = prometheus.api("rules")["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == 17
    assert all(rule["health"] == "ok" for rule in loaded), [r for r in loaded if r["health"] != "ok"]
    outlier_alert = next(r for r in loaded if r["name"] == "CostspanTaskRunAboveThreeTimesMedian")
    assert [a["labels"]["costspan_task"] for a in outlier_alert["alerts"]] == ["report"]
