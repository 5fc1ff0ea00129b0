"""Fake Anthropic Messages API endpoints for `FakeProviderServer`: the first-party API, Amazon Bedrock
and Google Vertex AI, as the real `anthropic` SDK clients call them.

Point the real SDK at the server::

    client = Anthropic(base_url=server.base_url, api_key="test")
    bedrock = AnthropicBedrock(base_url=server.base_url, api_key="test", aws_region="us-east-1")
    vertex = AnthropicVertex(base_url=server.base_url, region="us-east5", project_id="p", access_token="t")

Replies look like the real APIs': a `msg_...` id, the model name the API reports (an alias answers
with its dated snapshot: `claude-haiku-4-5` -> `claude-haiku-4-5-20251001`, and so do Bedrock's
`anthropic.claude-haiku-4-5-20251001-v1:0` and Vertex's `claude-haiku-4-5@20251001`; a model without
snapshots answers with its own name: `claude-sonnet-4-6`, Bedrock's `anthropic.claude-sonnet-4-6`,
Vertex's `claude-sonnet-4-6` -> `claude-sonnet-4-6`), `usage` in Anthropic's terms
(`input_tokens` EXCLUDES `cache_read_input_tokens` and `cache_creation_input_tokens`). With
`"stream": true` (first party, Vertex `:streamRawPredict`) the reply is server-sent events:
`message_start` (usage with the input and cache counts, `output_tokens` a placeholder),
`content_block_start`, `ping`, `content_block_delta`..., `content_block_stop`, `message_delta` (stop
reason and the final, cumulative usage), `message_stop`. Bedrock's `invoke-with-response-stream` sends
the same events as AWS event-stream frames (`application/vnd.amazon.eventstream`), each a
`{"bytes": base64(event)}` chunk, with `amazon-bedrock-invocationMetrics` on `message_stop`.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from costspan.testing.server import FakeProviderServer, Reply, Request

MESSAGES_PATH = r"(/.*)?/v1/messages"
COUNT_TOKENS_PATH = r"(/.*)?/v1/messages/count_tokens"
BEDROCK_INVOKE_PATH = r"/model/(?P<model>[^/]+)/invoke"
BEDROCK_STREAM_PATH = r"/model/(?P<model>[^/]+)/invoke-with-response-stream"
VERTEX_PREDICT_PATH = (
    r".*/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)

# Requested alias -> the dated snapshot the API answers with.
SNAPSHOTS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",  # end of life 2026-11-30; answered until then
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
}
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.(?P<name>.+?)(?:-v\d+(?::\d+)?)?$")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_BEDROCK_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass
class AnthropicUsage:
    """Numbers the fake reports, in Anthropic's terms: `input_tokens` excludes cached tokens;
    `output_tokens` includes `thinking_tokens` (reported in `output_tokens_details` when not zero)."""

    input_tokens: int = 100
    output_tokens: int = 40
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    thinking_tokens: int = 0

    def json(self, *, output_tokens: int | None = None) -> dict[str, Any]:
        """The `usage` object; `output_tokens` replaces the final count (`message_start`'s placeholder)."""
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }
        if self.thinking_tokens and output_tokens is None:
            out["output_tokens_details"] = {"thinking_tokens": self.thinking_tokens}
        return out


def snapshot(model: str | None) -> str:
    """The model name the API reports for a requested model name (or Bedrock / Vertex model id)."""
    if not model:
        return "claude-sonnet-4-6"
    match = _BEDROCK_ID.match(model)
    if match:
        model = match.group("name")
    model = model.replace("@", "-")
    return SNAPSHOTS.get(model, model)


def anthropic_error(status: int, message: str = "fake error", *, retry_after_s: float | None = None) -> Reply:
    """An error reply shaped like the Anthropic API's (`{"type": "error", "error": {...}}`)."""
    body = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": "req_fakeerror",
    }
    headers = {"request-id": "req_fakeerror"}
    if retry_after_s is not None:
        headers["retry-after"] = str(retry_after_s)
    return Reply(status, body, headers=headers)


def bedrock_error(status: int, message: str = "fake error") -> Reply:
    """An error reply shaped like Amazon Bedrock's (`{"message": ...}` and `x-amzn-ErrorType`)."""
    kind = _BEDROCK_ERRORS.get(status, "InternalServerException")
    return Reply(status, {"message": message}, headers={"x-amzn-errortype": f"{kind}:http://internal"})


