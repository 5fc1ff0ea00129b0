"""One fake server answering for OpenAI, Anthropic and Gemini at once, for examples and your own tests.

```python
from costspan.testing.all_providers import AllProvidersServer

with AllProvidersServer() as fake:
    openai_client = OpenAI(base_url=fake.openai_base_url, api_key="fake")
    claude = Anthropic(base_url=fake.anthropic_base_url, api_key="fake")
    gemini = genai.Client(api_key="fake", http_options=types.HttpOptions(base_url=fake.gemini_base_url))
```

Every reply reports the same usage per provider (`DEFAULT_USAGE` unless given), so costs are known in
advance. To answer the next OpenAI chat request with a tool call (an agent loop), queue
`openai_chat_reply(usage, tool_calls=[...])` with `fake.script(reply, path_pattern=CHAT_PATH)`.

From a shell, `python -m costspan.testing.all_providers [--port N]` serves on 127.0.0.1 until
interrupted and prints one `export` line per variable the SDKs read: base URLs (`OPENAI_BASE_URL`,
`ANTHROPIC_BASE_URL`, `GOOGLE_GEMINI_BASE_URL`) and API keys (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
`GEMINI_API_KEY`; the fake takes any key), so that `eval` of its output lets `OpenAI()`,
`Anthropic()` and `genai.Client()` work unchanged.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from costspan.testing.anthropic import AnthropicUsage, add_anthropic_routes
from costspan.testing.google_genai import GeminiUsage, add_gemini_routes
from costspan.testing.openai import CHAT_PATH, CREATED, SYSTEM_FINGERPRINT, OpenAIUsage, add_openai_routes
from costspan.testing.openai import snapshot as openai_snapshot
from costspan.testing.server import FakeProviderServer, Reply

__all__ = [
    "CHAT_PATH",
    "DEFAULT_USAGE",
    "FAKE_API_KEY",
    "AllProvidersServer",
    "FakeUsage",
    "ToolCall",
    "main",
    "openai_chat_reply",
]


@dataclass(frozen=True)
class FakeUsage:
    """What each provider's fake reports on every reply (each in the provider's own terms)."""

    openai: OpenAIUsage = field(
        default_factory=lambda: OpenAIUsage(prompt_tokens=1200, completion_tokens=300)
    )
    anthropic: AnthropicUsage = field(
        default_factory=lambda: AnthropicUsage(input_tokens=1500, output_tokens=400)
    )
    gemini: GeminiUsage = field(
        default_factory=lambda: GeminiUsage(prompt_tokens=2000, candidates_tokens=250)
    )


DEFAULT_USAGE = FakeUsage()
# What `environment()` gives the SDKs as their API key: the fake accepts any.
FAKE_API_KEY = "costspan-fake-key"


class AllProvidersServer(FakeProviderServer):
    """A `FakeProviderServer` with the OpenAI, Anthropic and Gemini routes on one 127.0.0.1 port."""

    def __init__(self, usage: FakeUsage = DEFAULT_USAGE, *, port: int = 0) -> None:
        super().__init__(port)
        self.usage = usage
        add_openai_routes(self, usage=usage.openai)
        add_anthropic_routes(self, usage=usage.anthropic)
        add_gemini_routes(self, usage=usage.gemini)

    @property
    def openai_base_url(self) -> str:
        """`OpenAI(base_url=...)`: the SDK's base URL includes the API version."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """`genai.Client(http_options=types.HttpOptions(base_url=...))`."""
        return self.base_url

    def environment(self) -> dict[str, str]:
        """The variables each SDK reads for its base URL and API key, pointing at this server."""
        return {
            "OPENAI_BASE_URL": self.openai_base_url,
            "ANTHROPIC_BASE_URL": self.anthropic_base_url,
            "GOOGLE_GEMINI_BASE_URL": self.gemini_base_url,
            "OPENAI_API_KEY": FAKE_API_KEY,
            "ANTHROPIC_API_KEY": FAKE_API_KEY,
            "GEMINI_API_KEY": FAKE_API_KEY,
        }


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake model asks for: `name(**arguments)`."""

    name: str
    arguments: Mapping[str, Any]
    id: str = "call_fake0"


def openai_chat_reply(
    usage: OpenAIUsage,
    *,
    text: str | None = None,
    tool_calls: Sequence[ToolCall] = (),
    model: str = "gpt-4o",
) -> Reply:
    """A Chat Completions reply as the API sends it: `text`, or a request for `tool_calls` (finish
    reason `tool_calls`), reporting `usage`. Queue it with `server.script(reply, path_pattern=CHAT_PATH)`
    to script a conversation turn by turn. Not for `stream=True`."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
            }
            for call in tool_calls
        ]
    body = {
        "id": "chatcmpl-fakescripted",
        "object": "chat.completion",
        "created": CREATED,
        "model": openai_snapshot(model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": usage.chat_json(),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return Reply(200, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; print `export` lines for the SDKs' base-URL and API-key variables."""
    parser = argparse.ArgumentParser(
        prog="python -m costspan.testing.all_providers",
        description="A fake OpenAI / Anthropic / Gemini API on 127.0.0.1, for offline runs of the real SDKs. "
        "It prints the `export` lines (base URLs and API keys) that point the SDKs at it.",
    )
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    try:
        server = AllProvidersServer(port=args.port)
    except OSError as exc:
        reason = exc.strerror or exc
        parser.exit(2, f"{parser.prog}: error: cannot listen on 127.0.0.1:{args.port}: {reason}\n")
    with server:
        for name, value in server.environment().items():
            print(f"export {name}={shlex.quote(value)}")
        print("# the fake takes any API key; Ctrl-C stops the server", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {port}")
    return port


if __name__ == "__main__":
    raise SystemExit(main())
