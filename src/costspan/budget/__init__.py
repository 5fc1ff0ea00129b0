"""Stage 3: budgets and circuit breakers: stop a runaway task or customer while it runs.

Imports: `attributes`, `otel_internals`, `telemetry`, `pricing`, `attribution`; the instrumentors
call `gate` (never the reverse: `gate.CallSpan` is the protocol a call offers).

See `costspan.budget` (scope.py) for the context manager / decorator, `configure_budgets`
(config.py) for budgets per task type and per customer, `InMemoryLedger` / `RedisLedger` for where
spend is counted, and gate.py for the hook every instrumented LLM call goes through.
`task_runs` ends each `costspan.task` run (outcome, task-run metrics) and `task_ledger` keeps the
per task type totals the exit summary prints: both read the context ledger budgets also use.
"""

from costspan.budget import task_runs as _task_runs  # noqa: F401  (installs the task-run end hook)
from costspan.budget.accounts import ActiveBudget
from costspan.budget.config import configure_budgets, load_budgets
from costspan.budget.errors import BudgetConfigError, BudgetExceeded
from costspan.budget.ledger import InMemoryLedger, Ledger
from costspan.budget.redis_ledger import RedisLedger
from costspan.budget.scope import budget

__all__ = [
    "ActiveBudget",
    "BudgetConfigError",
    "BudgetExceeded",
    "InMemoryLedger",
    "Ledger",
    "RedisLedger",
    "budget",
    "configure_budgets",
    "load_budgets",
]
