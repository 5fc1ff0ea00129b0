"""Span files (OTLP JSON lines, from `costspan_file` or a Collector's `file` exporter) into DuckDB.

`load_spans` reads every line of every file once and keeps two tables:

- `calls`: one row per LLM call or tool span, with its own cost (`gen_ai.usage.cost`, read from the
  JSON text as an exact decimal), status, tokens, model and attribution;
- `runs`: one row per task run (`costspan.task`, `costspan.task_id`) whose task span is in the
  files, with its outcome and retry cost.

A call is a span with `costspan.cost.status` (every call the CostSpanProcessor or the
instrumentors saw, priced or not) that is not `execute_tool`; a `duplicate` call (its cost is on
another span) is dropped here, so it is never counted. A tool is an `execute_tool` span.
Money is DECIMAL(38, 24): the card's unit is 1e-24 USD, and a sum of a million calls stays exact.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from costspan import attributes as attrs

__all__ = ["MONEY", "SpanFileError", "connect", "expand_paths", "load_spans", "read_spans_sql"]

MONEY = "DECIMAL(38, 24)"

# Defined here rather than imported: other stages add them (issue 28 outcomes, duplicate calls) and
# the report reads files older and newer than this code.
TASK_OUTCOME = "costspan.task.outcome"
ROLLUP_RETRY_COST_USD = "costspan.rollup.retry_cost_usd"
STATUS_DUPLICATE = "duplicate"
_UNPRICED_STATUSES = ("unknown_model", "invalid_usage")

# The part of an OTLP JSON request the report reads, as a DuckDB JSON structure (`from_json`, which
# is several times faster here than `read_json` with the same columns).
_VALUE = {"stringValue": "VARCHAR", "intValue": "VARCHAR", "doubleValue": "VARCHAR", "boolValue": "BOOLEAN"}
_SPAN = {
    "traceId": "VARCHAR",
    "spanId": "VARCHAR",
    "parentSpanId": "VARCHAR",
    "name": "VARCHAR",
    "startTimeUnixNano": "VARCHAR",
    "endTimeUnixNano": "VARCHAR",
    "attributes": [{"key": "VARCHAR", "value": _VALUE}],
    "status": {"code": "VARCHAR"},
}
_REPORT_SPAN = {key: value for key, value in _SPAN.items() if key not in ("parentSpanId", "endTimeUnixNano")}


def _structure(span: dict[str, Any]) -> str:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "VARCHAR"}, "spans": [span]}]}]})


class SpanFileError(ValueError):
    """A path that is no span file, or a file DuckDB could not read as OTLP JSON lines."""


def connect(memory_limit: str = "2GB", threads: int | None = None) -> Any:
    import duckdb

    con = duckdb.connect(config={"memory_limit": memory_limit})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files named, globs expanded, directories read as all their `*.jsonl*` / `*.json` files."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            matches = sorted(
                found_path
                for pattern in ("*.jsonl", "*.jsonl.*", "*.json")
                for found_path in glob.glob(os.path.join(path, pattern))
            )
            found += [p for p in matches if not p.endswith(".lock")]
        elif os.path.exists(path):
            found.append(path)
        else:
            matches = sorted(glob.glob(path))
            if not matches:
                raise SpanFileError(f"{path}: no such file")
            found += matches
    if not found:
        raise SpanFileError("no span files found in " + ", ".join(paths))
    return found


def _sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def read_spans_sql(paths: Sequence[str], *, tree: bool = False) -> str:
    """A query with one row per span: ids, name, start, status code, scope and its attribute list;
    with `tree`, also the parent span id and the end time."""
    structure = _structure(_SPAN if tree else _REPORT_SPAN)
    tree_columns = (
        "nullif(lower(s.parentSpanId), '') AS parent_span_id, CAST(s.endTimeUnixNano AS UBIGINT) AS end_ns,"
        if tree
        else ""
    )
    return f"""
        WITH requests AS (
            SELECT unnest(from_json(json, '{structure}').resourceSpans) AS rs
            FROM read_ndjson_objects({_sql_list(paths)}, maximum_object_size = 67108864)
        ), scopes AS (
            SELECT unnest(rs.scopeSpans) AS ss FROM requests
        ), spans AS (
            SELECT ss.scope.name AS scope_name, unnest(ss.spans) AS s FROM scopes
        )
        SELECT lower(s.traceId) AS trace_id, lower(s.spanId) AS span_id,
               {tree_columns} s.name AS name, CAST(s.startTimeUnixNano AS UBIGINT) AS start_ns,
               coalesce(s.status.code, '0') AS status_code,
               scope_name, s.attributes AS attributes
        FROM spans
    """


# An attribute is found by its position in the span's list of keys (`k`): several times cheaper
# in DuckDB than building a MAP per span.
def _attr(key: str) -> str:
    """A string attribute's value."""
    return f"attributes[list_position(k, '{key}')].value.stringValue"


def _number(key: str) -> str:
    """A numeric attribute's value as its JSON text (an exact decimal), whichever way it was written."""
    value = f"attributes[list_position(k, '{key}')].value"
    return f"coalesce({value}.doubleValue, {value}.intValue, {value}.stringValue)"


