"""Other recorders of the same call: which spans describe one provider request, and agent names.

Agent frameworks (pydantic-ai, the OpenAI Agents SDK, LangChain/LangGraph through OpenInference or
OpenLLMetry, LiteLLM) record their own LLM spans above or beside costspan's SDK span. A request is
one cost: the CostSpanProcessor counts one span per request and marks the others
`costspan.cost.status=duplicate` with `costspan.cost.counted_in` (the span id that carries the cost),
without `gen_ai.usage.cost`. The rule (README "With agent frameworks"):

1. Parent-child: a call span with call spans below it is a wrapper of those calls. The calls below
   count (the innermost span is the one closest to the wire: costspan's SDK span, with cache and
   reasoning counts); the wrapper is the duplicate.
2. Siblings (neither below the other, same trace): two call spans describe the same request when
   they overlap in time and either both carry `gen_ai.response.id` and the ids are equal, or (one
   has no id) they report the same input and output token counts and the same model where both
   name one. The first to end counts; the later one is the duplicate.
3. Spans that cannot be matched for sure (different ids, different counts, no usage, or not
   overlapping in time) are both counted: costspan never drops a cost on a guess. Two concurrent
   requests with the same model and counts are taken as one only when one of them has no response
   id; whichever is kept, the figure is the same.

A span of another library that ends after costspan's span of the same request has ended (and
after its trace's root, as LiteLLM's logging thread does) is matched by response id against
costspan's own recent calls (`RecentOwnCalls`), whether or not matching was on when they ended.

This module holds the per-trace ledger of the calls already counted (siblings) and the start-time
checks the processor runs on spans of other libraries (agent names). It imports only attributes and
the rollup's usage reader.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from costspan import attributes as attrs
from costspan.rollup.usage import model_of, usage_of

# Set once a span of another library has named an agent: costspan's call spans then read the agent
# stamped on them into their metric points (one list subscript per call until then).
FRAMEWORK_AGENT_SEEN = [False]

_OI_SPAN_KIND = "openinference.span.kind"
_OI_AGENT_NAME = "agent.name"
_TRACELOOP_SPAN_KIND = "traceloop.span.kind"
_TRACELOOP_ENTITY_NAME = "traceloop.entity.name"

# Attributes a GenAI span of another library carries from its start (pydantic-ai, OpenLLMetry and
# OpenInference set at least one of these when they start a span). A span with none is not checked.
START_MARKERS = frozenset(
    {
        attrs.GEN_AI_OPERATION_NAME,
        attrs.GEN_AI_AGENT_NAME,
        attrs.GEN_AI_REQUEST_MODEL,
        attrs.GEN_AI_PROVIDER_NAME,
        attrs.GEN_AI_SYSTEM,
        _OI_SPAN_KIND,
        _TRACELOOP_SPAN_KIND,
    }
)

# Instrumentation scopes of libraries that record LLM spans of their own whose attributes come only
# when the span ends (LangChain through OpenInference or OpenLLMetry): the processor turns matching
# on when a span of one of them starts.
_LLM_RECORDER_SCOPES = (
    "openinference.",
    "opentelemetry.instrumentation.",
    "pydantic-ai",
    "pydantic_ai",
    "logfire",
    "litellm",
    "LiteLLM",
    "traceloop",
    "com.anthropic.sdk",
)


def records_llm_spans(scope_name: str) -> bool:
    """Whether spans of this instrumentation scope may record LLM calls costspan records too."""
    return scope_name.startswith(_LLM_RECORDER_SCOPES)


# What a priced call span carries that a duplicate must not (backends add `gen_ai.usage.cost` up).
COST_KEYS = (
    attrs.GEN_AI_USAGE_COST,
    attrs.COST_INPUT_USD,
    attrs.COST_OUTPUT_USD,
    attrs.COST_CACHE_READ_USD,
    attrs.COST_CACHE_WRITE_USD,
    attrs.PRICE_SOURCE,
    # backend-specific copies of the cost (COSTSPAN_COST_ATTRIBUTES): a backend that sums them over a
    # trace must not count a duplicate either
    attrs.MLFLOW_LLM_COST,
    attrs.LLM_COST_TOTAL,
    attrs.LLM_COST_PROMPT,
    attrs.LLM_COST_PROMPT_DETAILS_INPUT,
    attrs.LLM_COST_PROMPT_DETAILS_CACHE_READ,
    attrs.LLM_COST_PROMPT_DETAILS_CACHE_WRITE,
    attrs.LLM_COST_COMPLETION,
    attrs.GEN_AI_USAGE_COST_AMOUNT,
    attrs.GEN_AI_USAGE_COST_CURRENCY,
    attrs.GEN_AI_USAGE_COST_SOURCE,
)

# Traces whose calls are remembered at once; past it the oldest trace is forgotten (its later
# siblings then count as unmatched: counted, never dropped).
MAX_TRACES = 10_000
MAX_CALLS_PER_TRACE = 1_000


def agent_name_at_start(span_name: str, attributes: Mapping[str, Any]) -> str | None:
    """The agent an agent-run span of another library names when it starts, else None.

    GenAI semconv (pydantic-ai, OpenLLMetry): `gen_ai.operation.name=invoke_agent` and
    `gen_ai.agent.name`. OpenInference: `openinference.span.kind=AGENT`, named after the agent (its
    `agent.name` attribute comes only at the end). OpenLLMetry: `traceloop.span.kind=agent`.
    """
    if attributes.get(attrs.GEN_AI_OPERATION_NAME) == attrs.OPERATION_INVOKE_AGENT:
        name = attributes.get(attrs.GEN_AI_AGENT_NAME)
    elif attributes.get(_OI_SPAN_KIND) == "AGENT":
        name = attributes.get(_OI_AGENT_NAME) or span_name
    elif attributes.get(_TRACELOOP_SPAN_KIND) == "agent":
        name = attributes.get(attrs.GEN_AI_AGENT_NAME) or attributes.get(_TRACELOOP_ENTITY_NAME)
    else:
        return None
    return name if isinstance(name, str) and name else None


def span_id_hex(span_id: int) -> str:
    return format(span_id, "016x")


class _Counted:
    """A call span already counted in its trace: what a later sibling is compared with."""

    __slots__ = ("end", "input_tokens", "model", "output_tokens", "response_id", "span_id", "start")

    def __init__(
        self,
        span_id: int,
        response_id: str | None,
        model: str | None,
        tokens: tuple[int, int] | None,
        start: int,
        end: int,
    ) -> None:
        self.span_id = span_id
        self.response_id = response_id
        self.model = model
        self.input_tokens, self.output_tokens = tokens if tokens is not None else (-1, -1)
        self.start = start
        self.end = end

    def same_request(self, other: _Counted) -> bool:
        # One request's spans overlap in time; sequential calls never do (even when a provider,
        # or a fake one, answers both with the same id and the same counts).
        if self.end < other.start or other.end < self.start:
            return False
        if self.response_id is not None and other.response_id is not None:
            return self.response_id == other.response_id
        if self.input_tokens < 0 or other.input_tokens < 0:
            return False  # no usage on one side: nothing to tell them apart by
        if (self.input_tokens, self.output_tokens) != (other.input_tokens, other.output_tokens):
            return False
        return self.model is None or other.model is None or same_model(self.model, other.model)


def same_model(a: str, b: str) -> bool:
    """`gpt-4o` and its dated snapshot `gpt-4o-2024-08-06` name one model (a request and a response)."""
    return a == b or a.startswith(b + "-") or b.startswith(a + "-")


def describe(span_id: int, attributes: Mapping[str, Any], start: int, end: int) -> _Counted:
    response_id = attributes.get(attrs.GEN_AI_RESPONSE_ID)
    try:
        usage = usage_of(attributes)
    except ValueError:
        usage = None
    return _Counted(
        span_id,
        response_id if isinstance(response_id, str) and response_id else None,
        model_of(attributes),
        (usage.input_tokens, usage.output_tokens) if usage is not None else None,
        start,
        end,
    )


class SiblingCalls:
    """Per trace, the call spans already counted; a later span of the same request finds its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[int, list[_Counted]] = {}

    def counted_sibling(self, trace_id: int, call: _Counted) -> int | None:
        """The span id already counted for the same request, else None (and `call` is remembered)."""
        with self._lock:
            calls = self._traces.get(trace_id)
            if calls is None:
                if len(self._traces) >= MAX_TRACES:
                    del self._traces[next(iter(self._traces))]
                self._traces[trace_id] = [call]
                return None
            for counted in calls:
                if counted.same_request(call):
                    return counted.span_id
            if len(calls) < MAX_CALLS_PER_TRACE:
                calls.append(call)
            return None

    def forget(self, trace_id: int) -> None:
        """The trace's local root ended: no span of it is still open here."""
        if self._traces:
            with self._lock:
                self._traces.pop(trace_id, None)

    def __len__(self) -> int:
        return len(self._traces)


