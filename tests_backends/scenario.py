"""What the app does and what it must cost, by hand: an override price and a custom model.

The price file doubles gpt-4o's list price (2.50 / 1.25 cached / 10 USD per million tokens) and
adds `acme-llm-1`, which no backend knows.
"""

from __future__ import annotations

from decimal import Decimal

from costspan.testing.openai import OpenAIUsage

CUSTOMER_ID = "cus_backends_7"
TASK = "enrich_lead"
PRICES_YAML = """\
models:
  - model: gpt-4o
    provider: openai
    input_per_mtok: 5.0
    cache_read_per_mtok: 2.5
    output_per_mtok: 20.0
  - model: acme-llm-1
    input_per_mtok: 3.0
    output_per_mtok: 9.0
"""
GPT4O_USAGE = OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=200)
ACME_USAGE = OpenAIUsage(prompt_tokens=1000, completion_tokens=300)

MTOK = Decimal(1_000_000)
# 1000 uncached x 5 + 200 cached x 2.5 + 400 x 20, per million tokens.
GPT4O_USD = (1000 * Decimal(5) + 200 * Decimal("2.5") + 400 * Decimal(20)) / MTOK  # 0.0135
GPT4O_LIST_USD = (1000 * Decimal("2.5") + 200 * Decimal("1.25") + 400 * Decimal(10)) / MTOK  # 0.00675
ACME_USD = (1000 * Decimal(3) + 300 * Decimal(9)) / MTOK  # 0.0057
TRACE_USD = GPT4O_USD + ACME_USD  # 0.0192
GPT4O_SPAN = "chat gpt-4o"
ACME_SPAN = "chat acme-llm-1"
