"""Budgets declared in configuration: per task type and per customer, and the default ledger.

```yaml
ledger: redis://127.0.0.1:6379/0   # optional: "memory" (the default) or a redis:// URL
tasks:                             # by task type (the name given to costspan.task)
  summarize: 0.10                  # shorthand for {usd: 0.10}
  research: {usd: 5.00, downgrade: {gpt-4o: gpt-4o-mini}, downgrade_at: 4.00, preflight: true}
  "*": {usd: 10}                   # any other task type
customers:                         # by costspan.customer_id
  "*": {usd: 50, window: day}      # each customer: $50 per UTC day
  cus_8821: {usd: 200, window: day, on_exceed: warn}
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from costspan.budget.accounts import REGISTRY, Registry
from costspan.budget.errors import BudgetConfigError
from costspan.budget.ledger import InMemoryLedger, Ledger
from costspan.budget.spec import BudgetSpec, make_spec
from costspan.pricing.config_files import ConfigFileError, excerpt, read_config_file

_TOP_KEYS = frozenset({"ledger", "tasks", "customers"})
_ENTRY_KEYS = frozenset(
    {"usd", "on_exceed", "downgrade", "downgrade_at", "preflight", "abort_streams", "window", "name"}
)


def ledger_from(value: object, where: str) -> Ledger:
    """A Ledger, "memory", or a redis:// / rediss:// / unix:// URL."""
    if value is None or value == "memory":
        return InMemoryLedger()
    if isinstance(value, str):
        if value.startswith(("redis://", "rediss://", "unix://")):
            from costspan.budget.redis_ledger import RedisLedger

            return RedisLedger(value)
        raise BudgetConfigError(f"{where}: ledger must be 'memory' or a redis:// URL, got {excerpt(value)}")
    if isinstance(value, Ledger):
        return value
    raise BudgetConfigError(
        f"{where}: ledger must be a Ledger, 'memory' or a redis:// URL, got {excerpt(value)}"
    )


def _read(source: str | os.PathLike[str]) -> tuple[Any, str]:
    path = Path(source)
    label = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise BudgetConfigError(f"{label}: a budget file must end in .yaml, .yml or .toml")
    try:
        return read_config_file(path), label
    except (OSError, UnicodeDecodeError) as exc:
        raise BudgetConfigError(f"{label}: cannot read the budget file ({exc})") from None
    except ConfigFileError as exc:
        raise BudgetConfigError(f"{label}: {exc}") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise BudgetConfigError(f"{label}: not valid {suffix[1:].upper()} ({problem})") from None


def _entries(data: Mapping[str, Any], section: str, label: str) -> dict[str, BudgetSpec]:
    table = data.get(section)
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise BudgetConfigError(
            f"{label}: {section} must be a mapping of name -> budget, got {excerpt(table)}"
        )
    scope = "task" if section == "tasks" else "customer"
    out: dict[str, BudgetSpec] = {}
    for name, entry in table.items():
        shown = name if isinstance(name, str) and len(name) <= 60 else excerpt(name)
        where = f"{label}: {section}.{shown}"
        if not isinstance(name, str) or not name:
            raise BudgetConfigError(f"{label}: {section} keys must be non-empty strings, got {excerpt(name)}")
        if not isinstance(entry, Mapping):
            entry = {"usd": entry}
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise BudgetConfigError(
                f"{where}: unknown field {excerpt(unknown[0])} (known: {', '.join(sorted(_ENTRY_KEYS))})"
            )
        if "usd" not in entry:
            raise BudgetConfigError(f"{where}: usd (the limit in US dollars) is missing")
        out[name] = make_spec(
            entry["usd"],
            scope=scope,
            window=entry.get("window"),
            on_exceed=entry.get("on_exceed", "raise"),
            downgrade=entry.get("downgrade"),
            downgrade_at=entry.get("downgrade_at"),
            preflight=entry.get("preflight", False),
            abort_streams=entry.get("abort_streams", False),
            name=entry.get("name", name if scope == "task" and name != "*" else None),
            where=where,
        )
    return out


def load_budgets(
    source: str | os.PathLike[str] | Mapping[str, Any] | None, ledger: object = None
) -> Registry:
    """Validate a budget file or mapping into a Registry (nothing is installed)."""
    if source is None:
        data: Any = {}
        label = "configure_budgets"
    elif isinstance(source, Mapping):
        data, label = source, "<mapping>"
    else:
        data, label = _read(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise BudgetConfigError(
            f"{label}: must be a mapping with tasks / customers / ledger, got {excerpt(data)}"
        )
    unknown = sorted(str(k) for k in set(data) - _TOP_KEYS)
    if unknown:
        raise BudgetConfigError(
            f"{label}: unknown key {excerpt(unknown[0])} (known: customers, ledger, tasks)"
        )
    tasks = _entries(data, "tasks", label)
    customers = _entries(data, "customers", label)
    chosen = ledger if ledger is not None else data.get("ledger")
    where = "configure_budgets(ledger=...)" if ledger is not None else f"{label}: ledger"
    return Registry(tasks, customers, ledger_from(chosen, where))


def configure_budgets(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *, ledger: object = None
) -> Registry:
    """Replace the budgets declared in configuration and the default ledger.

    `source`: a .yaml/.yml/.toml file or a mapping (see this module's docstring); None clears them.
    `ledger`: a `Ledger`, "memory" or a redis:// URL; it wins over the file's `ledger`. It also
    counts the spend of `costspan.budget(...)` blocks with scope task or customer that were not
    given a ledger. A bad value raises `BudgetConfigError` naming the file, key and value, and
    leaves the previous configuration in place.
    """
    loaded = load_budgets(source, ledger)
    install_budgets(loaded)
    return loaded


def install_budgets(registry: Registry) -> None:
    """Make a Registry from `load_budgets` the one in force."""
    REGISTRY[0] = registry