class RecentOwnCalls:
    """costspan's own SDK call spans that ended lately, by trace and response id.

    Another library may record a request after costspan's span of it has ended, even after the
    trace's local root has ended and before matching was on (LiteLLM's OTel callback makes its
    `litellm_request` span in a logging thread, backdated to the call): that span finds here the one
    that counts. Bounded: the oldest entry goes first."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._calls: dict[tuple[int, str], tuple[int, int, int]] = {}
        self._maxsize = maxsize

    def remember(self, trace_id: int, response_id: str, span_id: int, start: int, end: int) -> None:
        calls = self._calls
        calls[trace_id, response_id] = (span_id, start, end)
        if len(calls) > self._maxsize:
            # Another thread may have evicted it first.
            with contextlib.suppress(StopIteration, RuntimeError, KeyError):
                del calls[next(iter(calls))]

    def counted(self, trace_id: int, call: _Counted) -> int | None:
        """The id of costspan's span of the same request (same response id, overlapping), else None."""
        if call.response_id is None:
            return None
        found = self._calls.get((trace_id, call.response_id))
        if found is None:
            return None
        span_id, start, end = found
        if end < call.start or call.end < start:
            return None
        return span_id

    def __len__(self) -> int:
        return len(self._calls)


# Span kinds other libraries label their spans with; only these are model calls.
_OI_CALL_KINDS = frozenset({"LLM", "EMBEDDING"})
_TRACELOOP_CALL_KINDS = frozenset({"llm"})


def not_a_call(attributes: Mapping[str, Any], kind: SpanKind) -> bool:
    """A span its own library labels as something else than a model call (an OpenInference CHAIN
    or AGENT, an OpenLLMetry workflow or task), or a server span: usage written onto it by another
    library (LiteLLM's callback writes onto the current span) does not make it a call."""
    oi_kind = attributes.get(_OI_SPAN_KIND)
    if oi_kind is not None and oi_kind not in _OI_CALL_KINDS:
        return True
    traceloop_kind = attributes.get(_TRACELOOP_SPAN_KIND)
    if traceloop_kind is not None and traceloop_kind not in _TRACELOOP_CALL_KINDS:
        return True
    return kind is SpanKind.SERVER or kind is SpanKind.CONSUMER


__all__ = [
    "COST_KEYS",
    "FRAMEWORK_AGENT_SEEN",
    "START_MARKERS",
    "RecentOwnCalls",
    "SiblingCalls",
    "agent_name_at_start",
    "describe",
    "not_a_call",
    "records_llm_spans",
    "same_model",
    "span_id_hex",
]
