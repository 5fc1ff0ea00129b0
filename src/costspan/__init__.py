"""costspan: what each customer, task, feature and agent costs in LLM spend, inside OpenTelemetry."""

from importlib.metadata import PackageNotFoundError, version

from costspan import attributes
from costspan.baggage_trust import InboundBaggagePolicy, guard_inbound_baggage
from costspan.budget import BudgetConfigError, BudgetExceeded, budget, configure_budgets
from costspan.configure import CostspanSetup, configure
from costspan.context import TaskScope, agent, attribute, current_attribution, step, task, tool
from costspan.exporters import ConsoleCostTreeExporter
from costspan.pricing import PriceBreakdown, RateCard, RateCardError
from costspan.processor import CostSpanProcessor

try:
    __version__ = version("costspan")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

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
    "attribute",
    "attributes",
    "budget",
    "configure",
    "configure_budgets",
    "current_attribution",
    "guard_inbound_baggage",
    "step",
    "task",
    "tool",
]
