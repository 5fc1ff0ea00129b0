"""Shared pieces of the budget tests: a fake OpenAI server, an instrumented client, exact prices."""

from __future__ import annotations

from decimal import Decimal

from costspan.testing.openai import OpenAIUsage

MTOK = Decimal(1_000_000)
INPUT, OUTPUT = 120, 40
USAGE = OpenAIUsage(prompt_tokens=INPUT, completion_tokens=OUTPUT)
# Published prices (USD per million tokens): gpt-4o $2.50 in / $10 out; gpt-4o-mini $0.15 / $0.60.
GPT4O_CALL = (INPUT * Decimal("2.50") + OUTPUT * Decimal("10")) / MTOK  # $0.0007
MINI_CALL = (INPUT * Decimal("0.15") + OUTPUT * Decimal("0.60")) / MTOK  # $0.000042
MESSAGES = [{"role": "user", "content": "hello"}]
