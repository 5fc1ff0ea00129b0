"""A budget's validated settings, shared by `costspan.budget(...)` and `configure_budgets(...)`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from costspan.budget.errors import BudgetConfigError
from costspan.pricing import UNITS_PER_USD, normalise
from costspan.pricing.config_files import excerpt

SCOPES = ("task", "customer", "block")
ACTIONS = ("raise", "warn")
# Past this share of the limit, `downgrade` applies when `downgrade_at` is not given.
DEFAULT_DOWNGRADE_SHARE = Decimal("0.8")

_NAMED_WINDOWS = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}
_WINDOW_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

OnExceed = str | Callable[[Any], object]


def usd_to_units(value: object, where: str, field: str) -> int:
    """A USD amount (number, Decimal or numeric string) >= 0 as exact 1e-24 USD units."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise BudgetConfigError(f"{where}: {field} must be a number of USD >= 0, got {excerpt(value)}")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise BudgetConfigError(
            f"{where}: {field} must be a number of USD >= 0, got {excerpt(value)}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise BudgetConfigError(f"{where}: {field} must be a finite number of USD >= 0, got {excerpt(value)}")
    return int(amount.scaleb(24).to_integral_value())


def units_to_usd(units: int) -> Decimal:
    return Decimal(units).scaleb(-24).normalize() if units else Decimal(0)


def window_seconds(window: object, where: str) -> int | None:
    """`None`, "minute"/"hour"/"day"/"week", "30m"/"24h"/"7d", a timedelta or whole seconds."""
    if window is None:
        return None
    seconds: float | None = None
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
    elif isinstance(window, int | float) and not isinstance(window, bool):
        seconds = float(window)
    elif isinstance(window, str):
        text = window.strip().lower()
        if text in _NAMED_WINDOWS:
            seconds = _NAMED_WINDOWS[text]
        elif match := _WINDOW_RE.match(text):
            seconds = int(match.group(1)) * _WINDOW_UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds) or seconds < 1 or seconds != int(seconds):
        raise BudgetConfigError(
            f"{where}: window must be minute, hour, day, week, a duration like '30m', '24h', '7d', "
            f"a timedelta or whole seconds >= 1, got {excerpt(window)}"
        )
    return int(seconds)


@dataclass(frozen=True, eq=False)
class BudgetSpec:
    """One budget's limits and actions. Money in 1e-24 USD units; identity equality."""

    limit: int
    scope: str
    window_s: int | None
    on_exceed: OnExceed
    downgrade: Mapping[str, str]
    downgrade_at: int | None
    preflight: bool
    abort_streams: bool
    name: str | None

    @property
    def limit_usd(self) -> Decimal:
        return units_to_usd(self.limit)

    @property
    def action(self) -> str:
        return self.on_exceed if isinstance(self.on_exceed, str) else "callback"

    def downgrade_target(self, model: str) -> str | None:
        """The cheaper model for `model`: an exact key, else a key equal once both are normalised."""
        target = self.downgrade.get(model)
        if target is not None:
            return target
        try:
            return self.downgrade.get(_NORMALISED_PREFIX + normalise(model))
        except Exception:
            return None


_NORMALISED_PREFIX = "\0"


def make_spec(
    usd: object,
    *,
    scope: object = "task",
    window: object = None,
    on_exceed: object = "raise",
    downgrade: object = None,
    downgrade_at: object = None,
    preflight: object = False,
    abort_streams: object = False,
    name: object = None,
    where: str = "costspan.budget",
) -> BudgetSpec:
    """Validate every setting; a bad one raises `BudgetConfigError` naming `where`, the field and value."""
    limit = usd_to_units(usd, where, "usd")
    if scope not in SCOPES:
        raise BudgetConfigError(f"{where}: scope must be one of {', '.join(SCOPES)}, got {excerpt(scope)}")
    window_s = window_seconds(window, where)
    if window_s is not None and scope != "customer":
        raise BudgetConfigError(
            f"{where}: window applies to scope='customer' only (a {scope} budget lasts as long as its "
            f"{scope}), got window={excerpt(window)}"
        )
    if not (on_exceed in ACTIONS or (callable(on_exceed) and not isinstance(on_exceed, str))):
        raise BudgetConfigError(
            f"{where}: on_exceed must be 'raise', 'warn' or a callable, got {excerpt(on_exceed)}"
        )
    mapping: dict[str, str] = {}
    if downgrade is not None:
        if not isinstance(downgrade, Mapping) or not downgrade:
            raise BudgetConfigError(
                f"{where}: downgrade must be a non-empty mapping of model -> cheaper model, "
                f"got {excerpt(downgrade)}"
            )
        for source, target in downgrade.items():
            if not isinstance(source, str) or not source or not isinstance(target, str) or not target:
                raise BudgetConfigError(
                    f"{where}: downgrade entries must map a model name to a model name, "
                    f"got {excerpt(source)}: {excerpt(target)}"
                )
            mapping[source] = target
            mapping.setdefault(_NORMALISED_PREFIX + normalise(source), target)
    threshold: int | None = None
    if downgrade_at is not None:
        if downgrade is None:
            raise BudgetConfigError(f"{where}: downgrade_at needs downgrade={{model: cheaper model}}")
        threshold = usd_to_units(downgrade_at, where, "downgrade_at")
        if threshold > limit:
            raise BudgetConfigError(
                f"{where}: downgrade_at ({excerpt(downgrade_at)}) must not be above "
                f"the limit usd ({excerpt(usd)})"
            )
    elif downgrade is not None:
        threshold = int(limit * DEFAULT_DOWNGRADE_SHARE)
    for field, flag in (("preflight", preflight), ("abort_streams", abort_streams)):
        if not isinstance(flag, bool):
            raise BudgetConfigError(f"{where}: {field} must be true or false, got {excerpt(flag)}")
    if name is not None and (not isinstance(name, str) or not name):
        raise BudgetConfigError(f"{where}: name must be a non-empty string, got {excerpt(name)}")
    return BudgetSpec(
        limit=limit,
        scope=str(scope),
        window_s=window_s,
        on_exceed=on_exceed,  # type: ignore[arg-type]
        downgrade=mapping,
        downgrade_at=threshold,
        preflight=bool(preflight),
        abort_streams=bool(abort_streams),
        name=name,
    )


__all__ = ["UNITS_PER_USD", "BudgetSpec", "make_spec", "units_to_usd", "usd_to_units", "window_seconds"]