def vertex_error(status: int, message: str = "fake error") -> Reply:
    """An error reply shaped like Google Vertex AI's (`{"error": {"code", "message", "status"}}`)."""
    statuses = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
    body = {"error": {"code": status, "message": message, "status": statuses.get(status, "UNKNOWN")}}
    return Reply(status, body)


def event_stream_frame(payload: bytes, headers: dict[str, str]) -> bytes:
    """One AWS event-stream message: prelude (total and header lengths, CRC32), string headers,
    payload, message CRC32."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value))
        encoded += raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_chunk(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return event_stream_frame(payload, headers)


def add_anthropic_routes(
    server: FakeProviderServer,
    *,
    usage: AnthropicUsage | None = None,
    response_model: str | None = None,
    message_id: str = "msg_fake0123456789",
    text: str = "Hello from the fake Claude.",
    stream_chunks: int = 3,
    stop_reason: str = "end_turn",
    cumulative_delta_usage: bool = True,
    count_tokens: int = 42,
) -> None:
    """Register the Messages API (`/v1/messages`, `/v1/messages/count_tokens`), Bedrock's
    `/model/{id}/invoke[-with-response-stream]` and Vertex AI's `...:rawPredict` / `:streamRawPredict`.

    `cumulative_delta_usage`: `message_delta` carries the full cumulative usage (what the API sends
    today); False sends only `{"output_tokens": n}` there (as older API versions did).
    """
    reported = usage or AnthropicUsage()

    def pieces() -> list[str]:
        words = text.split(" ")
        n = max(1, min(stream_chunks, len(words)))
        size = -(-len(words) // n)
        out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [p if i == 0 else " " + p for i, p in enumerate(out)]

    def message(model: str) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": response_model or snapshot(model),
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": reported.json(),
        }

    def events(model: str) -> list[tuple[str, dict[str, Any]]]:
        start = {
            **message(model),
            "content": [],
            "stop_reason": None,
            "usage": reported.json(output_tokens=1),
        }
        out: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            ("ping", {"type": "ping"}),
        ]
        for piece in pieces():
            delta = {"type": "text_delta", "text": piece}
            out.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        delta_usage = reported.json()
        if not cumulative_delta_usage:
            delta_usage = {k: v for k, v in delta_usage.items() if k.startswith("output_tokens")}
        delta_usage.pop("service_tier", None)
        delta_usage.pop("cache_creation", None)
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    headers = {"request-id": "req_fake0123456789", "anthropic-organization-id": "org-fake"}

    def messages(request: Request) -> Reply:
        body = request.json() or {}
        model = str(body.get("model") or "")
        if body.get("stream"):
            return Reply.sse(events(model), headers=headers)
        return Reply(200, message(model), headers=headers)

    def tokens(request: Request) -> Reply:
        return Reply(200, {"input_tokens": count_tokens}, headers=headers)

    def path_model(request: Request, pattern: str) -> str:
        match = re.fullmatch(pattern, request.path.split("?", 1)[0])
        return unquote(match.group("model")) if match else ""

    def bedrock_invoke(request: Request) -> Reply:
        return Reply(200, message(path_model(request, BEDROCK_INVOKE_PATH)))

    def bedrock_stream(request: Request) -> Reply:
        frames = b""
        for name, event in events(path_model(request, BEDROCK_STREAM_PATH)):
            if name == "ping":
                continue  # Bedrock does not forward pings
            if name == "message_stop":
                event = {
                    **event,
                    "amazon-bedrock-invocationMetrics": {
                        "inputTokenCount": reported.input_tokens,
                        "outputTokenCount": reported.output_tokens,
                        "invocationLatency": 321,
                        "firstByteLatency": 123,
                    },
                }
            frames += bedrock_chunk(event)
        return Reply(200, raw=frames, headers={"content-type": "application/vnd.amazon.eventstream"})

    def vertex_predict(request: Request) -> Reply:
        match = re.fullmatch(VERTEX_PREDICT_PATH, request.path.split("?", 1)[0])
        model = unquote(match.group("model")) if match else ""
        if match and match.group("model") == "count-tokens":
            return tokens(request)
        body = request.json() or {}
        if body.get("stream") or (match and match.group("method") == "streamRawPredict"):
            return Reply.sse(events(model))
        return Reply(200, message(model))

    server.route("POST", COUNT_TOKENS_PATH, tokens)
    server.route("POST", MESSAGES_PATH, messages)
    server.route("POST", BEDROCK_STREAM_PATH, bedrock_stream)
    server.route("POST", BEDROCK_INVOKE_PATH, bedrock_invoke)
    server.route("POST", VERTEX_PREDICT_PATH, vertex_predict)
