"""Fake OpenAI endpoints (Chat Completions, Responses, Embeddings) for `FakeProviderServer`.

Point the real SDK at the server::

    client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=2)
    # Azure OpenAI (requests go to /openai/deployments/{deployment}/...):
    client = AzureOpenAI(azure_endpoint=server.base_url, api_key="test", api_version="2024-10-21")

Replies look like the real API's: `id`, `object`, `created`, a dated `model` snapshot
(`gpt-4o` -> `gpt-4o-2024-08-06`), `usage` with `prompt_tokens_details.cached_tokens` and
`completion_tokens_details.reasoning_tokens`. With `stream=True` the chat route sends
`chat.completion.chunk` events, then (only when the request asked for
`stream_options={"include_usage": true}`) a final chunk with `"choices": []` and the usage, then
`data: [DONE]`; the Responses route sends named events `response.created` ... `response.completed`.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any

from costspan.testing.server import FakeProviderServer, Reply, Request

CHAT_PATH = r"(/.*)?/chat/completions"
RESPONSES_PATH = r"(/.*)?/responses"
EMBEDDINGS_PATH = r"(/.*)?/embeddings"

# Requested model -> the dated snapshot the API answers with.
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
}
CREATED = 1_760_000_000
SYSTEM_FINGERPRINT = "fp_fake0001"


@dataclass
class OpenAIUsage:
    """Numbers the fake reports (OpenAI's terms: prompt tokens include cached tokens, completion
    tokens include reasoning tokens)."""

    prompt_tokens: int = 120
    completion_tokens: int = 40
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def chat_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def responses_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }

    def embeddings_json(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens}


def snapshot(model: str | None) -> str:
    """The dated model name the API reports for a requested model name."""
    if not model:
        return "gpt-4o-2024-08-06"
    return SNAPSHOTS.get(model, model)


def openai_error(status: int, message: str = "fake error", *, retry_after_ms: int | None = None) -> Reply:
    """An error reply shaped like the API's (`{"error": {...}}`)."""
    kinds = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        429: "rate_limit_exceeded",
        500: "server_error",
        503: "server_error",
    }
    body = {
        "error": {"message": message, "type": kinds.get(status, "api_error"), "param": None, "code": None}
    }
    headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
    return Reply(status, body, headers=headers)


