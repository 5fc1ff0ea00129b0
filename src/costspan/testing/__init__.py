"""A fake LLM provider server for offline examples and tests: real SDK clients, no network."""

from costspan.testing.server import FakeProviderServer, Reply, Request

__all__ = ["FakeProviderServer", "Reply", "Request"]
