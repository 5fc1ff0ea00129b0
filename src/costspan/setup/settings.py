"""COSTSPAN_* environment variables: read once at start-up, each bad value logged once, never raised.

A bad value leaves that one setting at its default and says so (variable, value, why, what applies
instead); the application runs on. Explicit arguments to `costspan.configure()` win over these.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from costspan import attributes as attrs
from costspan.attribution.baggage_trust import SECRET_ENV, TRUSTED_PEERS_ENV, InboundBaggagePolicy
from costspan.budget.accounts import Registry
from costspan.budget.config import load_budgets
from costspan.budget.errors import BudgetConfigError
from costspan.pricing import RateCard, RateCardError
from costspan.rollup.call_pricing import parse_cost_attributes
from costspan.rollup.remote_cost import TRUSTED_COST_PEERS_ENV, CostPeerPolicy
from costspan.telemetry.metrics import DEFAULT_DIMENSION_VALUE_LIMIT

logger = logging.getLogger("costspan")

DISABLED = "COSTSPAN_DISABLED"
PRICES = "COSTSPAN_PRICES"
CONSOLE = "COSTSPAN_CONSOLE"
COST_DIMENSIONS = "COSTSPAN_COST_DIMENSIONS"
BUDGETS = "COSTSPAN_BUDGETS"
BUDGET_LEDGER = "COSTSPAN_BUDGET_LEDGER"
COST_ATTRIBUTES = "COSTSPAN_COST_ATTRIBUTES"
METRIC_DIMENSION_LIMIT = "COSTSPAN_METRIC_DIMENSION_LIMIT"
SUMMARY = "COSTSPAN_SUMMARY"  # print the task-run summary at exit (costspan.setup.summary)

# Inbound costspan.* baggage: whose is kept (costspan.attribution.baggage_trust reads them).
TRUSTED_BAGGAGE_PEERS = TRUSTED_PEERS_ENV
BAGGAGE_SECRET = SECRET_ENV
# Returned costs (costspan-cost response header): whose are believed (costspan.rollup.remote_cost).
TRUSTED_COST_PEERS = TRUSTED_COST_PEERS_ENV

KNOWN_VARIABLES = (
    DISABLED,
    PRICES,
    CONSOLE,
    COST_DIMENSIONS,
    BUDGETS,
    BUDGET_LEDGER,
    COST_ATTRIBUTES,
    METRIC_DIMENSION_LIMIT,
    TRUSTED_BAGGAGE_PEERS,
    BAGGAGE_SECRET,
    TRUSTED_COST_PEERS,
    SUMMARY,
    # the `costspan_file` traces exporter (costspan.exporters.file): its path and rotation size
    "COSTSPAN_FILE",
    "COSTSPAN_FILE_MAX_BYTES",
)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_SHORT_KEYS = {key.removeprefix("costspan."): key for key in attrs.ATTRIBUTION_KEYS}


@dataclass(frozen=True)
class Settings:
    """What the COSTSPAN_* variables ask for. `None` means "not set": the caller's default applies."""

    disabled: bool = False
    rate_card: RateCard | None = None
    prices_path: str | None = None
    console_tree: bool | None = None
    cost_dimensions: tuple[str, ...] | None = None
    cost_attributes: tuple[str, ...] | None = None
    metric_dimension_limit: int | None = None
    baggage_policy: InboundBaggagePolicy = field(default_factory=InboundBaggagePolicy)
    budgets: Registry | None = None
    cost_peer_policy: CostPeerPolicy = field(default_factory=CostPeerPolicy)
    summary: bool | None = None
    problems: tuple[str, ...] = ()


def _parse_bool(name: str, raw: str, problems: list[str], fallback: str) -> bool | None:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    problems.append(f"{name}={raw!r} is not a boolean (use true or false); {fallback}")
    return None


def parse_cost_dimensions(raw: str) -> tuple[str, ...]:
    """`customer_id,feature` or full keys (`costspan.customer_id`); `none` or empty: no dimensions.

    Raises ValueError naming the bad entry."""
    if raw.strip().lower() in ("", "none"):
        return ()
    dimensions: list[str] = []
    for item in raw.split(","):
        name = item.strip()
        key = _SHORT_KEYS.get(name, name)
        if key == attrs.TASK_ID:
            raise ValueError(f"{name!r} cannot be a metric dimension (one time series per task)")
        if key not in attrs.ATTRIBUTION_KEYS:
            choices = ", ".join(k for k in _SHORT_KEYS if _SHORT_KEYS[k] != attrs.TASK_ID)
            raise ValueError(f"{name!r} is not an attribution key (choose from {choices})")
        if key not in dimensions:
            dimensions.append(key)
    return tuple(dimensions)


def parse_metric_dimension_limit(raw: str) -> int:
    """A whole number >= 1 (`1000`, `1_000`). Raises ValueError saying what is wrong."""
    try:
        limit = int(raw.strip())
    except ValueError:
        raise ValueError("not a whole number") from None
    if limit < 1:
        raise ValueError("must be at least 1")
    return limit


