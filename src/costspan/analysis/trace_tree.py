"""`costspan report --trace ID`: one trace's cost tree from the span files, as the console exporter prints it.

The trace's spans are read back into SDK `ReadableSpan`s (typed attributes, status) and
given to `costspan.exporters.console.format_tree`, so the tree is the one the live exporter prints
(span events are not read back: budget notes are not shown).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from costspan.analysis.spans import read_spans_sql
from costspan.exporters.console import format_tree

__all__ = ["trace_tree"]


def _value(value: dict[str, Any]) -> Any:
    if value.get("stringValue") is not None:
        return value["stringValue"]
    if value.get("intValue") is not None:
        return int(value["intValue"])
    if value.get("doubleValue") is not None:
        return float(value["doubleValue"])
    if value.get("boolValue") is not None:
        return bool(value["boolValue"])
    return None


def _attributes(entries: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    out = {}
    for entry in entries or ():
        value = _value(entry["value"] or {})
        if value is not None:
            out[entry["key"]] = value
    return out


def _status(code: str) -> Status:
    if code in ("2", "STATUS_CODE_ERROR"):
        return Status(StatusCode.ERROR)
    if code in ("1", "STATUS_CODE_OK"):
        return Status(StatusCode.OK)
    return Status(StatusCode.UNSET)


def trace_tree(con: Any, paths: Sequence[str], trace_id: str) -> str | None:
    """The trace's tree(s), one per local root, or None when no span of the trace is in the files."""
    wanted = trace_id.strip().lower().removeprefix("0x")
    rows = con.execute(
        f"""SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code, scope_name,
                   to_json(attributes)
            FROM ({read_spans_sql(paths, tree=True)}) WHERE trace_id = ?""",
        [wanted],
    ).fetchall()
    if not rows:
        return None
    spans: dict[str, ReadableSpan] = {}
    for tid, sid, parent, name, start, end, code, scope_name, attributes_json in rows:
        context = SpanContext(int(tid, 16), int(sid, 16), is_remote=False, trace_flags=TraceFlags(1))
        parent_context = (
            SpanContext(int(tid, 16), int(parent, 16), is_remote=False, trace_flags=TraceFlags(1))
            if parent
            else None
        )
        spans[sid] = ReadableSpan(
            name=name,
            context=context,
            parent=parent_context,
            attributes=_attributes(json.loads(attributes_json)),
            events=(),
            status=_status(code),
            start_time=start,
            end_time=end,
            instrumentation_scope=InstrumentationScope(scope_name or ""),
        )
    children: dict[int, list[ReadableSpan]] = defaultdict(list)
    roots = []
    for span in spans.values():
        parent = span.parent
        if parent is None or f"{parent.span_id:016x}" not in spans:
            roots.append(span)
        else:
            children[parent.span_id].append(span)
    roots.sort(key=lambda s: s.start_time or 0)
    return "\n\n".join(format_tree(root, children) for root in roots)
