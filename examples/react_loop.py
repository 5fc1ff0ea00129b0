"""A ReAct agent: think (an LLM call), act (a tool), observe, until the model answers, under a budget.

    python examples/react_loop.py [--budget USD] [--question TEXT]

Every turn is a step: `think N` holds the gpt-4o call, `act N` the tool it asked for. The task's
budget (default $0.05) is checked before each LLM call: once spent, the next call is refused before
it is sent (`costspan.BudgetExceeded`) and the loop stops. Try `--budget 0.003`.

Offline (no OPENAI_API_KEY) the fake OpenAI answers as a model would, scripted below: three tool
calls, then the answer, each turn reading a longer conversation.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from _support import Providers, failed_calls, plural, rollup, setup, usd

import costspan
from costspan.testing.all_providers import CHAT_PATH, ToolCall, openai_chat_reply
from costspan.testing.openai import OpenAIUsage

MODEL = "gpt-4o"
CUSTOMER_ID = "cus_4410"
QUESTION = "How many times more people live in France than in Portugal?"
POPULATION_M = {"france": 68.4, "portugal": 10.6, "spain": 48.6}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_population",
            "description": "Population of a country, in millions.",
            "parameters": {
                "type": "object",
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "divide",
            "description": "a / b",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
]

# What the fake model says, turn by turn (the conversation it reads grows each turn).
FAKE_TURNS = [
    openai_chat_reply(
        OpenAIUsage(prompt_tokens=400, completion_tokens=30),
        tool_calls=[ToolCall("lookup_population", {"country": "France"}, id="call_1")],
    ),
    openai_chat_reply(
        OpenAIUsage(prompt_tokens=520, completion_tokens=30),
        tool_calls=[ToolCall("lookup_population", {"country": "Portugal"}, id="call_2")],
    ),
    openai_chat_reply(
        OpenAIUsage(prompt_tokens=640, completion_tokens=40),
        tool_calls=[ToolCall("divide", {"a": 68.4, "b": 10.6}, id="call_3")],
    ),
    openai_chat_reply(
        OpenAIUsage(prompt_tokens=760, completion_tokens=60),
        text="About 6.45 times: France has 68.4 million people, Portugal 10.6 million.",
    ),
]


def run_tool(name: str, arguments: dict[str, Any]) -> str:
    if name == "lookup_population":
        found = POPULATION_M.get(str(arguments.get("country", "")).lower())
        return "unknown country" if found is None else f"{found} million"
    if name == "divide":
        return f"{float(arguments['a']) / float(arguments['b']):.4f}"
    return f"no tool named {name}"


def react(client: Any, question: str, max_turns: int = 8) -> str:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer with the tools given. Think step by step."},
        {"role": "user", "content": question},
    ]
    for turn in range(1, max_turns + 1):
        with costspan.step(f"think {turn}"):
            reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        calls = [call for call in message.tool_calls if call.type == "function"]
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                    for call in calls
                ],
            }
        )
        with costspan.step(f"act {turn}"):
            for call in calls:
                with costspan.tool(call.function.name):
                    observation = run_tool(call.function.name, json.loads(call.function.arguments or "{}"))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": observation})
    return f"(no answer after {max_turns} turns)"


def usd_amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not an amount of USD: {text!r}")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--budget", type=usd_amount, default=Decimal("0.05"), help="task budget, USD")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)

    setup()
    providers = Providers()
    client = providers.openai()
    if providers.is_fake("openai"):
        for reply in FAKE_TURNS:
            providers.fake.script(reply, path_pattern=CHAT_PATH)
    answer = None
    try:
        with (
            costspan.task("react-research", customer_id=CUSTOMER_ID, feature="assistant") as task_span,
            costspan.budget(args.budget, scope="task") as spend,
        ):
            try:
                with costspan.agent("react"):
                    answer = react(client, args.question)
            except costspan.BudgetExceeded as exc:
                print(f"stopped by the budget: {exc}")
    finally:
        providers.close()
    cost, calls = rollup(task_span)
    print(f"\nanswer: {answer}" if answer is not None else "\nno answer")
    failed = failed_calls(task_span)
    refused = f" ({failed} refused or failed)" if failed else ""
    print(f"react-research for {CUSTOMER_ID}: {usd(cost)} in {plural(calls, 'LLM call')}{refused}")
    print(f"budget: spent {usd(spend.spent_usd)} of {usd(spend.limit_usd)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
