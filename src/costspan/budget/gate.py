"""The budget hook on each LLM call: decide before the request is sent, charge once it is priced.

`admit(call, kwargs)` runs in the instrumentor's wrapper after the call's span started and before
the SDK sends anything. It reads the spend of every budget in effect (entered blocks in the
OpenTelemetry context, plus budgets configured for the call's task type and customer), then:
downgrades the model past `downgrade_at`; for a budget whose spend reached its limit (or whose
pre-flight worst case would cross it) it raises `BudgetExceeded`, warns, or calls the user's
callable. A call to a model the rate card prices at $0 (every token kind) cannot overspend and
passes a spent budget. `CallBudget.charge(units)` adds the priced cost to each distinct account once.
Everything here except the refusal itself (and exceptions from the user's callable) is guarded:
faults are counted in the instrumentation FAULTS and the call goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.metrics import MeterProvider, get_meter

from costspan import attributes as attrs
from costspan.budget.accounts import (
    CONTEXT_KEY,
    ENTERED_ANY,
    REGISTRY,
    WARNED,
    Account,
    ActiveBudget,
    registry,
    wall_clock_now,
)
from costspan.budget.errors import BudgetExceeded, format_usd
from costspan.budget.spec import BudgetSpec, units_to_usd
from costspan.telemetry.faults import INSTRUMENTATION_FAULTS

if TYPE_CHECKING:
    from costspan.pricing import RateCard


class CallSpan(Protocol):
    """What the gate reads and sets on an instrumentor's call (`costspan.instrumentation._call`)."""

    span: Any
    attributes: dict[str, Any]
    budget: CallBudget | None
    _attribution: Mapping[str, str]
    _state: Any

    def end(self, error: BaseException | None = None) -> None: ...


logger = logging.getLogger("costspan.budget")

EXCEEDED_METRIC = "costspan.budget.exceeded"
DOWNGRADES_METRIC = "costspan.budget.downgrades"
# Characters per token assumed by the pre-flight input estimate.
CHARS_PER_TOKEN = 4
# A stream's abort check reads a remote ledger at most this often.
REMOTE_STREAM_CHECK_S = 0.5
_TEXT_FIELDS = ("messages", "input", "contents", "system", "instructions", "prompt", "tools")


