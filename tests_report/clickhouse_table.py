"""The OpenTelemetry Collector `clickhouse` exporter's traces table, and span files turned into its rows.

TRACES_TABLE is the exporter's `CREATE TABLE` for traces (opentelemetry-collector-contrib,
exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql, rendered with database `otel`,
table `otel_traces`, engine `MergeTree()`, no cluster, no TTL, the bloom-filter indexes).

`exporter_rows` turns OTLP JSON lines (what costspan_file writes) into the rows the exporter inserts
(exporter_traces.go, pushTraceData): Timestamp is the span's start, Duration end - start in ns,
SpanKind and StatusCode are pdata's String() names (`Client`, `Error`), ServiceName is the
resource's `service.name`, ScopeName/ScopeVersion the instrumentation scope, and every attribute
value is pcommon.Value.AsString(): strings as is, ints in decimal, bools `true`/`false`, doubles as
Go's float64AsString (shortest round-trip digits, ES6 style: exponent below 1e-6 and from 1e21),
arrays and maps as JSON, bytes as base64.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

DATABASE = "otel"

TRACES_TABLE = """
CREATE TABLE IF NOT EXISTS otel.otel_traces (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2),
        CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2),
        CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

# pdata's SpanKind.String() and StatusCode.String(), by OTLP enum number.
SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]


def go_float(value: float) -> str:
    """pcommon's float64AsString: shortest round-trip digits, 'f' form unless |x| < 1e-6 or >= 1e21."""
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    if 1e-6 <= abs(value) < 1e21:
        return format(Decimal(repr(value)).normalize(), "f")
    text = repr(value)  # Python's shortest digits in e form, e.g. 5e-07, 1.5e+21
    return re.sub(r"e-0(\d)$", r"e-\1", text)


def _raw(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as Go's AsRaw() (what json.Marshal prints for arrays and maps)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_raw(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: _raw(kv.get("value", {})) for kv in value["kvlistValue"].get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def as_string(value: dict[str, Any]) -> str:
    """pcommon.Value.AsString() of an OTLP JSON AnyValue."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return str(int(value["intValue"]))
    if "doubleValue" in value:
        return go_float(float(value["doubleValue"]))
    if "boolValue" in value:
        return "true" if value["boolValue"] else "false"
    if "bytesValue" in value:
        return value["bytesValue"]  # base64 in OTLP JSON as in Go's AsString
    if "arrayValue" in value or "kvlistValue" in value:
        return json.dumps(_raw(value), separators=(",", ":"), sort_keys=True)
    return ""


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {item["key"]: as_string(item.get("value", {})) for item in items or []}


def _time(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def exporter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """One otel_traces row (JSONEachRow object) per span in the OTLP JSON lines file."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line)["resourceSpans"]:
            resource = _attributes(resource_spans.get("resource", {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = scope_spans.get("scope", {})
                for span in scope_spans.get("spans", []):
                    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                    status = span.get("status", {})
                    events = span.get("events", [])
                    links = span.get("links", [])
                    yield {
                        "Timestamp": _time(start),
                        "TraceId": span["traceId"].lower(),
                        "SpanId": span["spanId"].lower(),
                        "ParentSpanId": span.get("parentSpanId", "").lower(),
                        "TraceState": span.get("traceState", ""),
                        "SpanName": span["name"],
                        "SpanKind": SPAN_KINDS[int(span.get("kind", 0))],
                        "ServiceName": resource.get("service.name", ""),
                        "ResourceAttributes": resource,
                        "ScopeName": scope.get("name", ""),
                        "ScopeVersion": scope.get("version", ""),
                        "SpanAttributes": _attributes(span.get("attributes")),
                        "Duration": end - start,
                        "StatusCode": STATUS_CODES[int(status.get("code", 0))],
                        "StatusMessage": status.get("message", ""),
                        "Events.Timestamp": [_time(int(e["timeUnixNano"])) for e in events],
                        "Events.Name": [e.get("name", "") for e in events],
                        "Events.Attributes": [_attributes(e.get("attributes")) for e in events],
                        "Links.TraceId": [link["traceId"].lower() for link in links],
                        "Links.SpanId": [link["spanId"].lower() for link in links],
                        "Links.TraceState": [link.get("traceState", "") for link in links],
                        "Links.Attributes": [_attributes(link.get("attributes")) for link in links],
                    }


def insert_statement(path: Path, table: str = "otel.otel_traces") -> str:
    rows = "\n".join(json.dumps(row) for row in exporter_rows(path))
    return f"INSERT INTO {table} FORMAT JSONEachRow\n{rows}\n"


class ChdbServer:
    """One chDB session (one per process) with a database per span file."""

    def __init__(self, path: Path) -> None:
        from chdb import session as chdb_session

        self.session = chdb_session.Session(str(path))
        self.lock = threading.Lock()

    def load(self, database: str, spans: Path) -> None:
        with self.lock:
            self.session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
            self.session.query(TRACES_TABLE.replace("otel.otel_traces", f"{database}.otel_traces"))
            self.session.query(insert_statement(spans, f"{database}.otel_traces"))

    def query(
        self, database: str, sql: str, fmt: str = "JSONEachRow", params: dict[str, str] | None = None
    ) -> str:
        with self.lock:
            self.session.query(f"USE {database}")
            return str(self.session.query(sql, fmt, params=params))

    def close(self) -> None:
        self.session.close()
