"""What every example shares: costspan set up in one call, and SDK clients that talk to the real API
when its key is set, else to the fake provider bundled with costspan (started here, on 127.0.0.1).

Per provider: OPENAI_API_KEY for OpenAI; ANTHROPIC_API_KEY for Anthropic; GEMINI_API_KEY or
GOOGLE_API_KEY for Gemini. A provider whose key is missing is faked; the others are real.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import costspan
from costspan import attributes as attrs
from costspan.testing.all_providers import AllProvidersServer

if TYPE_CHECKING:
    from anthropic import Anthropic
    from google.genai import Client as GeminiClient
    from openai import OpenAI

KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


def setup() -> costspan.CostspanSetup:
    """costspan on the global OpenTelemetry providers, printing each trace's cost tree.

    Offline by default: spans go nowhere but the console unless OTEL_TRACES_EXPORTER says otherwise
    (e.g. `OTEL_TRACES_EXPORTER=otlp` for a Collector on localhost:4317). Under
    `opentelemetry-instrument` the providers already exist and nothing is added twice.
    """
    for variable in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        os.environ.setdefault(variable, "none")
    return costspan.configure(console_tree=True)


def has_key(provider: str) -> bool:
    return any(os.environ.get(name) for name in KEYS[provider])


class Providers:
    """SDK clients, real or fake per provider; the fake server starts on first need."""

    def __init__(self) -> None:
        self._fake: AllProvidersServer | None = None

    @property
    def fake(self) -> AllProvidersServer:
        if self._fake is None:
            self._fake = AllProvidersServer().start()
        return self._fake

    def is_fake(self, provider: str) -> bool:
        return not has_key(provider)

    def _announce(self, provider: str, url: str) -> None:
        if self.is_fake(provider):
            keys = " or ".join(KEYS[provider])
            print(f"[{provider}] fake provider at {url} (set {keys} for the real API)")
        else:
            print(f"[{provider}] real API")

    def openai(self) -> OpenAI:
        from openai import OpenAI

        if self.is_fake("openai"):
            self._announce("openai", self.fake.openai_base_url)
            return OpenAI(base_url=self.fake.openai_base_url, api_key="fake")
        self._announce("openai", "")
        return OpenAI()

    def anthropic(self) -> Anthropic:
        from anthropic import Anthropic

        if self.is_fake("anthropic"):
            self._announce("anthropic", self.fake.anthropic_base_url)
            return Anthropic(base_url=self.fake.anthropic_base_url, api_key="fake")
        self._announce("anthropic", "")
        return Anthropic()

    def gemini(self) -> GeminiClient:
        from google import genai
        from google.genai import types

        if self.is_fake("gemini"):
            self._announce("gemini", self.fake.gemini_base_url)
            options = types.HttpOptions(base_url=self.fake.gemini_base_url)
            return genai.Client(api_key="fake", http_options=options)
        self._announce("gemini", "")
        return genai.Client()

    def close(self) -> None:
        if self._fake is not None:
            self._fake.stop()
            self._fake = None


def rollup(span: Any) -> tuple[Decimal | None, int]:
    """A finished span's rolled-up cost (None when nothing was priced) and LLM call count."""
    found = getattr(span, "attributes", None) or {}
    cost = found.get(attrs.ROLLUP_COST_USD)
    calls = found.get(attrs.ROLLUP_LLM_CALLS) or 0
    return (None if cost is None else Decimal(repr(cost))), int(calls)


def failed_calls(span: Any) -> int:
    """LLM calls in the span's subtree that failed (a call a budget refused counts here too)."""
    found = getattr(span, "attributes", None) or {}
    return int(found.get(attrs.ROLLUP_FAILED_CALLS) or 0)


def usd(cost: Decimal | None) -> str:
    """Dollars to the micro-dollar: `$0.120720`."""
    return "unpriced" if cost is None else f"${cost:.6f}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