def responses_api_object(
    response_id: str, model: str, status: str, output: list[Any], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A Responses API `response` object as the API returns it (and streams it in events)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _get_path(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _model(request: Request, body: dict[str, Any]) -> str:
    model = body.get("model")
    if isinstance(model, str) and model:
        return model
    # Azure: /openai/deployments/{deployment}/...
    parts = request.path.split("?", 1)[0].split("/")
    if "deployments" in parts:
        index = parts.index("deployments")
        if index + 1 < len(parts):
            return parts[index + 1]
    return "gpt-4o"


def add_openai_routes(
    server: FakeProviderServer,
    *,
    usage: OpenAIUsage | None = None,
    embedding_usage: OpenAIUsage | None = None,
    response_model: str | None = None,
    completion_id: str = "chatcmpl-fake123",
    response_id: str = "resp_fake123",
    text: str = "Hello from the fake OpenAI.",
    stream_chunks: int = 3,
    finish_reason: str = "stop",
    embedding_dimensions: int = 4,
    compact_stream: bool = True,
) -> None:
    """Register POST `.../chat/completions`, `.../responses` and `.../embeddings` on `server`.

    `usage` is what chat and responses report; `embedding_usage` what embeddings report
    (defaults: `OpenAIUsage()` and 8 prompt tokens). `response_model` overrides the dated model.
    Chat chunks are compact JSON as the real API sends them (`compact_stream=False`: with spaces).
    """
    separators = (",", ":") if compact_stream else (", ", ": ")
    chat_usage = usage or OpenAIUsage()
    embed_usage = embedding_usage or OpenAIUsage(prompt_tokens=8, completion_tokens=0)

    def model_of(request: Request, body: dict[str, Any]) -> str:
        return response_model or snapshot(_model(request, body))

    def pieces() -> list[str]:
        words = text.split(" ")
        n = max(1, min(stream_chunks, len(words)))
        size = -(-len(words) // n)
        out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [p if i == 0 else " " + p for i, p in enumerate(out)]

    def message_text(body: dict[str, Any]) -> str:
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            return '{"answer": "' + text + '"}'
        return text

    def chat(request: Request) -> Reply:
        body = request.json() or {}
        model = model_of(request, body)
        if body.get("stream"):
            return Reply.sse(chat_stream(body, model))
        return Reply(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": message_text(body),
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": chat_usage.chat_json(),
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            },
        )

    def chat_stream(body: dict[str, Any], model: str) -> list[Any]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(choices: list[Any], chunk_usage: Any = None, last: bool = False) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices,
            }
            if include_usage:  # the real API then sends "usage": null on every other chunk
                out["usage"] = chunk_usage
            return out

        # `n` choices stream one after another; all but the last end with "length".
        requested = body.get("n")
        choices = requested if isinstance(requested, int) and requested > 1 else 1
        events: list[Any] = []
        for index in range(choices):
            events.append(
                chunk(
                    [
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": "", "refusal": None},
                            "finish_reason": None,
                        }
                    ]
                )
            )
            for piece in pieces():
                events.append(chunk([{"index": index, "delta": {"content": piece}, "finish_reason": None}]))
            reason = finish_reason if index == choices - 1 else "length"
            events.append(chunk([{"index": index, "delta": {}, "finish_reason": reason}]))
        if include_usage:
            events.append(chunk([], chat_usage.chat_json()))
        return [json.dumps(e, separators=separators) for e in events] + ["[DONE]"]

    def response_object(
        model: str, status: str, with_usage: bool, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        output = []
        text_format = _get_path(body, "text", "format", "type")
        out_text = '{"answer": "' + text + '"}' if text_format == "json_schema" else text
        if status == "completed":
            output = [
                {
                    "id": "msg_fake123",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": out_text, "annotations": [], "logprobs": []}],
                }
            ]
        return responses_api_object(
            response_id, model, status, output, chat_usage.responses_json() if with_usage else None
        )

    def responses(request: Request) -> Reply:
        body = request.json() or {}
        model = model_of(request, body)
        if not body.get("stream"):
            return Reply(200, response_object(model, "completed", True, body))
        seq = iter(range(1_000))
        events: list[Any] = [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": next(seq),
                    "response": response_object(model, "in_progress", False),
                },
            ),
            (
                "response.in_progress",
                {
                    "type": "response.in_progress",
                    "sequence_number": next(seq),
                    "response": response_object(model, "in_progress", False),
                },
            ),
            (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(seq),
                    "output_index": 0,
                    "item": {
                        "id": "msg_fake123",
                        "type": "message",
                        "status": "in_progress",
                        "role": "assistant",
                        "content": [],
                    },
                },
            ),
            (
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    "sequence_number": next(seq),
                    "item_id": "msg_fake123",
                    "output_index": 0,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                },
            ),
        ]
        for piece in pieces():
            events.append(
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(seq),
                        "item_id": "msg_fake123",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    },
                )
            )
        events.append(
            (
                "response.output_text.done",
                {
                    "type": "response.output_text.done",
                    "sequence_number": next(seq),
                    "item_id": "msg_fake123",
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                },
            )
        )
        done = response_object(model, "completed", True)
        events.append(
            (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": 0,
                    "item": done["output"][0],
                },
            )
        )
        events.append(
            (
                "response.completed",
                {"type": "response.completed", "sequence_number": next(seq), "response": done},
            )
        )
        return Reply.sse(events)

    def embeddings(request: Request) -> Reply:
        body = request.json() or {}
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        dims = body.get("dimensions") or embedding_dimensions
        data = []
        for index in range(count):
            vector = [round(0.01 * (index + 1) * (d + 1), 4) for d in range(dims)]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        model = response_model or _model(request, body)
        return Reply(
            200, {"object": "list", "data": data, "model": model, "usage": embed_usage.embeddings_json()}
        )

    server.route("POST", CHAT_PATH, chat)
    server.route("POST", RESPONSES_PATH, responses)
    server.route("POST", EMBEDDINGS_PATH, embeddings)
