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
from decimal import Decimal
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from costspan import attributes as attrs
from costspan.faults import FaultCounter, LogOnce
from costspan.pricing import UNITS_PER_USD, RateCard
from costspan.usage import InvalidUsage, is_llm_call, model_of, provider_of, usage_of

STATUS_INVALID_USAGE = "invalid_usage"

# Tally slots: one list of ints per span subtree.
_COST, _LLM_CALLS, _FAILED, _UNPRICED, _IN, _OUT, _CACHE_READ, _CACHE_WRITE, _REASONING, _TOOL_CALLS = range(
    10
)
_TALLY_SIZE = 10
_ROLLUP_COUNT_KEYS = (
    (_FAILED, attrs.ROLLUP_FAILED_CALLS),
    (_UNPRICED, attrs.ROLLUP_UNPRICED_CALLS),
    (_IN, attrs.ROLLUP_INPUT_TOKENS),
    (_OUT, attrs.ROLLUP_OUTPUT_TOKENS),
    (_CACHE_READ, attrs.ROLLUP_CACHE_READ_TOKENS),
    (_CACHE_WRITE, attrs.ROLLUP_CACHE_WRITE_TOKENS),
    (_REASONING, attrs.ROLLUP_REASONING_TOKENS),
    (_TOOL_CALLS, attrs.ROLLUP_TOOL_CALLS),
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


def usd(units: int) -> float:
    return units / UNITS_PER_USD


def _units_from_usd(value: float) -> int:
    return round(Decimal(repr(value)).scaleb(24))


class CostSpanProcessor(SpanProcessor):
    """Prices LLM and tool spans, stamps attribution from baggage, rolls cost up to ancestors.

    Add it to a TracerProvider before or after the exporting processors; either way every exporter
    sees the final attributes. It never raises into the application: a failure is counted in
    `faults()` and logged once.
    """

    def __init__(self, rate_card: RateCard | None = None) -> None:
        self._rate_card = rate_card if rate_card is not None else RateCard.default()
        self._node_attr = f"_costspan_node_{id(self):x}"
        self._lock = threading.Lock()
        self._faults = FaultCounter()
        self._unknown_models = LogOnce()
        self._invalid_usage = LogOnce()

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
                    for i in range(_TALLY_SIZE):
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
                        for i in range(_TALLY_SIZE):
                            into[i] += tally[i]
                elif node.parent is not None:
                    late = True
        if tally is not None and (tally[_LLM_CALLS] or tally[_TOOL_CALLS]):
            new_attributes[attrs.ROLLUP_COST_USD] = usd(tally[_COST])
            new_attributes[attrs.ROLLUP_LLM_CALLS] = tally[_LLM_CALLS]
            for slot, key in _ROLLUP_COUNT_KEYS:
                if tally[slot]:
                    new_attributes[key] = tally[slot]
            if late:
                new_attributes[attrs.ROLLUP_LATE] = True
        if new_attributes:
            span.set_attributes(new_attributes)

    def _tally_own(self, span: Span, attributes: Any, out: dict[str, Any]) -> list[int] | None:
        """This span's own call cost and counts, with the pricing attributes it needs in `out`."""
        operation = attributes.get(attrs.GEN_AI_OPERATION_NAME)
        if operation == attrs.OPERATION_EXECUTE_TOOL:
            return self._tally_tool(attributes, out)
        if not is_llm_call(attributes):
            return None
        tally = [0] * _TALLY_SIZE
        tally[_LLM_CALLS] = 1
        failed = span.status.status_code is StatusCode.ERROR
        if failed:
            tally[_FAILED] = 1
        try:
            usage = usage_of(attributes)
        except InvalidUsage as exc:
            self._invalid_usage.warn(
                str(exc), "costspan: invalid usage attribute %s; the call is left unpriced", exc
            )
            out[attrs.COST_STATUS] = STATUS_INVALID_USAGE
            tally[_UNPRICED] = 1
            return tally
        if usage is not None:
            tally[_IN], tally[_OUT], tally[_CACHE_READ], tally[_CACHE_WRITE], tally[_REASONING] = usage
        existing_cost = attributes.get(attrs.GEN_AI_USAGE_COST)
        if isinstance(existing_cost, int | float) and not isinstance(existing_cost, bool):
            tally[_COST] = _units_from_usd(existing_cost)
            return tally
        if usage is None:
            out[attrs.COST_STATUS] = attrs.STATUS_NO_USAGE
            if not failed:
                tally[_UNPRICED] = 1
            return tally
        model = model_of(attributes)
        provider = provider_of(attributes)
        try:
            price = (
                self._rate_card.price(
                    provider,
                    model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    start_time_ns=span.start_time or 0,
                )
                if model is not None
                else None
            )
        except ValueError as exc:
            self._invalid_usage.warn(
                f"{model}:{exc}",
                "costspan: usage of a %s call cannot be priced (%s); left unpriced",
                model,
                exc,
            )
            out[attrs.COST_STATUS] = STATUS_INVALID_USAGE
            tally[_UNPRICED] = 1
            return tally
        if price is None:
            self._unknown_models.warn(
                f"{provider}/{model}",
                "costspan: no price for model %r (provider %r); its calls are marked "
                "costspan.cost.status=unknown_model. Add it to a rate-card override file.",
                model,
                provider,
            )
            out[attrs.COST_STATUS] = attrs.STATUS_UNKNOWN_MODEL
            tally[_UNPRICED] = 1
            return tally
        tally[_COST] = price.total
        out[attrs.GEN_AI_USAGE_COST] = usd(price.total)
        for part, key in (
            (price.input, attrs.COST_INPUT_USD),
            (price.output, attrs.COST_OUTPUT_USD),
            (price.cache_read, attrs.COST_CACHE_READ_USD),
            (price.cache_write, attrs.COST_CACHE_WRITE_USD),
        ):
            if part:
                out[key] = usd(part)
        out[attrs.COST_STATUS] = attrs.STATUS_PRICED
        out[attrs.PRICE_SOURCE] = price.source
        return tally

    def _tally_tool(self, attributes: Any, out: dict[str, Any]) -> list[int] | None:
        existing_cost = attributes.get(attrs.GEN_AI_USAGE_COST)
        if isinstance(existing_cost, int | float) and not isinstance(existing_cost, bool):
            units = _units_from_usd(existing_cost)
            if attrs.COST_STATUS not in attributes:
                out[attrs.COST_STATUS] = attrs.STATUS_PRICED
                out[attrs.PRICE_SOURCE] = "cost_usd"
        else:
            name = attributes.get(attrs.GEN_AI_TOOL_NAME)
            price = self._rate_card.tool_price(name) if isinstance(name, str) else None
            if price is None:
                return None
            units = price.total
            out[attrs.GEN_AI_USAGE_COST] = usd(units)
            out[attrs.COST_STATUS] = attrs.STATUS_PRICED
            out[attrs.PRICE_SOURCE] = price.source
        tally = [0] * _TALLY_SIZE
        tally[_COST] = units
        tally[_TOOL_CALLS] = 1
        return tally


__all__ = ["CostSpanProcessor"]