class BudgetMetrics:
    """`costspan.budget.exceeded` ({call}, by scope and action) and `costspan.budget.downgrades`."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = get_meter("costspan", meter_provider=meter_provider)
        self.exceeded = meter.create_counter(
            EXCEEDED_METRIC, unit="{call}", description="LLM calls that found a budget spent"
        )
        self.downgrades = meter.create_counter(
            DOWNGRADES_METRIC, unit="{call}", description="LLM calls sent to a cheaper model by a budget"
        )


class Applied:
    """A budget in effect for one call, and the account its spend is counted in."""

    __slots__ = ("account", "spec", "subject")

    def __init__(self, spec: BudgetSpec, subject: str | None, account: Account) -> None:
        self.spec = spec
        self.subject = subject
        self.account = account

    @property
    def scope(self) -> str:
        return "block" if self.account.key.startswith("block:") else self.spec.scope

    def exceeded(self, spent: int, model: str | None, **extra: Any) -> BudgetExceeded:
        return BudgetExceeded(
            scope=self.scope,
            subject=self.subject if self.scope != "block" else None,
            limit_usd=self.spec.limit_usd,
            spent_usd=units_to_usd(spent),
            model=model,
            name=self.spec.name,
            **extra,
        )


class CallBudget:
    """The budgets that apply to one call (or tool), resolved where it was made."""

    __slots__ = ("_next_remote_check", "accounts", "applied")

    def __init__(self, applied: list[Applied], accounts: dict[str, Account]) -> None:
        self.applied = applied
        self.accounts = accounts
        self._next_remote_check = 0.0

    def charge(self, units: int) -> None:
        """Add a priced cost to each distinct account once."""
        if units <= 0:
            return
        for account in self.accounts.values():
            account.add(units)

    def stream_refusal(self, model: str | None) -> tuple[Applied, BudgetExceeded] | None:
        """For a stream in flight: the refusal when a budget with abort_streams=True is spent."""
        now = time.monotonic()
        for applied in self.applied:
            spec = applied.spec
            if not spec.abort_streams or spec.on_exceed != "raise":
                continue
            account = applied.account
            if getattr(account, "remote", False):
                if now < self._next_remote_check:
                    continue
                self._next_remote_check = now + REMOTE_STREAM_CHECK_S
            spent = account.spent()
            if spent >= spec.limit:
                return applied, applied.exceeded(spent, model, in_stream=True)
        return None


def plan(
    attribution: Mapping[str, object] | None = None, ctx: otel_context.Context | None = None
) -> CallBudget | None:
    """The budgets in effect in `ctx` (default: the current context), or None when there are none."""
    stack: tuple[ActiveBudget, ...] | None = otel_context.get_value(CONTEXT_KEY, ctx)  # type: ignore[assignment]
    configured = registry()
    if not stack and configured.empty:
        return None
    now = wall_clock_now()
    applied: list[Applied] = []
    accounts: dict[str, Account] = {}
    for active in stack or ():
        account = accounts.setdefault((a := active.account(now)).key, a)
        applied.append(Applied(active.spec, active.subject, account))
    if not configured.empty:
        if attribution is None:
            attribution = baggage.get_all(ctx)
        for spec, subject, found in configured.for_call(attribution, now):
            account = accounts.setdefault(found.key, found)
            applied.append(Applied(spec, subject, account))
    return CallBudget(applied, accounts) if applied else None


# --- pre-flight -------------------------------------------------------------------------------


def _text_chars(value: Any, depth: int = 0) -> int:
    if depth > 12 or value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_text_chars(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_text_chars(v, depth + 1) for v in value)
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        return sum(_text_chars(v, depth + 1) for k, v in fields.items() if not k.startswith("_"))
    return 0


def estimate_input_tokens(kwargs: Mapping[str, Any]) -> int:
    """About one token per 4 characters of the request's text (messages, input, contents, system,
    instructions, prompt, tools)."""
    chars = sum(_text_chars(kwargs.get(field)) for field in _TEXT_FIELDS)
    return math.ceil(chars / CHARS_PER_TOKEN)


def worst_case(
    rate_card: RateCard, provider: str | None, model: str, max_tokens: object, kwargs: Mapping[str, Any]
) -> int | None:
    """Units the call could cost at most: estimated input + max_tokens x output price (output 0
    when the request sets no max_tokens); None for a model the card does not price."""
    output = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else 0
    price = rate_card.price(
        provider,
        model,
        input_tokens=estimate_input_tokens(kwargs),
        output_tokens=max(0, output),
        start_time_ns=time.time_ns(),
    )
    return price.total if price is not None else None


# --- the decision -----------------------------------------------------------------------------


class _Decision:
    __slots__ = ("callbacks", "events", "model", "refusal")

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.events: list[tuple[Applied, BudgetExceeded, str]] = []
        self.callbacks: list[tuple[Any, BudgetExceeded]] = []
        self.refusal: BudgetExceeded | None = None


def _is_free(call: CallSpan, model: str | None) -> bool:
    """Whether the rate card prices `model` at $0 for every token kind (bundled, or an override)."""
    if not model:
        return False
    return call._state.pricer.rate_card.is_free(
        call.attributes.get(attrs.GEN_AI_PROVIDER_NAME), model, start_time_ns=time.time_ns()
    )


def _decide(call: CallSpan, budget: CallBudget, kwargs: Mapping[str, Any]) -> _Decision:
    spent = {key: account.spent() for key, account in budget.accounts.items()}
    model = call.attributes.get(attrs.GEN_AI_REQUEST_MODEL)
    decision = _Decision(model)
    for applied in budget.applied:
        spec = applied.spec
        if spec.downgrade and decision.model and spent[applied.account.key] >= (spec.downgrade_at or 0):
            target = spec.downgrade_target(decision.model)
            if target is not None and target != decision.model:
                decision.model = target
    free: bool | None = None  # the call costs $0 whatever its usage: no budget can be overspent by it
    for applied in budget.applied:
        spec = applied.spec
        used = spent[applied.account.key]
        exceeded: BudgetExceeded | None = None
        if used >= spec.limit:
            if free is None:
                free = _is_free(call, decision.model)
            if not free:
                exceeded = applied.exceeded(used, decision.model)
        elif spec.preflight and decision.model:
            worst = worst_case(
                call._state.pricer.rate_card,
                call.attributes.get(attrs.GEN_AI_PROVIDER_NAME),
                decision.model,
                call.attributes.get("gen_ai.request.max_tokens"),
                kwargs,
            )
            if worst is not None and used + worst > spec.limit:
                exceeded = applied.exceeded(used, decision.model, worst_case_usd=units_to_usd(worst))
        if exceeded is None:
            continue
        decision.events.append((applied, exceeded, spec.action))
        if spec.on_exceed == "raise":
            if decision.refusal is None:
                decision.refusal = exceeded
        elif callable(spec.on_exceed):
            decision.callbacks.append((spec.on_exceed, exceeded))
    return decision


def _event_attributes(applied: Applied, exc: BudgetExceeded, action: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        attrs.BUDGET_SCOPE: exc.scope,
        attrs.BUDGET_LIMIT_USD: float(exc.limit_usd),
        attrs.BUDGET_SPENT_USD: float(exc.spent_usd),
        attrs.BUDGET_ACTION: action,
    }
    if exc.name:
        out[attrs.BUDGET_NAME] = exc.name
    if exc.worst_case_usd is not None:
        out[attrs.BUDGET_WORST_CASE_USD] = float(exc.worst_case_usd)
    return out


def _log_first(applied: Applied, exc: BudgetExceeded, action: str) -> None:
    if not WARNED.first(applied.spec, applied.account.key):
        return
    then = {
        "raise": "calls are refused",
        "warn": "calls proceed (on_exceed='warn')",
        "callback": "its on_exceed callable decides",
        "abort_stream": "streams in flight are stopped",
    }[action]
    logger.warning("costspan: %s; %s", exc.summary, then)


def _record(call: CallSpan, applied: Applied, exc: BudgetExceeded, action: str) -> None:
    attributes = _event_attributes(applied, exc, action)
    call.span.add_event(attrs.BUDGET_EXCEEDED_EVENT, attributes)
    call._state.budget_metrics.exceeded.add(1, {attrs.BUDGET_SCOPE: exc.scope, attrs.BUDGET_ACTION: action})
    _log_first(applied, exc, action)


def _downgrade(call: CallSpan, kwargs: dict[str, Any], model: str) -> dict[str, Any]:
    original = call.attributes.get(attrs.GEN_AI_REQUEST_MODEL)
    call.attributes[attrs.GEN_AI_REQUEST_MODEL] = model
    call.attributes[attrs.BUDGET_DOWNGRADED_FROM] = original
    operation = call.attributes.get(attrs.GEN_AI_OPERATION_NAME)
    call.span.update_name(f"{operation} {model}" if operation else model)
    call.span.set_attributes({attrs.GEN_AI_REQUEST_MODEL: model, attrs.BUDGET_DOWNGRADED_FROM: str(original)})
    call._state.budget_metrics.downgrades.add(
        1, {attrs.GEN_AI_REQUEST_MODEL: model, attrs.BUDGET_DOWNGRADED_FROM: str(original)}
    )
    return {**kwargs, "model": model}


def admit(call: CallSpan, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request kwargs to send (the model swapped on a downgrade). Raises `BudgetExceeded` (or
    what the user's `on_exceed` callable raises) after ending the call's span as failed."""
    if not ENTERED_ANY[0] and REGISTRY[0].empty:
        return kwargs
    try:
        budget = plan(call._attribution)
        if budget is None:
            return kwargs
        decision = _decide(call, budget, kwargs)
        if decision.model != call.attributes.get(attrs.GEN_AI_REQUEST_MODEL) and decision.model:
            kwargs = _downgrade(call, kwargs, decision.model)
        for applied, exceeded, action in decision.events:
            _record(call, applied, exceeded, action)
    except Exception as exc:
        INSTRUMENTATION_FAULTS.record("budget check", exc)
        return kwargs
    for callback, exceeded in decision.callbacks:
        try:
            callback(exceeded)
        except BaseException as exc:
            call.end(exc)
            raise
    if decision.refusal is not None:
        call.end(decision.refusal)
        raise decision.refusal
    call.budget = budget
    return kwargs


def stream_refusal(call: CallSpan) -> BudgetExceeded | None:
    """For a stream proxy, per item: the refusal to raise when a budget with abort_streams=True
    ran out while the stream was in flight (the span gets the event; the caller ends it)."""
    budget = call.budget
    if budget is None:
        return None
    try:
        found = budget.stream_refusal(call.attributes.get(attrs.GEN_AI_REQUEST_MODEL))
        if found is None:
            return None
        applied, refusal = found
        _record(call, applied, refusal, "abort_stream")
        return refusal
    except Exception as exc:
        INSTRUMENTATION_FAULTS.record("budget stream check", exc)
        return None


__all__ = [
    "BudgetMetrics",
    "CallBudget",
    "admit",
    "estimate_input_tokens",
    "format_usd",
    "plan",
    "stream_refusal",
]
