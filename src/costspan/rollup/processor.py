"""CostSpanProcessor: stamps attribution on start, prices calls and rolls cost up before export.

Attributes must be written before any processor's `on_end` sees the span, whatever order the
processors were added in. On SDKs whose span processors get `_on_ending` (called once the span is
frozen, before any `on_end`), the processor finalises the span there, writing through the frozen
attribute mapping. Otherwise (older SDKs, or a processor that does not forward `_on_ending` to us)
`on_start` shadows the span instance's `end` with a wrapper that finalises the span and then runs
the real `end`.

The rollup ledger is a tree of `_Node`s hanging off the spans themselves: a node exists while its
span is open (or while an open descendant still points at it), so nothing remains once the roots
have ended. Money is an int in 1e-24 USD, so sums are exact.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from operator import add, itemgetter
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    Span,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.trace import StatusCode

from costspan import attributes as attrs
from costspan.attribution.values import clean_attribution
from costspan.otel_internals.context import baggage_and_span, current_context
from costspan.otel_internals.spans import (
    attributes_of,
    drop_attributes,
    put_valid,
    sdk_has_on_ending,
    write_frozen,
)
from costspan.pricing import RateCard, set_shared_rate_card, shared_rate_card
from costspan.rollup.call_pricing import (
    CACHE_READ,
    CACHE_WRITE,
    COST,
    FAILED,
    INPUT,
    LLM_CALLS,
    OUTPUT,
    REASONING,
    REMOTE_CALLS,
    REMOTE_COST,
    TOOL_CALLS,
    UNPRICED,
    CallPricer,
    apply_cost_attributes,
    parse_cost_attributes,
    usd,
)
from costspan.rollup.matching import (
    COST_KEYS,
    FRAMEWORK_AGENT_SEEN,
    START_MARKERS,
    RecentOwnCalls,
    SiblingCalls,
    agent_name_at_start,
    describe,
    not_a_call,
    records_llm_spans,
    span_id_hex,
)
from costspan.rollup.usage import CALL_MARKER_KEYS, is_llm_call
from costspan.telemetry.faults import FaultCounter, LogOnce
from costspan.telemetry.fork_safe import reopen_lock_after_fork

# The rollup attributes of tally slots FAILED to REMOTE_CALLS, in slot order: written where not 0.
_ROLLUP_COUNT_KEYS = tuple(
    {
        FAILED: attrs.ROLLUP_FAILED_CALLS,
        UNPRICED: attrs.ROLLUP_UNPRICED_CALLS,
        INPUT: attrs.ROLLUP_INPUT_TOKENS,
        OUTPUT: attrs.ROLLUP_OUTPUT_TOKENS,
        CACHE_READ: attrs.ROLLUP_CACHE_READ_TOKENS,
        CACHE_WRITE: attrs.ROLLUP_CACHE_WRITE_TOKENS,
        REASONING: attrs.ROLLUP_REASONING_TOKENS,
        TOOL_CALLS: attrs.ROLLUP_TOOL_CALLS,
        REMOTE_CALLS: attrs.ROLLUP_REMOTE_LLM_CALLS,
    }[slot]
    for slot in range(FAILED, REMOTE_CALLS + 1)
)
_count_of = itemgetter(1)


class _Node:
    """A span's entry in the rollup ledger."""

    __slots__ = ("agent", "call_below", "children_tally", "has_children", "open", "parent", "start")

    def __init__(self, parent: _Node | None, start: int) -> None:
        self.parent = parent
        self.open = True
        self.start = start
        self.children_tally: list[int] | None = None
        # Set when a child span starts under this one: a span that never had a child can close
        # its entry without taking the ledger lock, since no child can be adding to it.
        self.has_children = False
        # The agent a framework's enclosing agent span named (see costspan.rollup.matching).
        self.agent: str | None = None if parent is None else parent.agent
        # The last counted call span rolled up into this one (a wrapper's duplicate points at it).
        self.call_below: Any = None


# The ledger parent of a span whose parent span had already ended when it started (LiteLLM creates
# its request spans after the call, from a logging thread): never open, so the span is late.
class _EndedParent:
    """Stands for the ended parent in the ledger: never open, names no agent."""

    __slots__ = ("has_children",)
    open = False
    parent = None
    agent = None
    start = 0
    call_below = None


_ENDED_PARENT: Any = _EndedParent()

