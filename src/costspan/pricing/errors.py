"""Errors raised by the rate card."""

from __future__ import annotations


class RateCardError(ValueError):
    """A price override is invalid; the message names the file, the entry, the field and the value."""