def read_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate the COSTSPAN_* variables (loading the price file, if one is named)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    disabled = False
    if DISABLED in env:
        disabled = bool(_parse_bool(DISABLED, env[DISABLED], problems, "costspan stays enabled"))

    console_tree = None
    if CONSOLE in env:
        console_tree = _parse_bool(CONSOLE, env[CONSOLE], problems, "the console cost tree stays off")

    summary = None
    if SUMMARY in env:
        summary = _parse_bool(SUMMARY, env[SUMMARY], problems, "no task-run summary is printed")

    cost_dimensions = None
    if COST_DIMENSIONS in env:
        try:
            cost_dimensions = parse_cost_dimensions(env[COST_DIMENSIONS])
        except ValueError as exc:
            problems.append(
                f"{COST_DIMENSIONS}={env[COST_DIMENSIONS]!r}: {exc}; the default dimensions apply"
            )

    cost_attributes = None
    if COST_ATTRIBUTES in env:
        try:
            cost_attributes = parse_cost_attributes(env[COST_ATTRIBUTES])
        except ValueError as exc:
            problems.append(f"{COST_ATTRIBUTES}={env[COST_ATTRIBUTES]!r}: {exc}; none are written")

    metric_dimension_limit = None
    if METRIC_DIMENSION_LIMIT in env:
        try:
            metric_dimension_limit = parse_metric_dimension_limit(env[METRIC_DIMENSION_LIMIT])
        except ValueError as exc:
            problems.append(
                f"{METRIC_DIMENSION_LIMIT}={env[METRIC_DIMENSION_LIMIT]!r}: {exc}; the default limit "
                f"({DEFAULT_DIMENSION_VALUE_LIMIT:,} distinct values per metric dimension) applies"
            )

    rate_card = None
    prices_path = env.get(PRICES) or None
    if prices_path is not None and not disabled:
        try:
            rate_card = RateCard.default().with_overrides(prices_path)
        except RateCardError as exc:
            problems.append(
                f"{PRICES}={prices_path!r} is not used: {exc}; calls are priced from the bundled card only"
            )

    budgets = None
    budgets_path = env.get(BUDGETS) or None
    ledger_url = env.get(BUDGET_LEDGER) or None
    if (budgets_path or ledger_url) and not disabled:
        try:
            budgets = load_budgets(budgets_path, ledger_url)
        except BudgetConfigError as exc:
            named = f"{BUDGETS}={budgets_path!r}" if budgets_path else f"{BUDGET_LEDGER}={ledger_url!r}"
            problems.append(f"{named} is not used: {exc}; no budgets are declared by configuration")

    baggage_policy = InboundBaggagePolicy()
    try:
        baggage_policy = InboundBaggagePolicy.from_env(env)
    except ValueError as exc:
        problems.append(f"{exc}; inbound costspan.* baggage is trusted from no caller")

    cost_peer_policy = CostPeerPolicy.of(secret=baggage_policy.secret)
    try:
        cost_peer_policy = CostPeerPolicy.from_env(env)
    except ValueError as exc:
        problems.append(f"{exc}; returned costs are believed only when signed ({BAGGAGE_SECRET})")

    for name in sorted(env):
        if name.startswith("COSTSPAN_") and name not in KNOWN_VARIABLES:
            problems.append(f"{name} is not a costspan setting (known: {', '.join(KNOWN_VARIABLES)})")

    return Settings(
        disabled=disabled,
        rate_card=rate_card,
        prices_path=prices_path if rate_card is not None else None,
        console_tree=console_tree,
        cost_dimensions=cost_dimensions,
        cost_attributes=cost_attributes,
        metric_dimension_limit=metric_dimension_limit,
        baggage_policy=baggage_policy,
        budgets=budgets,
        cost_peer_policy=cost_peer_policy,
        summary=summary,
        problems=tuple(problems),
    )


_reported: set[str] = set()
_reported_lock = threading.Lock()


def report(settings: Settings) -> None:
    """Log each problem once per process (start-up may read the settings more than once)."""
    for problem in settings.problems:
        with _reported_lock:
            if problem in _reported:
                continue
            _reported.add(problem)
        logger.error("costspan: %s", problem)


__all__ = [
    "BAGGAGE_SECRET",
    "BUDGETS",
    "BUDGET_LEDGER",
    "CONSOLE",
    "COST_ATTRIBUTES",
    "COST_DIMENSIONS",
    "DISABLED",
    "KNOWN_VARIABLES",
    "METRIC_DIMENSION_LIMIT",
    "PRICES",
    "SUMMARY",
    "TRUSTED_BAGGAGE_PEERS",
    "TRUSTED_COST_PEERS",
    "Settings",
    "parse_cost_dimensions",
    "parse_metric_dimension_limit",
    "read_settings",
    "report",
]
