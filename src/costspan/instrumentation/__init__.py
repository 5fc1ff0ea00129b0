"""Stage 5: auto-instrumentors for provider SDKs: one CLIENT span per LLM call, priced before it ends.

One job: wrap the SDKs (`openai`, `anthropic`, `google_genai`), read each request and response into
a call span (`_call.CallSpan`, shared by every provider) and its stream proxies (`_stream`). Imports:
every stage below (`otel_internals` ... `rollup`), never `exporters`, `analysis` or `setup`.
"""

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy

__all__ = ["FAULTS", "AsyncStreamProxy", "CallSpan", "Instrumentation", "SyncStreamProxy"]
