"""Fake Gemini endpoints (Gemini Developer API and Vertex AI) for `FakeProviderServer`.

Point the real SDK at the server::

    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.base_url))
    # Vertex AI (express mode, API key):
    client = genai.Client(vertexai=True, api_key="test",
                          http_options=types.HttpOptions(base_url=server.base_url))

The routes match any API version and resource prefix (`/v1beta/models/...`,
`/v1beta1/projects/p/locations/l/publishers/google/models/...`, `/v1beta1/publishers/google/models/...`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from costspan.testing.server import FakeProviderServer, Reply, Request

_MODEL = r"/[^?]*?models/(?P<model>[^/:?]+)"
GENERATE_PATH = _MODEL + r":generateContent"
STREAM_PATH = _MODEL + r":streamGenerateContent"
BATCH_EMBED_PATH = _MODEL + r":batchEmbedContents"
EMBED_PATH = _MODEL + r":embedContent"
PREDICT_PATH = _MODEL + r":predict"


@dataclass
class GeminiUsage:
    """Numbers the fake reports in `usageMetadata` (Gemini's own, non-semconv terms)."""

    prompt_tokens: int = 120  # includes cached_tokens, as on the real API
    candidates_tokens: int = 40
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.prompt_tokens
            + self.candidates_tokens
            + self.thoughts_tokens
            + self.tool_use_prompt_tokens,
        }
        if self.cached_tokens:
            out["cachedContentTokenCount"] = self.cached_tokens
        if self.thoughts_tokens:
            out["thoughtsTokenCount"] = self.thoughts_tokens
        if self.tool_use_prompt_tokens:
            out["toolUsePromptTokenCount"] = self.tool_use_prompt_tokens
        return out


def _candidate(text: str, finish_reason: str | None, index: int = 0) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": index}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return candidate


def _model_version(request: Request, model_version: str | None) -> str:
    if model_version:
        return model_version
    match = re.search(r"models/([^/:?]+)", request.path)
    return match.group(1) if match else "gemini-2.5-flash"


