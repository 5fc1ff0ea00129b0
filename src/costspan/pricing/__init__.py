"""Stage 1: the rate card. Exact prices for LLM and tool calls (genai-prices data plus user overrides).

One job: turn (provider, model, usage, time) into integer USD units. Imports nothing of costspan
outside this package, so any stage can price.
"""

from .bundled import SOURCE as BUNDLED_SOURCE
from .card import RateCard
from .errors import RateCardError
from .money import UNITS_PER_USD, PriceBreakdown, units_to_decimal
from .normalise import normalise
from .providers import map_provider
from .shared import set_shared_rate_card, shared_rate_card

__all__ = [
    "BUNDLED_SOURCE",
    "UNITS_PER_USD",
    "PriceBreakdown",
    "RateCard",
    "RateCardError",
    "map_provider",
    "normalise",
    "set_shared_rate_card",
    "shared_rate_card",
    "units_to_decimal",
]
