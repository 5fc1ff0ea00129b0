"""Multi-agent lead enrichment: what one lead cost, per agent and per step, with a paid tool in it.

    python examples/lead_enrichment.py [domain]

task lead-enrichment (customer cus_8821, feature lead-gen)
├─ agent company-research   step search (gpt-4o-mini), clearbit.enrich ($0.10 a call), step extract (gpt-4o)
├─ agent person-research    step find-contacts (gpt-4o-mini), step score (claude-haiku-4-5)
└─ agent writer             step draft-email (claude-sonnet-4-6)

Offline against costspan's fake providers unless OPENAI_API_KEY / ANTHROPIC_API_KEY are set.
Prints the cost tree, then each agent's rolled-up cost.
"""

from __future__ import annotations

import sys
from typing import Any

from _support import Providers, plural, rollup, setup, usd

import costspan

CUSTOMER_ID = "cus_8821"
CLEARBIT_PRICE_USD = 0.10  # per enrichment call, from the vendor's price list


def clearbit_enrich(domain: str) -> dict[str, Any]:
    """Stands in for a paid enrichment API (no network here)."""
    return {"domain": domain, "employees": 420, "industry": "Software"}


def ask_openai(client: Any, model: str, prompt: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


def ask_claude(client: Any, model: str, prompt: str) -> str:
    reply = client.messages.create(
        model=model, max_tokens=400, messages=[{"role": "user", "content": prompt}]
    )
    return "".join(block.text for block in reply.content if block.type == "text")


def enrich_lead(providers: Providers, domain: str) -> dict[str, Any]:
    gpt, claude = providers.openai(), providers.anthropic()
    agents: dict[str, Any] = {}
    with costspan.task("lead-enrichment", customer_id=CUSTOMER_ID, feature="lead-gen") as task_span:
        with costspan.agent("company-research") as agents["company-research"]:
            with costspan.step("search"):
                queries = ask_openai(gpt, "gpt-4o-mini", f"Three search queries about the company {domain}.")
            with costspan.tool("clearbit.enrich", cost_usd=CLEARBIT_PRICE_USD):
                firmographics = clearbit_enrich(domain)
            with costspan.step("extract"):
                profile = ask_openai(
                    gpt, "gpt-4o", f"Company profile of {domain} from: {queries} {firmographics}"
                )

        with costspan.agent("person-research") as agents["person-research"]:
            with costspan.step("find-contacts"):
                contacts = ask_openai(gpt, "gpt-4o-mini", f"Likely buyers at {domain}, given: {profile}")
            with costspan.step("score"):
                scored = ask_claude(claude, "claude-haiku-4-5", f"Score these contacts 1-10: {contacts}")

        with costspan.agent("writer") as agents["writer"], costspan.step("draft-email"):
            email = ask_claude(
                claude, "claude-sonnet-4-6", f"Outreach email to the best contact: {scored} {profile}"
            )
    return {"email": email, "task": task_span, "agents": agents}


def main(argv: list[str]) -> int:
    setup()
    providers = Providers()
    try:
        result = enrich_lead(providers, argv[0] if argv else "acme.example")
    finally:
        providers.close()
    cost, calls = rollup(result["task"])
    print(f"\nlead-enrichment for {CUSTOMER_ID}: {usd(cost)} in {plural(calls, 'LLM call')} and 1 tool call")
    for name, span in result["agents"].items():
        agent_cost, agent_calls = rollup(span)
        print(f"  {name:<17} {usd(agent_cost)}  ({plural(agent_calls, 'LLM call')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
