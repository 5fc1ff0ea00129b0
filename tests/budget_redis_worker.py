"""One process of the shared-customer-window test: calls the fake OpenAI server as customer
`argv[3]` until its budget (kept in Redis at `argv[1]`) refuses, or `argv[5]` calls were sent.
Prints one JSON line: {"sent": n, "refused": message or null}."""

from __future__ import annotations

import json
import sys
import time

from openai import OpenAI

import costspan
from costspan.budget import BudgetExceeded
from costspan.instrumentation.openai import OpenAIInstrumentor


def main() -> None:
    redis_url, base_url, customer, limit_usd, max_calls, start_at = sys.argv[1:7]
    costspan.configure_budgets({"customers": {"*": {"usd": limit_usd, "window": "day"}}}, ledger=redis_url)
    OpenAIInstrumentor().instrument()  # no TracerProvider set: spans are not recorded, budgets still hold
    client = OpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0)
    time.sleep(max(0.0, float(start_at) - time.time()))
    sent, refused = 0, None
    with costspan.attribute(customer_id=customer):
        try:
            while sent < int(max_calls):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
                )
                sent += 1
        except BudgetExceeded as exc:
            refused = str(exc)
    print(json.dumps({"sent": sent, "refused": refused}))


if __name__ == "__main__":
    main()
