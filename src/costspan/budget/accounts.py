"""Accounts: where one budget's spend is counted, and the budgets in effect where a call is made.

A block budget counts in its own in-process counter. Task and customer budgets count in a ledger
under a key shared by every budget (entered or configured) for the same task or customer window,
so nested budgets and budgets in other threads or processes see the same spend.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from decimal import Decimal

from opentelemetry import context as otel_context

from costspan.budget.ledger import InMemoryLedger, Ledger
from costspan.budget.spec import BudgetSpec, units_to_usd

logger = logging.getLogger("costspan.budget")

# Budgets entered with `costspan.budget(...)`, innermost last, in the OpenTelemetry context: they
# follow the context into asyncio tasks and `contextvars.copy_context().run(...)` threads.
CONTEXT_KEY = otel_context.create_key("costspan.budgets")

# A task key expires this long after the task's last call.
DEFAULT_TASK_TTL_S = 86_400

_block_ids = itertools.count(1)


def wall_clock() -> float:
    """Epoch seconds, for customer windows (tests swap `accounts.wall_clock`)."""
    return time.time()


class BlockAccount:
    """The spend inside one entered block budget (this process only)."""

    __slots__ = ("_lock", "_units", "key")

    remote = False

    def __init__(self) -> None:
        self.key = f"block:{next(_block_ids)}"
        self._units = 0
        self._lock = threading.Lock()

    def spent(self) -> int:
        return self._units

    def add(self, units: int) -> int:
        with self._lock:
            self._units += units
            return self._units


class LedgerAccount:
    """A key in a ledger, with its expiry: a window's end, or `ttl_s` after each charge."""

    __slots__ = ("_expire_at", "_ttl_s", "key", "ledger")

    def __init__(
        self, ledger: Ledger, key: str, *, expire_at: float | None = None, ttl_s: float | None = None
    ):
        self.ledger = ledger
        self.key = key
        self._expire_at = expire_at
        self._ttl_s = ttl_s

    @property
    def remote(self) -> bool:
        return bool(getattr(self.ledger, "remote", True))

    def spent(self) -> int:
        return self.ledger.spent(self.key)

    def add(self, units: int) -> int:
        expire_at = self._expire_at if self._ttl_s is None else time.time() + self._ttl_s
        return self.ledger.add(self.key, units, expire_at)


Account = BlockAccount | LedgerAccount


def customer_account(ledger: Ledger, customer_id: str, window_s: int | None, now: float) -> LedgerAccount:
    """The key of the customer's current window: fixed windows aligned to the Unix epoch (UTC), so
    a "day" runs from 00:00 to 24:00 UTC and every process agrees on it."""
    if window_s is None:
        return LedgerAccount(ledger, f"customer:{customer_id}")
    bucket = int(now // window_s)
    return LedgerAccount(
        ledger, f"customer:{customer_id}:{window_s}:{bucket}", expire_at=float((bucket + 1) * window_s)
    )


def task_account(ledger: Ledger, task_id: str) -> LedgerAccount:
    return LedgerAccount(ledger, f"task:{task_id}", ttl_s=DEFAULT_TASK_TTL_S)


class _Warned:
    """Remembers the last 10,000 (budget, key) pairs already logged."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first(self, spec: BudgetSpec, key: str) -> bool:
        with self._lock:
            marker = (id(spec), key)
            if marker in self._seen:
                return False
            self._seen[marker] = None
            if len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            return True


WARNED = _Warned()


class ActiveBudget:
    """One entered `costspan.budget(...)`: what `with costspan.budget(...) as b` yields.

    `b.spent_usd`, `b.remaining_usd`, `b.limit_usd` (exact Decimals) and `b.exceeded` read the
    spend counted so far for the budget's scope (for a customer: the current window).
    """

    __slots__ = ("_block", "ledger", "spec", "subject")

    def __init__(self, spec: BudgetSpec, subject: str | None, ledger: Ledger) -> None:
        self.spec = spec
        self.subject = subject
        self.ledger = ledger
        self._block: BlockAccount | None = None
        if spec.scope == "block" or subject is None:
            self._block = BlockAccount()
            if spec.scope != "block" and WARNED.first(spec, spec.scope):
                logger.warning(
                    "costspan: a %s budget was entered where no %s is in effect (baggage %s); it "
                    "counts the spend inside its block only",
                    spec.scope,
                    spec.scope,
                    "costspan.task_id" if spec.scope == "task" else "costspan.customer_id",
                )

    @property
    def scope(self) -> str:
        return self.spec.scope if self._block is None else "block"

    def account(self, now: float) -> Account:
        if self._block is not None:
            return self._block
        assert self.subject is not None
        if self.spec.scope == "task":
            return task_account(self.ledger, self.subject)
        return customer_account(self.ledger, self.subject, self.spec.window_s, now)

    @property
    def limit_usd(self) -> Decimal:
        return self.spec.limit_usd

    @property
    def spent_usd(self) -> Decimal:
        return units_to_usd(self.account(wall_clock_now()).spent())

    @property
    def remaining_usd(self) -> Decimal:
        return max(Decimal(0), self.limit_usd - self.spent_usd)

    @property
    def exceeded(self) -> bool:
        return self.account(wall_clock_now()).spent() >= self.spec.limit


def wall_clock_now() -> float:
    return globals()["wall_clock"]()


class Registry:
    """Budgets declared in configuration (by task type and by customer) and the default ledger."""

    __slots__ = ("customers", "empty", "ledger", "tasks")

    def __init__(
        self,
        tasks: dict[str, BudgetSpec] | None = None,
        customers: dict[str, BudgetSpec] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.tasks = tasks or {}
        self.customers = customers or {}
        self.ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        # Checked before every LLM call; the tables are never changed after construction.
        self.empty = not self.tasks and not self.customers

    def for_call(
        self, attribution: dict[str, str] | object, now: float
    ) -> list[tuple[BudgetSpec, str, Account]]:
        """(spec, subject, account) for the configured budgets that apply to this attribution."""
        get = attribution.get  # type: ignore[attr-defined]
        found: list[tuple[BudgetSpec, str, Account]] = []
        if self.tasks:
            task_id = get("costspan.task_id")
            spec = self.tasks.get(get("costspan.task")) or self.tasks.get("*")
            if spec is not None and task_id:
                found.append((spec, str(task_id), task_account(self.ledger, str(task_id))))
        if self.customers:
            customer = get("costspan.customer_id")
            if customer:
                spec = self.customers.get(customer) or self.customers.get("*")
                if spec is not None:
                    found.append(
                        (
                            spec,
                            str(customer),
                            customer_account(self.ledger, str(customer), spec.window_s, now),
                        )
                    )
        return found


REGISTRY: list[Registry] = [Registry()]  # one slot, replaced whole by configure_budgets()
# Set once any costspan.budget(...) block has been entered in this process: until then (and while
# nothing is configured) the hook on each call returns at once.
ENTERED_ANY = [False]


def registry() -> Registry:
    return REGISTRY[0]
