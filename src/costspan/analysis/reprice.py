"""`--reprice [FILE]`: every LLM call's cost recomputed from its recorded tokens.

The card is the bundled one (genai-prices, as the CostSpanProcessor uses it), with FILE's
overrides on top when given (the same YAML/TOML format as COSTSPAN_PRICES). Each call is priced at
its own start time, to the hour: the card's dates are whole days (UTC), so no price in force
changes within an hour. A backfill (calls that were unpriced or priced wrong) and a what-if (the
negotiated price, another model's prices under this model's name) are the same operation.

Tool calls keep their recorded price. A call that cannot be re-priced keeps no cost and counts as
unpriced; the notes say how many and why (no model, no token counts, a model the card does not
know, impossible token counts).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from costspan.analysis.spans import MONEY
from costspan.pricing import RateCard
from costspan.pricing.money import units_to_decimal

__all__ = ["RepriceOutcome", "reprice"]

HOUR_NS = 3_600_000_000_000
TABLE = "calls_repriced"


@dataclass
class RepriceOutcome:
    table: str
    repriced: int = 0
    source: str = "bundled card"
    failures: Counter[str] = field(default_factory=Counter)

    def notes(self) -> list[str]:
        lines = [
            f"re-priced {self.repriced:,} LLM calls with the {self.source}; "
            "tool calls keep their recorded price"
        ]
        missing = sum(self.failures.values())
        if missing:
            reasons = ", ".join(f"{count:,} {reason}" for reason, count in self.failures.most_common())
            lines.append(f"could not re-price {missing:,} LLM calls: {reasons}")
        return lines


def _card(overrides: str | None) -> RateCard:
    card = RateCard.default()
    if overrides:
        card = card.with_overrides(overrides)  # a bad file raises RateCardError (a ValueError) naming it
    return card


def reprice(con: Any, overrides: str | None = None) -> RepriceOutcome:
    """Create `calls_repriced` (the `calls` table with re-priced LLM call costs)."""
    card = _card(overrides)
    source = f"bundled card + {os.path.basename(overrides)}" if overrides else "bundled card"
    outcome = RepriceOutcome(TABLE, source=source)
    usages = con.execute(f"""
        SELECT provider, model, input_tokens, output_tokens, coalesce(cache_read_tokens, 0),
               coalesce(cache_write_tokens, 0), coalesce(reasoning_tokens, 0),
               start_ns // {HOUR_NS} AS hour, bool_and(failed) AS failed, count(*) AS calls
        FROM calls WHERE NOT is_tool GROUP BY ALL
    """).fetchall()
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as prices:
        writer = csv.writer(prices)
        for provider, model, inp, out, cache_read, cache_write, reasoning, hour, failed, calls in usages:
            cost, reason = _price(card, provider, model, inp, out, cache_read, cache_write, reasoning, hour)
            if cost is None:
                if reason and not (failed and reason == "no token counts"):
                    outcome.failures[reason] += calls
            else:
                outcome.repriced += calls
            price = "" if cost is None else cost
            writer.writerow([provider, model, inp, out, cache_read, cache_write, reasoning, hour, price])
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE prices AS SELECT * FROM read_csv('{prices.name}', header = false,
                columns = {{'provider': 'VARCHAR', 'model': 'VARCHAR', 'input_tokens': 'BIGINT',
                           'output_tokens': 'BIGINT', 'cache_read': 'BIGINT', 'cache_write': 'BIGINT',
                           'reasoning': 'BIGINT', 'hour': 'BIGINT', 'cost': '{MONEY}'}})
        """)
    finally:
        os.unlink(prices.name)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {TABLE} AS
        SELECT c.* REPLACE (
                   CASE WHEN c.is_tool THEN c.cost ELSE p.cost END AS cost,
                   CASE WHEN c.is_tool THEN false
                        ELSE p.cost IS NULL
                             AND NOT (c.failed AND c.input_tokens IS NULL AND c.output_tokens IS NULL)
                   END AS unpriced)
        FROM calls c LEFT JOIN prices p
          ON NOT c.is_tool
         AND p.provider IS NOT DISTINCT FROM c.provider AND p.model IS NOT DISTINCT FROM c.model
         AND p.input_tokens IS NOT DISTINCT FROM c.input_tokens
         AND p.output_tokens IS NOT DISTINCT FROM c.output_tokens
         AND p.cache_read = coalesce(c.cache_read_tokens, 0)
         AND p.cache_write = coalesce(c.cache_write_tokens, 0)
         AND p.reasoning = coalesce(c.reasoning_tokens, 0) AND p.hour = c.start_ns // {HOUR_NS}
    """)
    return outcome


def _price(
    card: RateCard,
    provider: str | None,
    model: str | None,
    inp: int | None,
    out: int | None,
    cache_read: int,
    cache_write: int,
    reasoning: int,
    hour: int,
) -> tuple[str | None, str | None]:
    if inp is None and out is None:
        return None, "no token counts"
    if not model:
        return None, "no model"
    try:
        breakdown = card.price(
            provider,
            model,
            input_tokens=inp or 0,
            output_tokens=out or 0,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            start_time_ns=hour * HOUR_NS,
        )
    except ValueError:
        return None, "impossible token counts"
    if breakdown is None:
        return None, f"unknown model {model}"
    return format(units_to_decimal(breakdown.total), "f"), None
