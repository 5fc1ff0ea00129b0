"""MLflow (a real `mlflow server`, fed over OTLP/HTTP) shows costspan's cost per span and per trace.

MLflow prices a span's tokens from its own table unless the span carries `mlflow.llm.cost`, and sums
the spans' costs into the trace's `mlflow.trace.cost`. With COSTSPAN_COST_ATTRIBUTES=mlflow the
override price and the custom model reach MLflow as costspan priced them; without it MLflow shows
the list price and no cost for the custom model (the issue this fixes).
"""

from __future__ import annotations

import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from scenario import ACME_SPAN, ACME_USD, CUSTOMER_ID, GPT4O_LIST_USD, GPT4O_SPAN, GPT4O_USD, TRACE_USD

from conftest import HERE, Server, run_app

READ_TIMEOUT_S = 60.0
FLAT_EQUALS = f"span.attributes.costspan.customer_id = '{CUSTOMER_ID}'"
EXACT_RLIKE = f"span.attributes.costspan.customer_id RLIKE '^{CUSTOMER_ID}$'"


def approx(value: Decimal) -> object:
    return pytest.approx(float(value), rel=1e-9, abs=1e-15)


def read_trace(server: Server, trace_id: str, *filters: str) -> dict:
    """The trace as the mlflow client reads it back, once all three spans are stored."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    while True:
        done = subprocess.run(
            [server.python, str(HERE / "read_mlflow.py"), server.url, f"tr-{trace_id}", *filters],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        found = json.loads(done.stdout.strip().splitlines()[-1])
        if (found["found"] and found["spans"] == 3) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def export_to(server: Server) -> str:
    return f"{server.url}/v1/traces|x-mlflow-experiment-id=0"


def test_mlflow_shows_costspan_cost_per_span_and_per_trace(mlflow_server: Server, prices_file: Path) -> None:
    app = run_app([export_to(mlflow_server)], prices_file, "mlflow", "mlflow-test")
    assert app["span_cost"] == {GPT4O_SPAN: approx(GPT4O_USD), ACME_SPAN: approx(ACME_USD)}
    assert app["trace_cost"] == approx(TRACE_USD)

    stored = read_trace(mlflow_server, app["trace_id"], FLAT_EQUALS, EXACT_RLIKE)
    assert stored["found"] and stored["spans"] == 3
    gpt4o, acme = stored["span_cost"][GPT4O_SPAN], stored["span_cost"][ACME_SPAN]
    assert gpt4o["total_cost"] == approx(GPT4O_USD) == app["span_cost"][GPT4O_SPAN]
    assert gpt4o["input_cost"] == approx(GPT4O_USD - Decimal(400 * 20) / 1_000_000)
    assert gpt4o["output_cost"] == approx(Decimal(400 * 20) / 1_000_000)
    assert acme["total_cost"] == approx(ACME_USD)
    assert stored["trace_cost"]["total_cost"] == approx(TRACE_USD)
    assert stored["trace_cost"]["total_cost"] == pytest.approx(app["trace_cost"], rel=1e-12)
    # The task span carries no mlflow.llm.cost (only calls do), so nothing is counted twice.
    assert stored["span_cost"]["enrich_lead"] is None
    # Reading costspan's attribute: MLflow keeps values JSON-encoded, so `=` matches nothing.
    assert stored["searches"][FLAT_EQUALS] == []
    assert f"tr-{app['trace_id']}" in stored["searches"][EXACT_RLIKE]


def test_without_the_setting_mlflow_prices_tokens_itself(mlflow_server: Server, prices_file: Path) -> None:
    """What users saw before: the list price for gpt-4o, nothing for the custom model."""
    app = run_app([export_to(mlflow_server)], prices_file, None, "mlflow-test")
    assert "mlflow.llm.cost" not in app["attributes"][GPT4O_SPAN]
    stored = read_trace(mlflow_server, app["trace_id"])
    assert stored["span_cost"][GPT4O_SPAN]["total_cost"] == approx(GPT4O_LIST_USD)
    assert stored["span_cost"][ACME_SPAN] is None
    assert stored["trace_cost"]["total_cost"] == approx(GPT4O_LIST_USD)
