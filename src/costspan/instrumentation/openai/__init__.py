"""costspan's instrumentor for the OpenAI Python SDK (`openai` 3.x), OpenAI and Azure OpenAI.

One job: one priced CLIENT span per chat completions, Responses API or embeddings call. Modules, the
same in every provider package: `instrumentor` (wraps and unwraps), `patches` (what of the SDK is
wrapped and looked at), `wrappers` (what runs around each call), `request`, `response` and `stream`
(reading each into the call's span).
"""

from costspan.instrumentation.openai.instrumentor import OpenAIInstrumentor

__all__ = ["OpenAIInstrumentor"]