# Where an instrumentor that already priced its call leaves the call's tally on the SDK span
# (instance attribute), so the processor rolls it up without reading the attributes back.
CALL_TALLY_ATTR = "_costspan_call_tally"
_FORWARDING_PROCESSORS = (SynchronousMultiSpanProcessor, ConcurrentMultiSpanProcessor)
_NO_TALLY: Any = object()
# Every CostSpanProcessor, for `subtree_tally_so_far` (read by a server answering a request).
_PROCESSORS: weakref.WeakSet[CostSpanProcessor] = weakref.WeakSet()
_COSTSPAN_SCOPE = "costspan"  # costspan.task/agent/step/tool spans: never an LLM call
# A call span starting more than this before its parent was backdated (clocks of different
# libraries round start times differently by a few microseconds).
_BACKDATED_NS = 1_000_000


class CostSpanProcessor(SpanProcessor):
    """Prices LLM and tool spans, stamps attribution from baggage, rolls cost up to ancestors.

    Add it to a TracerProvider before or after the exporting processors; either way every exporter
    sees the final attributes. It never raises into the application: a failure is counted in
    `faults()` and logged once.
    """

    def __init__(
        self, rate_card: RateCard | None = None, *, cost_attributes: Iterable[str] | str | None = None
    ) -> None:
        """`rate_card` and `cost_attributes` (optional cost attributes on priced calls, e.g.
        `("parts",)`), when given, apply process-wide: costspan's instrumentors price with them too.
        A bad `cost_attributes` entry raises ValueError."""
        if cost_attributes is not None:
            apply_cost_attributes(parse_cost_attributes(cost_attributes))
        if rate_card is not None:
            set_shared_rate_card(rate_card)
        self._rate_card = rate_card if rate_card is not None else shared_rate_card()
        self._pricer = CallPricer(self._rate_card)
        self._node_attr = f"_costspan_node_{id(self):x}"
        self._lock = threading.Lock()
        reopen_lock_after_fork(self)  # a lock held at fork time would hang the child's first span end
        self._faults = FaultCounter()
        self._on_ending_supported = sdk_has_on_ending()
        # The span processor (the provider's multi-processor) known to forward `_on_ending` to us.
        self._forwarder: object = None
        _PROCESSORS.add(self)
        # Turned on when a GenAI span of another library starts: from then on calls are matched
        # with their siblings (costspan.rollup.matching). costspan alone never pays for it.
        self._matching = False
        self._last_scope: object = None
        self._siblings = SiblingCalls()
        self._recent_own = RecentOwnCalls()
        self._usage_on_non_calls = 0
        self._usage_on_non_calls_log = LogOnce()

    @property
    def rate_card(self) -> RateCard:
        return self._rate_card

    def faults(self) -> dict[str, int]:
        """How many times each hook swallowed an exception."""
        return self._faults.counts()

    def usage_on_non_calls(self) -> int:
        """How many spans that are not LLM calls carried usage attributes (left unpriced)."""
        return self._usage_on_non_calls

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            ctx = parent_context if parent_context is not None else current_context()
            entries, parent_span = baggage_and_span(ctx)
            if entries:
                self._stamp_attribution(span, entries)
            node_attr = self._node_attr
            parent = getattr(parent_span, node_attr, None)
            if parent is not None:
                parent.has_children = True
            elif getattr(parent_span, "end_time", None) is not None:
                parent = _ENDED_PARENT  # a child of a span that already ended here: late
            node = _Node(parent, span._start_time)
            setattr(span, node_attr, node)
            if not self._matching:
                scope = span.instrumentation_scope
                if scope is not self._last_scope:
                    self._last_scope = scope
                    self._matching = scope is not None and records_llm_spans(scope.name)
            attributes = attributes_of(span)
            if attributes and not START_MARKERS.isdisjoint(attributes):
                self._other_library_start(span, attributes, node)
            if node.agent is not None and attrs.AGENT not in attributes:
                agent_attribute = {attrs.AGENT: node.agent}
                if not put_valid(span, agent_attribute):
                    span.set_attributes(agent_attribute)
            forwarder = getattr(span, "_span_processor", None)
            if forwarder is not self._forwarder and not self._forwards_on_ending(forwarder):
                span.end = functools.partial(self._end, span, node)  # type: ignore[method-assign]
        except Exception as exc:
            self._faults.record("on_start", exc)

    def _other_library_start(self, span: Span, attributes: Any, node: _Node) -> None:
        """A GenAI span started by another library: turn matching on; an agent run names its agent."""
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else ""
        if scope_name == _COSTSPAN_SCOPE or scope_name.startswith("costspan."):
            return
        self._matching = True
        agent = agent_name_at_start(span.name, attributes)
        if agent is not None:
            node.agent = agent
            FRAMEWORK_AGENT_SEEN[0] = True

    def _forwards_on_ending(self, forwarder: object) -> bool:
        if (
            self._on_ending_supported
            and type(forwarder) in _FORWARDING_PROCESSORS
            and self in forwarder._span_processors  # type: ignore[attr-defined]
        ):
            self._forwarder = forwarder
            return True
        return False

    def _on_ending(self, span: Span) -> None:
        try:
            node = span.__dict__.pop(self._node_attr, None)
            if node is None:  # not ours, or already finalised by the `end` wrapper
                return
            new_attributes = self._finish(span, node)
            if new_attributes and not put_valid(span, new_attributes):
                write_frozen(span, new_attributes)
        except Exception as exc:
            self._faults.record("span end", exc)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _stamp_attribution(self, span: Span, entries: Mapping[str, object]) -> None:
        present = attributes_of(span)
        # Cleaned: baggage set by hand or by a propagator other than costspan's guard may hold any
        # object, control characters or very long values (see costspan.attribution.values).
        stamp = {key: value for key, value in clean_attribution(entries).items() if key not in present}
        if not stamp:
            return
        # A span is not yet shared while on_start runs, so its dict can take valid strings directly.
        if not (all(type(value) is str for value in stamp.values()) and put_valid(span, stamp)):
            span.set_attributes(stamp)

    def _end(self, span: Span, node: _Node, end_time: int | None = None) -> None:
        try:
            new_attributes = self._finish(span, node)
            if new_attributes:
                span.set_attributes(new_attributes)
        except Exception as exc:
            self._faults.record("span end", exc)
        finally:
            try:
                # Drop the wrapper and the node: breaks the span -> partial -> span cycle.
                del span.end
                delattr(span, self._node_attr)
            except Exception as exc:
                self._faults.record("span end cleanup", exc)
        type(span).end(span, end_time)

    def _finish(self, span: Span, node: _Node) -> dict[str, Any]:
        """Close the span's ledger entry; the attributes to write on it."""
        new_attributes: dict[str, Any] = {}
        priced = span.__dict__.pop(CALL_TALLY_ATTR, _NO_TALLY)
        own = self._tally_own(span, attributes_of(span), new_attributes) if priced is _NO_TALLY else priced
        if own is not None and own[LLM_CALLS]:
            if node.has_children or self._matching:
                own = self._counted_once(span, node, own, new_attributes, priced is not _NO_TALLY)
            if own is not None and priced is not _NO_TALLY:
                response_id = attributes_of(span).get(attrs.GEN_AI_RESPONSE_ID)
                if type(response_id) is str:
                    context = span.context
                    self._recent_own.remember(
                        context.trace_id,
                        response_id,
                        context.span_id,
                        node.start,
                        span.end_time or time.time_ns(),
                    )
        late = False
        # No child yet, and nothing to hand up (no own tally, or no parent): closed without the lock.
        unlocked = not node.has_children and (own is None or node.parent is None)
        if unlocked:
            node.open = False  # before reading has_children again: a child starting now sees it closed
            unlocked = not node.has_children
        if unlocked:
            if own is None:
                return new_attributes
            tally: list[int] | None = own
        else:
            with self._lock:
                node.open = False
                tally = node.children_tally
                node.children_tally = None
                if own is not None:
                    tally = own if tally is None else list(map(add, tally, own))
                if tally is not None:
                    ancestor = node.parent
                    while ancestor is not None and not ancestor.open:
                        ancestor = ancestor.parent
                    if ancestor is not None:
                        into = ancestor.children_tally
                        ancestor.children_tally = list(tally) if into is None else list(map(add, into, tally))
                        if tally[LLM_CALLS]:
                            ancestor.call_below = (
                                span if own is not None and own[LLM_CALLS] else node.call_below
                            )
                    elif node.parent is not None:
                        late = True
                    if (
                        own is not None
                        and node.parent is not None
                        and node.start < node.parent.start - _BACKDATED_NS
                    ):
                        late = True  # backdated: started before its parent (created after the call)
        if node.parent is None and self._matching:
            self._siblings.forget(span.context.trace_id)
        # Only a span with a call below it gets the rollup: on a call with nothing under it the rollup
        # would repeat its own gen_ai.usage.* and gen_ai.usage.cost (bytes on the wire, no information).
        if tally is not None and tally is not own and (tally[LLM_CALLS] or tally[TOOL_CALLS]):
            new_attributes[attrs.ROLLUP_COST_USD] = usd(tally[COST])
            new_attributes[attrs.ROLLUP_LLM_CALLS] = tally[LLM_CALLS]
            # zip and filter in C: a Python loop over the 8 slots costs more than the rest here.
            new_attributes.update(
                filter(_count_of, zip(_ROLLUP_COUNT_KEYS, tally[FAILED:REMOTE_COST], strict=True))
            )
            if tally[REMOTE_COST]:
                new_attributes[attrs.ROLLUP_REMOTE_COST_USD] = usd(tally[REMOTE_COST])
        if late:
            new_attributes[attrs.ROLLUP_LATE] = True
        return new_attributes

    def tally_so_far(self, span: object) -> list[int] | None:
        """What the descendants of an open span that have ended so far add up to (None: nothing)."""
        node = getattr(span, self._node_attr, None)
        if node is None:
            return None
        with self._lock:
            tally = node.children_tally
            return None if tally is None else list(tally)

    def _counted_once(
        self, span: Span, node: _Node, own: list[int], out: dict[str, Any], own_sdk_span: bool
    ) -> list[int] | None:
        """The call's own tally, or None when another span counts the same request; then
        the span is marked a duplicate (costspan.rollup.matching).

        costspan's own SDK span (`own_sdk_span`) is one request on the wire: a call below it is
        another request (a tool that calls a model inside an automatic function-calling loop),
        never the same one, so it is never a wrapper."""
        with self._lock:
            below = node.children_tally
            call_below = node.call_below
        if not own_sdk_span and below is not None and below[LLM_CALLS] and call_below is not None:
            counted_in: int | None = call_below.context.span_id
        elif self._matching:
            context = span.context
            end = span.end_time or time.time_ns()
            call = describe(context.span_id, {**attributes_of(span), **out}, node.start, end)
            counted_in = self._siblings.counted_sibling(context.trace_id, call)
            if counted_in is None and not own_sdk_span:
                counted_in = self._recent_own.counted(context.trace_id, call)
        else:
            counted_in = None
        if counted_in is None:
            return own
        for key in COST_KEYS:
            out.pop(key, None)
        drop_attributes(span, COST_KEYS)
        out[attrs.COST_STATUS] = attrs.STATUS_DUPLICATE
        out[attrs.COST_COUNTED_IN] = span_id_hex(counted_in)
        return None

    def _tally_own(self, span: Span, attributes: Any, out: dict[str, Any]) -> list[int] | None:
        """This span's own call cost and counts, with the pricing attributes it needs in `out`."""
        if CALL_MARKER_KEYS.isdisjoint(attributes):  # most spans (HTTP, DB, ...): checked in C
            return None
        if attributes.get(attrs.GEN_AI_OPERATION_NAME) == attrs.OPERATION_EXECUTE_TOOL:
            return self._pricer.price_tool(attributes, out)
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else None
        if not is_llm_call(attributes, scope_name):
            return None
        if scope_name == _COSTSPAN_SCOPE or not_a_call(attributes, span.kind):
            self._usage_on_non_calls += 1
            self._usage_on_non_calls_log.warn(
                "usage on a span that is not a call",
                "costspan: span %r is not an LLM call but carries model or usage attributes "
                "(written by another library); it is not priced",
                span.name,
            )
            return None
        if attributes.get(attrs.COST_STATUS) == attrs.STATUS_DUPLICATE:
            return None  # already said to be counted elsewhere (another costspan process, the app)
        failed = span.status.status_code is StatusCode.ERROR
        if scope_name is None or not scope_name.startswith("costspan."):
            self._matching = True
        return self._pricer.price_llm(attributes, failed, span.start_time or 0, out)


def subtree_tally_so_far(span: object) -> list[int] | None:
    """The tally of an open span's ended descendants, from the processor that keeps its ledger entry."""
    for processor in list(_PROCESSORS):
        tally = processor.tally_so_far(span)
        if tally is not None:
            return tally
    return None


__all__ = ["CALL_TALLY_ATTR", "CostSpanProcessor", "subtree_tally_so_far"]