def load_spans(con: Any, paths: Sequence[str]) -> None:
    """Create the `calls` and `runs` tables from the files (one pass over them)."""
    op, status = _attr(attrs.GEN_AI_OPERATION_NAME), _attr(attrs.COST_STATUS)
    task, task_id = _attr(attrs.TASK), _attr(attrs.TASK_ID)
    failed = "status_code IN ('2', 'STATUS_CODE_ERROR')"
    tokens_in = (
        f"coalesce({_number(attrs.GEN_AI_USAGE_INPUT_TOKENS)}, {_number(attrs.GEN_AI_USAGE_PROMPT_TOKENS)}, "
        f"{_number('llm.token_count.prompt')})"
    )
    tokens_out = (
        f"coalesce({_number(attrs.GEN_AI_USAGE_OUTPUT_TOKENS)}, "
        f"{_number(attrs.GEN_AI_USAGE_COMPLETION_TOKENS)}, "
        f"{_number('llm.token_count.completion')})"
    )
    cache_read = (
        f"coalesce({_number(attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)}, "
        f"{_number('gen_ai.usage.cache_read_input_tokens')}, "
        f"{_number('llm.token_count.prompt_details.cache_read')})"
    )
    cache_write = (
        f"coalesce({_number(attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)}, "
        f"{_number(attrs.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)}, "
        f"{_number('gen_ai.usage.cache_creation_input_tokens')}, "
        f"{_number('llm.token_count.prompt_details.cache_write')})"
    )
    reasoning = (
        f"coalesce({_number(attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)}, "
        f"{_number('gen_ai.usage.reasoning_tokens')}, "
        f"{_number('llm.token_count.completion_details.reasoning')})"
    )
    model = (
        f"coalesce({_attr(attrs.GEN_AI_RESPONSE_MODEL)}, {_attr(attrs.GEN_AI_REQUEST_MODEL)}, "
        f"{_attr('llm.model_name')})"
    )
    provider_keys = (attrs.GEN_AI_PROVIDER_NAME, attrs.GEN_AI_SYSTEM, "llm.provider")
    provider = f"coalesce({', '.join(_attr(key) for key in provider_keys)})"
    valid_tokens = f"coalesce({status}, '') <> 'invalid_usage'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE spans_flat AS
        WITH raw AS ({read_spans_sql(paths)}),
        flat AS (
            SELECT trace_id, span_id, name, start_ns, status_code,
                   attributes, list_transform(attributes, lambda x: x.key) AS k
            FROM raw
        )
        SELECT trace_id, span_id, name, start_ns,
               {failed} AS failed,
               {op} AS operation, {status} AS cost_status,
               {task} AS task, {task_id} AS task_id,
               {_attr(attrs.CUSTOMER_ID)} AS customer, {_attr(attrs.FEATURE)} AS feature,
               {_attr(attrs.AGENT)} AS agent, {_attr(attrs.STEP)} AS step,
               {model} AS model, {provider} AS provider, {_attr(attrs.GEN_AI_TOOL_NAME)} AS tool_name,
               CASE WHEN coalesce({status}, '') <> 'invalid_usage'
                    THEN TRY_CAST({_number(attrs.GEN_AI_USAGE_COST)} AS {MONEY}) END AS cost,
               CASE WHEN {valid_tokens} THEN TRY_CAST({tokens_in} AS BIGINT) END AS input_tokens,
               CASE WHEN {valid_tokens} THEN TRY_CAST({tokens_out} AS BIGINT) END AS output_tokens,
               CASE WHEN {valid_tokens} THEN TRY_CAST({cache_read} AS BIGINT) END AS cache_read_tokens,
               CASE WHEN {valid_tokens} THEN TRY_CAST({cache_write} AS BIGINT) END AS cache_write_tokens,
               CASE WHEN {valid_tokens} THEN TRY_CAST({reasoning} AS BIGINT) END AS reasoning_tokens,
               {_attr(TASK_OUTCOME)} AS outcome,
               TRY_CAST({_number(ROLLUP_RETRY_COST_USD)} AS {MONEY}) AS retry_cost
        FROM flat
        WHERE ({status} IS NOT NULL AND coalesce({status}, '') <> '{STATUS_DUPLICATE}')
           OR {op} = '{attrs.OPERATION_EXECUTE_TOOL}'
           OR ({task_id} IS NOT NULL AND name = {task})
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE runs AS
        SELECT task, task_id,
               arg_min(customer, start_ns) AS customer, arg_min(feature, start_ns) AS feature,
               min(start_ns) AS start_ns,
               arg_min(CASE WHEN outcome IS NOT NULL THEN outcome = 'success' ELSE NOT failed END, start_ns)
                   AS success,
               coalesce(arg_min(retry_cost, start_ns), 0) AS retry_cost
        FROM spans_flat
        WHERE task_id IS NOT NULL AND name = task AND cost_status IS NULL
              AND coalesce(operation, '') <> '{attrs.OPERATION_EXECUTE_TOOL}'
        GROUP BY task, task_id
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE calls AS
        SELECT trace_id, span_id, start_ns, failed, task, task_id, customer, feature, agent, step,
               CASE WHEN operation = '{attrs.OPERATION_EXECUTE_TOOL}'
                    THEN 'tool ' || coalesce(tool_name, name)
                    ELSE model END AS model,
               provider, cost_status,
               operation = '{attrs.OPERATION_EXECUTE_TOOL}' AND operation IS NOT NULL AS is_tool,
               cost, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
               coalesce(operation, '') <> '{attrs.OPERATION_EXECUTE_TOOL}'
                   AND (cost_status IN {_UNPRICED_STATUSES} OR (cost_status = 'no_usage' AND NOT failed))
                   AS unpriced
        FROM spans_flat
        WHERE cost_status IS NOT NULL OR operation = '{attrs.OPERATION_EXECUTE_TOOL}'
    """)
    con.execute("DROP TABLE spans_flat")
