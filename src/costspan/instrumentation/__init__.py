"""Stage 5: auto-instrumentors for provider SDKs: one CLIENT span per LLM call, priced before it ends.

One job: wrap the SDKs (`openai`, `anthropic`, `google_genai`, `litellm`), read each request and
response into a call span (`_call.CallSpan`, shared by every provider) and its stream proxies
(`_stream`). Imports: every stage below (`otel_internals` ... `rollup`), never `exporters`,
`analysis` or `setup`.

Each provider is a package of the same modules, each importing only those before it: `patches`
(what of the SDK is wrapped and looked at), `request`, `response`, `stream` (reading each into the
call's span), `wrappers` (what runs around a call), `instrumentor` (the `BaseInstrumentor`), and
`__init__` re-exporting the instrumentor. Providers share `_call`, `_stream`, `_values` and
`_client_facts`, never each other's modules.
"""

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation._stream import AsyncStreamProxy, SyncStreamProxy

__all__ = ["FAULTS", "AsyncStreamProxy", "CallSpan", "Instrumentation", "SyncStreamProxy"]
