"""costspan's instrumentor for the Google Gen AI SDK (`google-genai` 3.x): Gemini API and Vertex AI.

One job: one priced CLIENT span per generate or embed call, its AFC and continuation requests
included. Modules, the same in every provider package: `instrumentor` (wraps and unwraps), `patches`
(what of the SDK is wrapped and looked at), `wrappers` (what runs around each call), `request`,
`response` and `stream` (reading each into the call's span).
"""

from costspan.instrumentation.google_genai.instrumentor import GoogleGenAIInstrumentor

__all__ = ["GoogleGenAIInstrumentor"]
