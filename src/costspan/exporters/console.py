"""A console exporter that prints each finished trace as a cost tree.

```
lead-enrichment  $0.1439 total  7 calls  customer=cus_8821 feature=lead-gen task_id=4f1c...
├─ invoke_agent company-research  $0.1101
│  ├─ chat gpt-4o  $0.0101  2,480 in (1,024 cached) / 514 out
│  └─ execute_tool clearbit.enrich  $0.1000
└─ invoke_agent summariser  $0.0338
   └─ chat claude-sonnet-4-6  $0.0338  ...
```

Spans are exported when they end, so children arrive before their parents. The exporter buffers
finished spans per trace and prints a tree when its local root (no parent, or a remote parent)
arrives. A span arriving after its parent was printed (a "late" child) is printed on its own, under
a `<parent> (continued)` header. Formatting lives in pure functions (`format_tree`, `format_line`)
that need no exporter.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from costspan import attributes as attrs
from costspan.budget.errors import format_usd
from costspan.pricing.shared import shared_rate_card
from costspan.rollup.usage import InvalidUsage, model_of, provider_of, usage_of

__all__ = [
    "DEFAULT_MAX_BUFFERED_SPANS",
    "ConsoleCostTreeExporter",
    "format_continuation",
    "format_line",
    "format_root_line",
    "format_tree",
    "is_llm_call",
]

DEFAULT_MAX_BUFFERED_SPANS = 10_000

_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_NON_CALL_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"})

# Root-line attribution: (attribute key, label), in print order.
_ATTRIBUTION_LABELS: tuple[tuple[str, str], ...] = (
    (attrs.CUSTOMER_ID, "customer"),
    (attrs.FEATURE, "feature"),
    (attrs.TASK, "task"),
    (attrs.TASK_ID, "task_id"),
    (attrs.AGENT, "agent"),
    (attrs.STEP, "step"),
)

_BRANCH = "├─ "
_LAST = "└─ "
_PIPE = "│  "
_SPACE = "   "


# --------------------------------------------------------------------------------------------------
# Pure formatting
# --------------------------------------------------------------------------------------------------


def _attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


_CENT = 0.01
_SIGNIFICANT = 4


def money(usd: float) -> str:
    """US dollars with 4 decimals (`$0.1439`, `$0.0090`); below a cent with more where needed to
    keep up to 4 significant digits (`$0.000018`, `$0.00036`), so that a call that cost something
    never reads `$0.0000`."""
    if usd == 0 or not math.isfinite(usd) or abs(usd) >= _CENT:
        return f"${usd:.4f}"
    amount = Decimal(repr(usd))
    rounded = amount.quantize(Decimal(1).scaleb(amount.adjusted() - _SIGNIFICANT + 1)).normalize()
    if abs(rounded) >= Decimal("0.01") or -rounded.as_tuple().exponent <= 4:  # type: ignore[operator]
        return f"${usd:.4f}"
    return f"${rounded:f}"


def is_llm_call(span: ReadableSpan) -> bool:
    """A model call: it reports input tokens, or its operation is chat / completion / embeddings."""
    attributes = _attributes(span)
    operation = attributes.get(attrs.GEN_AI_OPERATION_NAME)
    if operation in _NON_CALL_OPERATIONS:
        return False
    return operation in _CALL_OPERATIONS or attrs.GEN_AI_USAGE_INPUT_TOKENS in attributes


def _is_tool(span: ReadableSpan) -> bool:
    return _attributes(span).get(attrs.GEN_AI_OPERATION_NAME) == attrs.OPERATION_EXECUTE_TOOL


def _failed(span: ReadableSpan) -> bool:
    return span.status.status_code is StatusCode.ERROR


def _failure(span: ReadableSpan) -> str:
    error_type = _attributes(span).get(attrs.ERROR_TYPE)
    if error_type is None:
        error_type = span.status.description or "error"
    return f"FAILED {error_type}"


def _usage(span: ReadableSpan) -> tuple[int, int, int, int, int] | None:
    """(input, output, cache read, cache write, reasoning), normalised across instrumentations as
    the processor reads them; None without (valid) usage."""
    scope = span.instrumentation_scope
    try:
        return usage_of(_attributes(span), scope.name if scope is not None else None)
    except InvalidUsage:
        return None


def _tokens(span: ReadableSpan) -> str | None:
    """`2,480 in (1,024 cached, 300 cache write) / 514 out (120 reasoning)`, or None without usage."""
    usage = _usage(span)
    return None if usage is None else _token_text(*usage)


def _tier(span: ReadableSpan) -> str | None:
    """`[price tier: over 200,000 input tokens]` when the call was priced above the model's base
    tier (the rate card's tiers by input tokens, cache included), else None."""
    attributes = _attributes(span)
    model = model_of(attributes)
    usage = _usage(span)
    if model is None or usage is None or _number(attributes.get(attrs.GEN_AI_USAGE_COST)) is None:
        return None
    try:
        start = shared_rate_card().tier_start(
            provider_of(attributes), model, input_tokens=usage[0], start_time_ns=span.start_time or 0
        )
    except Exception:  # a console line is never worth an exception in the export path
        return None
    return None if start is None else f"[price tier: over {start:,} input tokens]"


def _token_text(
    input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, reasoning: int
) -> str:
    input_notes = []
    if cache_read:
        input_notes.append(f"{cache_read:,} cached")
    if cache_write:
        input_notes.append(f"{cache_write:,} cache write")
    text = f"{input_tokens:,} in"
    if input_notes:
        text += f" ({', '.join(input_notes)})"
    text += f" / {output_tokens:,} out"
    if reasoning:
        text += f" ({reasoning:,} reasoning)"
    return text


def _own_cost(span: ReadableSpan) -> str | None:
    """A call's own price, `unpriced (unknown model)`, or None when neither applies."""
    attributes = _attributes(span)
    cost = _number(attributes.get(attrs.GEN_AI_USAGE_COST))
    if cost is not None:
        return money(cost)
    status = attributes.get(attrs.COST_STATUS)
    if _failed(span) and status in (None, attrs.STATUS_NO_USAGE):
        return None  # a failed call without usage is not "unpriced": it cost nothing
    if isinstance(status, str) and status != attrs.STATUS_PRICED:
        return f"unpriced ({status.replace('_', ' ')})"
    return None


def _call_parts(span: ReadableSpan) -> list[str]:
    parts = []
    if _failed(span):
        parts.append(_failure(span))
    cost = _own_cost(span)
    if cost is not None:
        parts.append(cost)
    if not _is_tool(span):
        tokens = _tokens(span)
        if tokens is not None:
            parts.append(tokens)
        tier = _tier(span)
        if tier is not None:
            parts.append(tier)
    parts.extend(_budget_notes(span))
    return parts


_BUDGET_ACTIONS = {
    "raise": "refused",
    "warn": "over the limit",
    "callback": "over the limit (on_exceed callable)",
    "abort_stream": "stream stopped",
}


def _usd_text(value: object) -> str:
    number = _number(value)
    return "?" if number is None else format_usd(Decimal(repr(number)))


def _budget_notes(span: ReadableSpan) -> list[str]:
    """When and why a budget acted on this call: `[budget task: refused, spent $1.02 of $1.00]`."""
    notes = []
    downgraded_from = _attributes(span).get(attrs.BUDGET_DOWNGRADED_FROM)
    if downgraded_from:
        notes.append(f"[budget: downgraded from {downgraded_from}]")
    for event in span.events:
        if event.name != attrs.BUDGET_EXCEEDED_EVENT:
            continue
        found = event.attributes or {}
        action = found.get(attrs.BUDGET_ACTION)
        text = f"[budget {found.get(attrs.BUDGET_SCOPE, '?')}: {_BUDGET_ACTIONS.get(str(action), action)}, "
        spent, limit = found.get(attrs.BUDGET_SPENT_USD), found.get(attrs.BUDGET_LIMIT_USD)
        text += f"spent {_usd_text(spent)} of {_usd_text(limit)}"
        worst = found.get(attrs.BUDGET_WORST_CASE_USD)
        if worst is not None:
            text += f", worst case {_usd_text(worst)}"
        notes.append(text + "]")
    return notes


def _late(span: ReadableSpan, line: str) -> str:
    return f"{line} (late)" if _attributes(span).get(attrs.ROLLUP_LATE) is True else line


def _remote_parts(span: ReadableSpan) -> list[str] | None:
    """A call to another service that returned its cost: `$0.0050 remote  3 calls  3,000 in / 600 out`
    (the service's whole subtree on one line), or why its figure was ignored; None for other spans."""
    attributes = _attributes(span)
    status = attributes.get(attrs.REMOTE_COST_STATUS)
    if not isinstance(status, str):
        return None
    if status != attrs.REMOTE_STATUS_ACCEPTED:
        return [f"remote cost ignored ({status.replace('_', ' ')})"]
    cost = _number(attributes.get(attrs.REMOTE_COST_USD)) or 0.0
    calls = _count(attributes.get(attrs.REMOTE_LLM_CALLS)) or 0
    parts = [f"{money(cost)} remote", f"{calls:,} call{'' if calls == 1 else 's'}"]
    input_tokens = _count(attributes.get(attrs.REMOTE_INPUT_TOKENS)) or 0
    output_tokens = _count(attributes.get(attrs.REMOTE_OUTPUT_TOKENS)) or 0
    if input_tokens or output_tokens:
        parts.append(f"{input_tokens:,} in / {output_tokens:,} out")
    return parts


def format_line(span: ReadableSpan) -> str:
    """One inner line: name, then own cost and tokens (calls, tools) or rolled-up cost (others)."""
    remote = _remote_parts(span)
    if remote is not None:
        parts = remote
    elif is_llm_call(span) or _is_tool(span):
        parts = _call_parts(span)
    else:
        rollup = _number(_attributes(span).get(attrs.ROLLUP_COST_USD))
        parts = [] if rollup is None else [money(rollup)]
    return _late(span, "  ".join([span.name, *parts]))


def _subtree_totals(span: ReadableSpan) -> tuple[float, int, int, int, int]:
    """(cost, LLM calls, tool calls, failed, unpriced) of the span and everything under it.

    A span with a call under it carries the processor's rollup; a call with nothing under it
    carries none (it would repeat the call's own figures), so its own are read.
    """
    attributes = _attributes(span)
    if attrs.ROLLUP_LLM_CALLS in attributes:
        return (
            _number(attributes.get(attrs.ROLLUP_COST_USD)) or 0.0,
            _count(attributes.get(attrs.ROLLUP_LLM_CALLS)) or 0,
            _count(attributes.get(attrs.ROLLUP_TOOL_CALLS)) or 0,
            _count(attributes.get(attrs.ROLLUP_FAILED_CALLS)) or 0,
            _count(attributes.get(attrs.ROLLUP_UNPRICED_CALLS)) or 0,
        )
    own = _number(attributes.get(attrs.GEN_AI_USAGE_COST))
    if _is_tool(span):
        return own or 0.0, 0, 1 if own is not None else 0, 0, 0
    if not is_llm_call(span):
        return 0.0, 0, 0, 0, 0
    failed = _failed(span)
    status = attributes.get(attrs.COST_STATUS)
    unpriced = own is None and not (failed and status in (None, attrs.STATUS_NO_USAGE))
    return own or 0.0, 1, 0, int(failed), int(unpriced)


def format_root_line(span: ReadableSpan) -> str:
    """The root line: name, total, call counts, then the root's attribution."""
    attributes = _attributes(span)
    total, calls, tools, failed, unpriced = _subtree_totals(span)
    parts = [span.name, f"{money(total)} total", f"{calls:,} call{'' if calls == 1 else 's'}"]
    remote_usd = _number(attributes.get(attrs.ROLLUP_REMOTE_COST_USD))
    if remote_usd is not None:
        parts.append(f"({money(remote_usd)} in other services)")
    if tools:
        parts.append(f"{tools:,} tool call{'' if tools == 1 else 's'}")
    if failed:
        parts.append(f"{failed:,} failed")
    if unpriced:
        parts.append(f"{unpriced:,} unpriced")
    if is_llm_call(span) or _is_tool(span):
        parts.extend(part for part in _call_parts(span) if not part.startswith("$"))
    labels = [
        f"{label}={attributes[key]}"
        for key, label in _ATTRIBUTION_LABELS
        if attributes.get(key) not in (None, "") and not (key == attrs.TASK and attributes[key] == span.name)
    ]
    if labels:
        parts.append(" ".join(labels))
    return _late(span, "  ".join(parts))


def _span_id(span: ReadableSpan) -> int:
    context = span.context
    return context.span_id if context is not None else 0


def _start_key(span: ReadableSpan) -> tuple[int, str, int]:
    return (span.start_time or 0, span.name, _span_id(span))


def _branch_lines(
    children: Sequence[ReadableSpan],
    children_by_parent: Mapping[int, Sequence[ReadableSpan]],
    prefix: str,
    seen: set[int],
    lines: list[str],
) -> None:
    ordered = sorted((child for child in children if _span_id(child) not in seen), key=_start_key)
    for index, child in enumerate(ordered):
        seen.add(_span_id(child))
        last = index == len(ordered) - 1
        lines.append(f"{prefix}{_LAST if last else _BRANCH}{format_line(child)}")
        grandchildren = children_by_parent.get(_span_id(child), ())
        _branch_lines(grandchildren, children_by_parent, prefix + (_SPACE if last else _PIPE), seen, lines)


def format_tree(root: ReadableSpan, children_by_parent: Mapping[int, Sequence[ReadableSpan]]) -> str:
    """The tree under `root`: children keyed by parent span id, sorted here by start time."""
    lines = [format_root_line(root)]
    seen = {_span_id(root)}
    _branch_lines(children_by_parent.get(_span_id(root), ()), children_by_parent, "", seen, lines)
    return "\n".join(lines)


def format_continuation(
    parent_name: str, span: ReadableSpan, children_by_parent: Mapping[int, Sequence[ReadableSpan]]
) -> str:
    """A span that finished after its parent was printed, under a `<parent> (continued)` header."""
    lines = [f"{parent_name} (continued)"]
    _branch_lines([span], children_by_parent, "", set(), lines)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Exporter
# --------------------------------------------------------------------------------------------------


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _trace_id(span: ReadableSpan) -> int:
    context = span.context
    return context.trace_id if context is not None else 0


class ConsoleCostTreeExporter(SpanExporter):
    """Prints one cost tree per local root span, when the root ends.

    `out` defaults to `sys.stdout`, looked up at each write. At most `max_buffered_spans` spans
    wait for their root; past that, the oldest traces are dropped (counted in `dropped_spans`).
    Thread-safe.
    """

    def __init__(
        self, out: TextIO | None = None, *, max_buffered_spans: int = DEFAULT_MAX_BUFFERED_SPANS
    ) -> None:
        if max_buffered_spans < 1:
            raise ValueError(f"max_buffered_spans must be >= 1, got {max_buffered_spans!r}")
        self._out = out
        self._max_buffered = max_buffered_spans
        self._lock = threading.Lock()
        # trace id -> span id -> span, traces in arrival order (oldest first).
        self._traces: OrderedDict[int, dict[int, ReadableSpan]] = OrderedDict()
        self._buffered = 0
        # Span ids already printed -> their names, so later children print as a continuation.
        self._printed: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._dropped_spans = 0
        self._dropped_traces = 0
        self._shut_down = False

    @property
    def dropped_spans(self) -> int:
        """Spans dropped unprinted because their root never arrived within the buffer cap."""
        with self._lock:
            return self._dropped_spans

    @property
    def dropped_traces(self) -> int:
        with self._lock:
            return self._dropped_traces

    @property
    def buffered_spans(self) -> int:
        with self._lock:
            return self._buffered

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._shut_down:
                return SpanExportResult.FAILURE
            texts = [text for span in spans if (text := self._add(span)) is not None]
            if texts:
                out = self._out if self._out is not None else sys.stdout
                out.write("".join(text + "\n" for text in texts))
                flush = getattr(out, "flush", None)
                if flush is not None:
                    flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            self._traces.clear()
            self._printed.clear()
            self._buffered = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # Under self._lock from here on.

    def _add(self, span: ReadableSpan) -> str | None:
        trace_id = _trace_id(span)
        parent_id = _parent_id(span)
        continued_from = None
        if not _is_local_root(span) and parent_id is not None:
            continued_from = self._printed.get((trace_id, parent_id))
            if continued_from is None and _attributes(span).get(attrs.ROLLUP_LATE) is True:
                continued_from = f"span {parent_id:016x}"
        if not _is_local_root(span) and continued_from is None:
            self._buffer(trace_id, span)
            return None
        children = self._take_subtree(trace_id, span)
        if continued_from is None:
            return format_tree(span, children)
        return format_continuation(continued_from, span, children)

    def _buffer(self, trace_id: int, span: ReadableSpan) -> None:
        spans = self._traces.get(trace_id)
        if spans is None:
            spans = self._traces[trace_id] = {}
        spans[_span_id(span)] = span
        self._buffered += 1
        while self._buffered > self._max_buffered and self._traces:
            _, dropped = self._traces.popitem(last=False)
            self._buffered -= len(dropped)
            self._dropped_spans += len(dropped)
            self._dropped_traces += 1

    def _take_subtree(self, trace_id: int, root: ReadableSpan) -> dict[int, list[ReadableSpan]]:
        """Remove the buffered descendants of `root`; return them keyed by parent span id."""
        root_id = _span_id(root)
        self._remember(trace_id, root_id, root.name)
        spans = self._traces.get(trace_id)
        if not spans:
            return {}
        by_parent: dict[int, list[ReadableSpan]] = {}
        for candidate in spans.values():
            parent_id = _parent_id(candidate)
            if parent_id is not None and not _is_local_root(candidate):
                by_parent.setdefault(parent_id, []).append(candidate)
        subtree: dict[int, list[ReadableSpan]] = {}
        pending = [root_id]
        while pending:
            parent_id = pending.pop()
            children = by_parent.pop(parent_id, None)
            if not children:
                continue
            subtree[parent_id] = children
            for child in children:
                child_id = _span_id(child)
                del spans[child_id]
                self._buffered -= 1
                self._remember(trace_id, child_id, child.name)
                pending.append(child_id)
        if not spans:
            del self._traces[trace_id]
        return subtree

    def _remember(self, trace_id: int, span_id: int, name: str) -> None:
        self._printed[(trace_id, span_id)] = name
        self._printed.move_to_end((trace_id, span_id))
        while len(self._printed) > self._max_buffered:
            self._printed.popitem(last=False)
