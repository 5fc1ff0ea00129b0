"""Rate card: exact prices for LLM calls (genai-prices data plus user overrides)."""

from .card import RateCard
from .errors import RateCardError
from .money import UNITS_PER_USD, PriceBreakdown, units_to_decimal
from .normalise import normalise
from .providers import map_provider
from .shared import set_shared_rate_card, shared_rate_card

__all__ = [
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
