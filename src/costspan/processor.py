"""CostSpanProcessor: stamps attribution on start, prices calls and rolls cost up before export.

Attributes must be written before `Span.end()` freezes the span, and before any other processor's
`on_end` sees it, whatever order the processors were added in. So `on_start` shadows the span
instance's `end` with a wrapper that finalises the span and then runs the real `end`.

The rollup ledger is a tree of `_Node`s hanging off the spans themselves: a node exists while its
span is open (or while an open descendant still points at it), so nothing remains once the roots
have ended. Money is an int in 1e-24 USD, so sums are exact.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from costspan import attributes as attrs
from costspan.call_pricing import (
    CACHE_READ,
    CACHE_WRITE,
    COST,
    FAILED,
    INPUT,
    LLM_CALLS,
    OUTPUT,
    REASONING,
    TALLY_SIZE,
    TOOL_CALLS,
    UNPRICED,
    CallPricer,
    usd,
)
from costspan.faults import FaultCounter
from costspan.pricing import RateCard, set_shared_rate_card, shared_rate_card
from costspan.usage import is_llm_call

_ROLLUP_COUNT_KEYS = (
    (FAILED, attrs.ROLLUP_FAILED_CALLS),
    (UNPRICED, attrs.ROLLUP_UNPRICED_CALLS),
    (INPUT, attrs.ROLLUP_INPUT_TOKENS),
    (OUTPUT, attrs.ROLLUP_OUTPUT_TOKENS),
    (CACHE_READ, attrs.ROLLUP_CACHE_READ_TOKENS),
    (CACHE_WRITE, attrs.ROLLUP_CACHE_WRITE_TOKENS),
    (REASONING, attrs.ROLLUP_REASONING_TOKENS),
    (TOOL_CALLS, attrs.ROLLUP_TOOL_CALLS),
)


class _Node:
    """A span's entry in the rollup ledger."""

    __slots__ = ("children_tally", "open", "parent")

    def __init__(self, parent: _Node | None) -> None:
        self.parent = parent
        self.open = True
        self.children_tally: list[int] | None = None


def _attributes_of(span: Span) -> Any:
    # The SDK keeps attributes in BoundedAttributes._dict; reading it directly avoids a raised and
    # caught KeyError per absent key. Fall back to the public (slower) mapping when it is not there.
    bounded = span._attributes
    plain = getattr(bounded, "_dict", None)
    return plain if isinstance(plain, dict) else dict(span.attributes or {})


class CostSpanProcessor(SpanProcessor):
    """Prices LLM and tool spans, stamps attribution from baggage, rolls cost up to ancestors.

    Add it to a TracerProvider before or after the exporting processors; either way every exporter
    sees the final attributes. It never raises into the application: a failure is counted in
    `faults()` and logged once.
    """

    def __init__(self, rate_card: RateCard | None = None) -> None:
        if rate_card is not None:
            set_shared_rate_card(rate_card)
        self._rate_card = rate_card if rate_card is not None else shared_rate_card()
        self._pricer = CallPricer(self._rate_card)
        self._node_attr = f"_costspan_node_{id(self):x}"
        self._lock = threading.Lock()
        self._faults = FaultCounter()

    @property
    def rate_card(self) -> RateCard:
        return self._rate_card

    def faults(self) -> dict[str, int]:
        """How many times each hook swallowed an exception."""
        return self._faults.counts()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._stamp_attribution(span, parent_context)
            parent = trace.get_current_span(parent_context)
            node = _Node(getattr(parent, self._node_attr, None))
            setattr(span, self._node_attr, node)
            span.end = functools.partial(self._end, span, node)  # type: ignore[method-assign]
        except Exception as exc:
            self._faults.record("on_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _stamp_attribution(self, span: Span, parent_context: Context | None) -> None:
        entries = baggage.get_all(parent_context)
        if not entries:
            return
        present = _attributes_of(span)
        stamp = {
            key: value
            for key in attrs.ATTRIBUTION_KEYS
            if (value := entries.get(key)) is not None and key not in present
        }
        if stamp:
            span.set_attributes(stamp)

    def _end(self, span: Span, node: _Node, end_time: int | None = None) -> None:
        try:
            self._finish(span, node)
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

    def _finish(self, span: Span, node: _Node) -> None:
        attributes = _attributes_of(span)
        new_attributes: dict[str, Any] = {}
        own = self._tally_own(span, attributes, new_attributes)
        late = False
        with self._lock:
            node.open = False
            tally = node.children_tally
            node.children_tally = None
            if own is not None:
                if tally is None:
                    tally = own
                else:
                    for i in range(TALLY_SIZE):
                        tally[i] += own[i]
            if tally is not None:
                ancestor = node.parent
                while ancestor is not None and not ancestor.open:
                    ancestor = ancestor.parent
                if ancestor is not None:
                    into = ancestor.children_tally
                    if into is None:
                        ancestor.children_tally = list(tally)
                    else:
                        for i in range(TALLY_SIZE):
                            into[i] += tally[i]
                elif node.parent is not None:
                    late = True
        if tally is not None and (tally[LLM_CALLS] or tally[TOOL_CALLS]):
            new_attributes[attrs.ROLLUP_COST_USD] = usd(tally[COST])
            new_attributes[attrs.ROLLUP_LLM_CALLS] = tally[LLM_CALLS]
            for slot, key in _ROLLUP_COUNT_KEYS:
                if tally[slot]:
                    new_attributes[key] = tally[slot]
            if late:
                new_attributes[attrs.ROLLUP_LATE] = True
        if new_attributes:
            span.set_attributes(new_attributes)

    def _tally_own(self, span: Span, attributes: Any, out: dict[str, Any]) -> list[int] | None:
        """This span's own call cost and counts, with the pricing attributes it needs in `out`."""
        if attributes.get(attrs.GEN_AI_OPERATION_NAME) == attrs.OPERATION_EXECUTE_TOOL:
            return self._pricer.price_tool(attributes, out)
        scope = span.instrumentation_scope
        if not is_llm_call(attributes, scope.name if scope is not None else None):
            return None
        failed = span.status.status_code is StatusCode.ERROR
        return self._pricer.price_llm(attributes, failed, span.start_time or 0, out)


__all__ = ["CostSpanProcessor"]
