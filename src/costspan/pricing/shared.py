"""The rate card that instrumentors and metrics price with when not given one.

One card prices spans and metrics alike: a CostSpanProcessor built with an explicit card makes it
the shared one, so calls priced by an instrumentor before the span ends use the same prices.
"""

from __future__ import annotations

from .card import RateCard

_shared: RateCard | None = None


def set_shared_rate_card(card: RateCard) -> None:
    global _shared
    _shared = card


def shared_rate_card() -> RateCard:
    return _shared if _shared is not None else RateCard.default()