def add_gemini_routes(
    server: FakeProviderServer,
    *,
    usage: GeminiUsage | None = None,
    model_version: str | None = None,
    response_id: str = "resp-gemini-1",
    text: str = "Hello from the fake Gemini.",
    stream_chunks: int = 3,
    embedding_dimensions: int = 4,
    embedding_prompt_tokens: int | None = 12,
) -> GeminiUsage:
    """Register generateContent, streamGenerateContent (SSE), batchEmbedContents, embedContent and
    predict routes. Returns the (mutable) usage the fake reports; `model_version=None` echoes the
    requested model. `embedding_prompt_tokens=None` answers embeddings without `usageMetadata`."""
    reported = usage if usage is not None else GeminiUsage()

    def generate(request: Request) -> Reply:
        return Reply(
            body={
                "candidates": [_candidate(text, "STOP")],
                "usageMetadata": reported.as_json(),
                "modelVersion": _model_version(request, model_version),
                "responseId": response_id,
            }
        )

    def stream(request: Request) -> Reply:
        version = _model_version(request, model_version)
        words = text.split(" ")
        per_chunk = max(1, -(-len(words) // max(1, stream_chunks)))
        pieces = [" ".join(words[i : i + per_chunk]) for i in range(0, len(words), per_chunk)]
        # `candidateCount` candidates stream one after another; all but the last end with MAX_TOKENS.
        requested = ((request.json() or {}).get("generationConfig") or {}).get("candidateCount")
        candidates = requested if isinstance(requested, int) and requested > 1 else 1
        events: list[str] = []
        for index in range(candidates):
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                reason = ("STOP" if index == candidates - 1 else "MAX_TOKENS") if last else None
                chunk: dict[str, Any] = {
                    "candidates": [_candidate(piece if last else piece + " ", reason, index)],
                    "modelVersion": version,
                    "responseId": response_id,
                }
                if last and index == candidates - 1:
                    chunk["usageMetadata"] = reported.as_json()
                else:
                    # Gemini sends a running total on intermediate chunks (prompt known, output growing).
                    chunk["usageMetadata"] = {
                        "promptTokenCount": reported.prompt_tokens,
                        "totalTokenCount": reported.prompt_tokens,
                    }
                events.append(json.dumps(chunk))
        return Reply.sse(events)

    def embedding(count: int) -> list[dict[str, Any]]:
        return [{"values": [0.1 * (j + 1) for j in range(embedding_dimensions)]} for _ in range(count)]

    def batch_embed(request: Request) -> Reply:
        body = request.json() or {}
        count = len(body.get("requests") or []) or 1
        reply: dict[str, Any] = {"embeddings": embedding(count)}
        if embedding_prompt_tokens is not None:
            reply["usageMetadata"] = {
                "promptTokenCount": embedding_prompt_tokens,
                "totalTokenCount": embedding_prompt_tokens,
            }
        return Reply(body=reply)

    def embed(request: Request) -> Reply:
        reply: dict[str, Any] = {"embedding": embedding(1)[0]}
        if embedding_prompt_tokens is not None:
            reply["usageMetadata"] = {
                "promptTokenCount": embedding_prompt_tokens,
                "totalTokenCount": embedding_prompt_tokens,
            }
        return Reply(body=reply)

    def predict(request: Request) -> Reply:
        body = request.json() or {}
        count = len(body.get("instances") or []) or 1
        tokens = embedding_prompt_tokens or 0
        return Reply(
            body={
                "predictions": [
                    {
                        "embeddings": {
                            **embedding(1)[0],
                            "statistics": {"token_count": tokens, "truncated": False},
                        }
                    }
                    for _ in range(count)
                ],
                "metadata": {"billableCharacterCount": 10 * count},
            }
        )

    server.route("POST", GENERATE_PATH, generate)
    server.route("POST", STREAM_PATH, stream)
    server.route("POST", BATCH_EMBED_PATH, batch_embed)
    server.route("POST", EMBED_PATH, embed)
    server.route("POST", PREDICT_PATH, predict)
    return reported


def gemini_error(status: int, message: str = "fake error", reason: str | None = None) -> Reply:
    """A Google API error body, as Gemini sends it (e.g. 429 RESOURCE_EXHAUSTED)."""
    names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    status_name = reason or names.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return Reply(status, {"error": {"code": status, "message": message, "status": status_name}})


def function_call_reply(
    name: str,
    args: dict[str, Any],
    usage: GeminiUsage,
    *,
    stream: bool = False,
    model_version: str = "gemini-2.5-flash",
    response_id: str = "resp-gemini-call",
) -> Reply:
    """A reply asking for a function call (for automatic function calling), JSON or one SSE chunk;
    queue it with `server.script(...)` before the routes' final answer."""
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"functionCall": {"name": name, "args": args}}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage.as_json(),
        "modelVersion": model_version,
        "responseId": response_id,
    }
    return Reply.sse([json.dumps(body)]) if stream else Reply(body=body)


def continuation_reply(
    text: str,
    usage: GeminiUsage,
    *,
    token: str = "Y29udGludWUtaGVyZQ==",
    model_version: str = "gemini-2.5-flash",
    response_id: str = "resp-gemini-part",
) -> Reply:
    """A generateContent reply cut at the per-request token limit (`finishReason: CONTINUATION` with a
    base64 `continuationToken`): the SDK's automatic continuation sends the request again. Queue it
    with `server.script(...)` before the routes' final answer."""
    return Reply(
        body={
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "CONTINUATION",
                    "continuationToken": token,
                    "index": 0,
                }
            ],
            "usageMetadata": usage.as_json(),
            "modelVersion": model_version,
            "responseId": response_id,
        }
    )


def fake_credentials() -> Any:
    """Google credentials whose token is `fake-token`, for `genai.Client(vertexai=True, project=...,
    location=..., credentials=fake_credentials(), http_options=HttpOptions(base_url=...))`."""
    from google.auth import credentials as google_credentials

    class _FakeCredentials(google_credentials.Credentials):  # type: ignore[misc]
        def refresh(self, request: Any) -> None:
            self.token = "fake-token"

    return _FakeCredentials()
