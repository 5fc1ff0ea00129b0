"""costspan: what each customer, task, feature and agent costs in LLM spend, inside OpenTelemetry."""

from costspan import attributes
from costspan._version import __version__
from costspan.attribution.api import TaskScope, agent, attribute, current_attribution, step, task, tool
from costspan.attribution.baggage_trust import InboundBaggagePolicy, guard_inbound_baggage
from costspan.attribution.outcome import attempt, before_attempt, retrying, task_failed
from costspan.budget import BudgetConfigError, BudgetExceeded, budget, configure_budgets
from costspan.exporters import ConsoleCostTreeExporter
from costspan.pricing import PriceBreakdown, RateCard, RateCardError
from costspan.rollup.processor import CostSpanProcessor
from costspan.setup.configure import CostspanSetup, configure

__all__ = [
    "BudgetConfigError",
    "BudgetExceeded",
    "ConsoleCostTreeExporter",
    "CostSpanProcessor",
    "CostspanSetup",
    "InboundBaggagePolicy",
    "PriceBreakdown",
    "RateCard",
    "RateCardError",
    "TaskScope",
    "__version__",
    "agent",
    "attempt",
    "attribute",
    "attributes",
    "before_attempt",
    "budget",
    "configure",
    "configure_budgets",
    "current_attribution",
    "guard_inbound_baggage",
    "retrying",
    "step",
    "task",
    "task_failed",
    "tool",
]
