"""Phoenix (a real `phoenix serve`, fed over OTLP/HTTP) shows costspan's cost per span and per trace.

Phoenix ignores a span's own `llm.cost.*` (Arize-ai/phoenix#15240) and prices tokens from its model
table. `costspan push-prices` writes the override file's models into that table; after it, the
override price and the custom model cost in Phoenix what they cost in costspan. Read back through
Phoenix's GraphQL API, as its UI does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scenario import ACME_SPAN, ACME_USD, CUSTOMER_ID, GPT4O_LIST_USD, GPT4O_SPAN, GPT4O_USD, TRACE_USD

from conftest import Server, run_app

PROJECT = "costspan-backends"
READ_TIMEOUT_S = 60.0
# Phoenix's model store reloads custom models every 5 s; spans are priced when they are stored.
MODEL_REFRESH_S = 7.0
VARIABLE_TYPES = {"t": "ID!", "c": "String!"}
NESTED = f"attributes['costspan']['customer_id'] == '{CUSTOMER_ID}'"
FLAT = f"attributes['costspan.customer_id'] == '{CUSTOMER_ID}'"


def approx(value: Any) -> object:
    return pytest.approx(float(value), rel=1e-9, abs=1e-15)


def graphql(server: Server, query: str, **variables: Any) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        server.url + "/graphql", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


def project_node(server: Server, query: str, **variables: Any) -> dict[str, Any]:
    declared = ", ".join(f"${name}: {VARIABLE_TYPES[name]}" for name in variables)
    data = graphql(
        server,
        f"query({declared}) {{ projects {{ edges {{ node {{ name {query} }} }} }} }}",
        **variables,
    )
    for edge in data["projects"]["edges"]:
        if edge["node"]["name"] == PROJECT:
            return edge["node"]
    return {}


TRACE_QUERY = """trace(traceId: $t) { costSummary { total { cost } }
    spans(first: 50) { edges { node { name attributes costSummary { total { cost } } } } } }"""


def read_trace(server: Server, trace_id: str) -> dict[str, Any]:
    """{"trace": total cost, span name: total cost} once Phoenix has stored all three spans."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    while True:
        node = project_node(server, TRACE_QUERY, t=trace_id).get("trace")
        spans = node["spans"]["edges"] if node else []
        if len(spans) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert node is not None and len(spans) == 3, f"trace {trace_id} not stored in Phoenix"
    costs: dict[str, Any] = {"trace": node["costSummary"]["total"]["cost"]}
    for edge in spans:
        summary = edge["node"]["costSummary"]
        costs[edge["node"]["name"]] = summary["total"]["cost"] if summary else None
        costs["attributes " + edge["node"]["name"]] = json.loads(edge["node"]["attributes"])
    return costs


def filtered_span_names(server: Server, condition: str) -> list[str]:
    node = project_node(
        server, "spans(first: 100, filterCondition: $c) { edges { node { name } } }", c=condition
    )
    return sorted(edge["node"]["name"] for edge in node["spans"]["edges"])


def push_prices(server: Server, prices: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "costspan", "push-prices", "--phoenix", server.url, "--prices", str(prices)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def custom_models(server: Server) -> dict[str, dict[str, Any]]:
    data = graphql(
        server,
        "{ generativeModels(first: 1000) { edges { node { name kind namePattern provider "
        "tokenPrices { tokenType kind costPerMillionTokens } } } } }",
    )
    return {
        e["node"]["name"]: e["node"]
        for e in data["generativeModels"]["edges"]
        if e["node"]["kind"] == "CUSTOM"
    }


def test_phoenix_prices_as_costspan_after_push_prices(phoenix: Server, prices_file: Path) -> None:
    target = phoenix.url + "/v1/traces"
    empty = prices_file.with_name("none.yaml")
    empty.write_text("models: []\n")
    if push_prices(phoenix, empty):  # a server kept from an earlier run (BACKENDS_PHOENIX_URL)
        time.sleep(MODEL_REFRESH_S)

    # Before: Phoenix prices the tokens itself, at list price, even with llm.cost.* on the span.
    before = run_app([target], prices_file, "openinference", PROJECT)
    assert before["attributes"][GPT4O_SPAN]["llm.cost.total"] == approx(GPT4O_USD)
    stored = read_trace(phoenix, before["trace_id"])
    assert stored[GPT4O_SPAN] == approx(GPT4O_LIST_USD)
    assert stored[ACME_SPAN] is None
    assert stored["trace"] == approx(GPT4O_LIST_USD)

    assert push_prices(phoenix, prices_file) == [
        "created   costspan gpt-4o [openai]: input $5/Mtok, cache_read $2.5/Mtok, output $20/Mtok",
        "created   costspan acme-llm-1: input $3/Mtok, output $9/Mtok",
    ]
    pushed = time.monotonic()
    assert push_prices(phoenix, prices_file) == [
        "unchanged costspan gpt-4o [openai]",
        "unchanged costspan acme-llm-1",
    ]
    time.sleep(max(0.0, MODEL_REFRESH_S - (time.monotonic() - pushed)))

    after = run_app([target], prices_file, "openinference", PROJECT)
    stored = read_trace(phoenix, after["trace_id"])
    assert stored[GPT4O_SPAN] == approx(GPT4O_USD) == after["span_cost"][GPT4O_SPAN]
    assert stored[ACME_SPAN] == approx(ACME_USD) == after["span_cost"][ACME_SPAN]
    assert stored["trace"] == approx(TRACE_USD)
    assert stored["trace"] == pytest.approx(after["trace_cost"], rel=1e-12)
    # llm.cost.* is stored too (for when Phoenix honours it), nested like every dotted key.
    assert stored["attributes " + GPT4O_SPAN]["llm"]["cost"]["total"] == approx(GPT4O_USD)

    # Phoenix nests dotted attribute keys: only the nested filter form finds costspan's attributes.
    in_trace = f" and trace_id == '{after['trace_id']}'"
    assert filtered_span_names(phoenix, FLAT + in_trace) == []
    assert filtered_span_names(phoenix, NESTED + in_trace) == [ACME_SPAN, GPT4O_SPAN, "enrich_lead"]
    task_filter = (
        f"attributes['costspan']['rollup']['cost_usd'] > {float(TRACE_USD) * 0.99} and parent_id is None"
    )
    assert filtered_span_names(phoenix, task_filter + in_trace) == ["enrich_lead"]
    # Spans stored before the push keep the cost Phoenix gave them then.
    assert read_trace(phoenix, before["trace_id"])[GPT4O_SPAN] == approx(GPT4O_LIST_USD)

    # The file changes: gpt-4o's output price moves, acme-llm-1 goes. Phoenix follows.
    prices_file.write_text(
        "models:\n  - model: gpt-4o\n    provider: openai\n    input_per_mtok: 5.0\n"
        "    cache_read_per_mtok: 2.5\n    output_per_mtok: 30.0\n"
    )
    assert push_prices(phoenix, prices_file) == [
        "updated   costspan gpt-4o [openai]: input $5/Mtok, cache_read $2.5/Mtok, output $30/Mtok",
        "deleted   costspan acme-llm-1 (no longer in the price file)",
    ]
    models = custom_models(phoenix)
    assert list(models) == ["costspan gpt-4o [openai]"]
    prices = {
        p["tokenType"]: p["costPerMillionTokens"] for p in models["costspan gpt-4o [openai]"]["tokenPrices"]
    }
    assert prices == {"input": 5.0, "cache_read": 2.5, "output": 30.0}
