"""Auto-instrumentors for provider SDKs: one CLIENT span per LLM call, priced before it ends."""

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy

__all__ = ["FAULTS", "AsyncStreamProxy", "CallSpan", "Instrumentation", "SyncStreamProxy"]
