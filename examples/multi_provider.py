"""One task, three providers: OpenAI plans, Anthropic executes, Gemini verifies.

    python examples/multi_provider.py [topic]

task market-brief (customer cus_7731, feature briefs)
├─ agent planner    gpt-4o (OpenAI)
├─ agent executor   claude-sonnet-4-6 (Anthropic), steps research and write
└─ agent verifier   gemini-2.5-flash (Gemini)

Each provider is real when its key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or
GOOGLE_API_KEY) and faked offline when not: mix them as you like. The task's total is priced from
each provider's own rate card entries and usage conventions.
"""

from __future__ import annotations

import sys
from typing import Any

from _support import Providers, plural, rollup, setup, usd

import costspan

CUSTOMER_ID = "cus_7731"
AGENTS = {
    "planner": "OpenAI gpt-4o",
    "executor": "Anthropic claude-sonnet-4-6",
    "verifier": "Gemini gemini-2.5-flash",
}


def market_brief(providers: Providers, topic: str) -> tuple[str, dict[str, Any]]:
    gpt, claude, gemini = providers.openai(), providers.anthropic(), providers.gemini()
    spans: dict[str, Any] = {}
    with costspan.task("market-brief", customer_id=CUSTOMER_ID, feature="briefs") as spans["task"]:
        with costspan.agent("planner") as spans["planner"]:
            plan = gpt.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"Plan a two-part market brief on {topic}."}],
            )
            plan_text = plan.choices[0].message.content or ""

        with costspan.agent("executor") as spans["executor"]:
            parts = []
            for step in ("research", "write"):
                with costspan.step(step):
                    reply = claude.messages.create(
                        model="claude-sonnet-4-6",
                        max_tokens=800,
                        messages=[
                            {"role": "user", "content": f"Do the {step} part of this plan:\n{plan_text}"}
                        ],
                    )
                    parts.append("".join(block.text for block in reply.content if block.type == "text"))
            brief = "\n\n".join(parts)

        with costspan.agent("verifier") as spans["verifier"]:
            verdict = gemini.models.generate_content(
                model="gemini-2.5-flash",
                contents=f"Check this brief for unsupported claims; answer OK or list them:\n{brief}",
            )
    return verdict.text or "", spans


def main(argv: list[str]) -> int:
    setup()
    providers = Providers()
    try:
        verdict, spans = market_brief(providers, argv[0] if argv else "vector databases")
    finally:
        providers.close()
    cost, calls = rollup(spans["task"])
    print(f"\nverifier: {verdict}")
    print(f"market-brief for {CUSTOMER_ID}: {usd(cost)} in {plural(calls, 'LLM call')}")
    for name, model in AGENTS.items():
        agent_cost, agent_calls = rollup(spans[name])
        print(f"  {name:<9} {usd(agent_cost)}  ({plural(agent_calls, 'LLM call')}, {model})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
