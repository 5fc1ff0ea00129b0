"""A fake model for agent loops (OpenAI and Anthropic): asks for one tool call, then answers once the
result is in.

Stateless, like the real API: a request that offers tools and carries no tool result yet is
answered with a call of `tool_name(**arguments)`; a request that carries a tool result (a `tool`
message on Chat Completions, a `function_call_output` item on Responses, a `tool_result` block on
Anthropic's Messages API) is answered with `text`.
A two-turn tool-calling agent therefore makes exactly two requests, whatever framework drives it.
Both routes stream when asked (`stream=True`; chat usage only with `stream_options.include_usage`,
as the real API). Every reply carries a new id (`chatcmpl-turn<N>` / `resp_turn<N>`).

```python
server = FakeProviderServer()
add_agent_turn_routes(server, usage=OpenAIUsage(1000, 200, cached_tokens=400), tool_name="get_weather")
add_anthropic_agent_turn_routes(
    server, usage=AnthropicUsage(600, 200, cache_read_input_tokens=400), tool_name="get_weather"
)
```

The Anthropic route (`POST .../v1/messages`) answers a tool call with a `tool_use` block and
`stop_reason: "tool_use"`, the answer with a `text` block and `"end_turn"`; ids `msg_turn<N>` /
`toolu_turn<N>`. With `"stream": true` it sends the events the real API sends: `message_start` (usage
with the input and cache counts, `output_tokens` a placeholder), `content_block_start`, `ping`,
`content_block_delta`s (`input_json_delta` / `text_delta`), `content_block_stop`, `message_delta`
(stop reason and the final, cumulative usage), `message_stop`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from costspan.testing.anthropic import MESSAGES_PATH, AnthropicUsage
from costspan.testing.anthropic import snapshot as anthropic_snapshot
from costspan.testing.openai import (
    CHAT_PATH,
    CREATED,
    RESPONSES_PATH,
    SYSTEM_FINGERPRINT,
    OpenAIUsage,
    responses_api_object,
    snapshot,
)
from costspan.testing.server import FakeProviderServer, Reply, Request

__all__ = ["add_agent_turn_routes", "add_anthropic_agent_turn_routes", "has_tool_result"]


def has_tool_result(body: Mapping[str, Any]) -> bool:
    """Whether the request already carries a tool's result (the model's second turn)."""
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    items = body.get("input")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                return True
    return False


def add_agent_turn_routes(
    server: FakeProviderServer,
    *,
    usage: OpenAIUsage,
    tool_name: str,
    arguments: Mapping[str, Any] | None = None,
    text: str = "It is sunny.",
) -> None:
    """Register POST `.../chat/completions` and `.../responses` answering an agent's two turns.

    Register before any other OpenAI routes on the same server (the first matching route answers).
    Every reply reports `usage`.
    """
    call_arguments = json.dumps(dict(arguments or {}))
    numbers = itertools.count(1)

    def wants_tool(body: Mapping[str, Any]) -> bool:
        return bool(body.get("tools")) and not has_tool_result(body)

    def chat(request: Request) -> Reply:
        body = request.json() or {}
        n = next(numbers)
        reply_id = f"chatcmpl-turn{n}"
        call_id = f"call_turn{n}"
        model = snapshot(body.get("model") if isinstance(body.get("model"), str) else None)
        tool = wants_tool(body)
        finish = "tool_calls" if tool else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if tool else text,
                "refusal": None,
                "annotations": [],
            }
            if tool:
                message["tool_calls"] = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool_name, "arguments": call_arguments},
                    }
                ]
            return Reply(
                200,
                {
                    "id": reply_id,
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": usage.chat_json(),
                    "service_tier": "default",
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                },
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                out["usage"] = usage.chat_json() if delta is None else None
            return out

        if tool:
            first = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": tool_name, "arguments": ""},
                    }
                ],
            }
            middle = [{"tool_calls": [{"index": 0, "function": {"arguments": call_arguments}}]}]
        else:
            first = {"role": "assistant", "content": "", "refusal": None}
            middle = [{"content": piece} for piece in _pieces(text)]
        events = [chunk(first)] + [chunk(delta) for delta in middle] + [chunk({}, finish)]
        if include_usage:
            events.append(chunk(None))
        return Reply.sse([json.dumps(event, separators=(",", ":")) for event in events] + ["[DONE]"])

    def responses(request: Request) -> Reply:
        body = request.json() or {}
        n = next(numbers)
        response_id = f"resp_turn{n}"
        model = snapshot(body.get("model") if isinstance(body.get("model"), str) else None)
        if wants_tool(body):
            item: dict[str, Any] = {
                "id": f"fc_turn{n}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_turn{n}",
                "name": tool_name,
                "arguments": call_arguments,
            }
        else:
            item = {
                "id": f"msg_turn{n}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        done = responses_api_object(response_id, model, "completed", [item], usage.responses_json())
        if not body.get("stream"):
            return Reply(200, done)
        seq = itertools.count()
        in_progress = responses_api_object(response_id, model, "in_progress", [], None)
        started = dict(item, status="in_progress")
        if item["type"] == "function_call":
            started["arguments"] = ""
        else:
            started["content"] = []
        events: list[tuple[str, Any]] = [
            ("response.created", {"response": in_progress}),
            ("response.in_progress", {"response": in_progress}),
            ("response.output_item.added", {"output_index": 0, "item": started}),
        ]
        if item["type"] == "function_call":
            events.append(
                (
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": 0, "delta": call_arguments},
                )
            )
            events.append(
                (
                    "response.function_call_arguments.done",
                    {"item_id": item["id"], "output_index": 0, "arguments": call_arguments},
                )
            )
        else:
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            events.append(("response.content_part.added", {**where, "part": part}))
            for piece in _pieces(text):
                events.append(("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
            events.append(("response.output_text.done", {**where, "text": text, "logprobs": []}))
            events.append(("response.content_part.done", {**where, "part": dict(part, text=text)}))
        events.append(("response.output_item.done", {"output_index": 0, "item": item}))
        events.append(("response.completed", {"response": done}))
        return Reply.sse(
            [(name, {"type": name, "sequence_number": next(seq), **data}) for name, data in events]
        )

    server.route("POST", CHAT_PATH, chat)
    server.route("POST", RESPONSES_PATH, responses)


def add_anthropic_agent_turn_routes(
    server: FakeProviderServer,
    *,
    usage: AnthropicUsage,
    tool_name: str,
    arguments: Mapping[str, Any] | None = None,
    text: str = "It is sunny.",
) -> None:
    """Register POST `.../v1/messages` answering an agent's two turns (Anthropic's Messages API).

    Register before any other Anthropic routes on the same server (the first matching route
    answers). Every reply reports `usage` (Anthropic's terms: `input_tokens` excludes the cache
    counts).
    """
    call_input = dict(arguments or {})
    numbers = itertools.count(1)
    headers = {"request-id": "req_fakeagentturn", "anthropic-organization-id": "org-fake"}

    def messages(request: Request) -> Reply:
        body = request.json() or {}
        n = next(numbers)
        model = anthropic_snapshot(body.get("model") if isinstance(body.get("model"), str) else None)
        tool = bool(body.get("tools")) and not has_tool_result(body)
        stop_reason = "tool_use" if tool else "end_turn"
        block: dict[str, Any] = (
            {"type": "tool_use", "id": f"toolu_turn{n}", "name": tool_name, "input": call_input}
            if tool
            else {"type": "text", "text": text}
        )
        message = {
            "id": f"msg_turn{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage.json(),
        }
        if not body.get("stream"):
            return Reply(200, message, headers=headers)
        start = {**message, "content": [], "stop_reason": None, "usage": usage.json(output_tokens=1)}
        if tool:
            opened: dict[str, Any] = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(call_input)}]
        else:
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(text)]
        final_usage = usage.json()
        final_usage.pop("service_tier", None)
        final_usage.pop("cache_creation", None)
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": opened}),
            ("ping", {"type": "ping"}),
            *[
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
                for delta in deltas
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": final_usage,
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return Reply.sse(events, headers=headers)

    server.route("POST", MESSAGES_PATH, messages)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]
