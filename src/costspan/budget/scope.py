"""`costspan.budget(...)`: a context manager and decorator that puts a budget in effect."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context

from costspan import attributes as attrs
from costspan.attribution.scopes import decorate
from costspan.budget.accounts import CONTEXT_KEY, ENTERED_ANY, ActiveBudget, registry
from costspan.budget.config import configure_budgets, ledger_from
from costspan.budget.ledger import Ledger
from costspan.budget.spec import OnExceed, make_spec

F = TypeVar("F", bound=Callable[..., Any])


class _Entered:
    def __init__(self, budget: budget) -> None:
        spec = budget.spec
        subject = budget.subject
        if subject is None and spec.scope == "task":
            subject = baggage.get_baggage(attrs.TASK_ID)
        elif subject is None and spec.scope == "customer":
            subject = baggage.get_baggage(attrs.CUSTOMER_ID)
        ledger = budget.ledger if budget.ledger is not None else registry().ledger
        self.active = ActiveBudget(spec, str(subject) if subject is not None else None, ledger)
        ENTERED_ANY[0] = True
        current = otel_context.get_current()
        stack = otel_context.get_value(CONTEXT_KEY, current) or ()
        self.context = otel_context.set_value(CONTEXT_KEY, (*stack, self.active), current)  # type: ignore[misc]

    def close(self, exc: BaseException | None) -> None:
        pass


class budget:
    """Cap the LLM and tool spend of a task, a customer or a block.

    `usd`: the limit in US dollars. Once the scope's spend has reached it, the next LLM call:
    raises `costspan.BudgetExceeded` before any request leaves the process (`on_exceed="raise"`),
    proceeds with a span event, one log line and a metric (`"warn"`), or is passed to your callable
    (it gets the `BudgetExceeded` describing the budget; raise to refuse the call, return to let it
    proceed).

    `scope`: "task" counts the spend of the task in effect (baggage `costspan.task_id`), shared with
    every other task budget of the same task, in any thread or process using the same ledger;
    "customer" the customer in effect (`costspan.customer_id`) per `window` ("day", "hour",
    "30m", a timedelta; fixed windows aligned to UTC); "block" only what runs inside this block.
    Where no task / customer is in effect, the budget counts its block only (logged once).
    `customer_id=` / `task_id=` name the subject explicitly.

    `downgrade={"gpt-4o": "gpt-4o-mini"}`: once spend reaches `downgrade_at` (USD; default 80% of
    the limit), calls to a model in the mapping are sent to its cheaper model instead.
    `preflight=True`: also refuse a call whose worst case (input estimated at 4 characters per
    token + max_tokens x output price) would take spend past the limit.
    `abort_streams=True`: a stream in flight when the limit is reached (by other calls) raises
    `BudgetExceeded` at its next chunk; by default it finishes.
    `ledger`: where task / customer spend is counted (default: the configured ledger, in memory
    unless `configure_budgets(ledger=...)` chose Redis).

    Usable as `with costspan.budget(1.0) as b:` (`b.spent_usd`, `b.remaining_usd`) and as a decorator
    of sync, async, generator and async-generator functions (a fresh block per call).
    """

    configure_budgets = staticmethod(configure_budgets)

    def __init__(
        self,
        usd: float | int | str,
        *,
        scope: str = "task",
        window: Any = None,
        on_exceed: OnExceed = "raise",
        downgrade: Mapping[str, str] | None = None,
        downgrade_at: float | int | str | None = None,
        preflight: bool = False,
        abort_streams: bool = False,
        name: str | None = None,
        customer_id: str | None = None,
        task_id: str | None = None,
        ledger: Ledger | str | None = None,
    ) -> None:
        self.spec = make_spec(
            usd,
            scope=scope,
            window=window,
            on_exceed=on_exceed,
            downgrade=downgrade,
            downgrade_at=downgrade_at,
            preflight=preflight,
            abort_streams=abort_streams,
            name=name,
        )
        subject = customer_id if scope == "customer" else task_id if scope == "task" else None
        if (customer_id is not None and scope != "customer") or (task_id is not None and scope != "task"):
            raise ValueError(
                "costspan.budget: customer_id= goes with scope='customer', task_id= with scope='task'"
            )
        self.subject = subject
        self.ledger = ledger_from(ledger, "costspan.budget(ledger=...)") if ledger is not None else None
        # Entered blocks' context tokens, per thread / asyncio task: one budget object may be
        # entered in several at once.
        self._tokens: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
            "costspan_budget_tokens", default=()
        )

    def __enter__(self) -> ActiveBudget:
        entered = _Entered(self)
        self._tokens.set((*self._tokens.get(), otel_context.attach(entered.context)))
        return entered.active

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        *outer, token = self._tokens.get()
        self._tokens.set(tuple(outer))
        otel_context.detach(token)  # type: ignore[arg-type]

    def __call__(self, fn: F) -> F:
        return decorate(fn, lambda _fn: _Entered(self))
