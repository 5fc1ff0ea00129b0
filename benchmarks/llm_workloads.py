"""LLM call workloads: the real provider SDKs over an in-process transport, bare or instrumented.

No sockets: each client gets an `httpx2.Client` with an `httpx2.MockTransport` answering with canned,
realistic JSON / SSE bodies, so what is measured is the SDK call and the instrumentation around it.

Contenders (set up with a TracerProvider + BatchSpanProcessor; `_meter` adds a MeterProvider with an
in-memory reader):
- `bare`: the SDK, uninstrumented, no providers.
- `costspan`: costspan's instrumentor with CostSpanProcessor (pricing + rollup).
- `openai_v2`: the official `opentelemetry-instrumentation-openai-v2`.
- `openllmetry`: OpenLLMetry's `opentelemetry-instrumentation-openai` (its defaults).
"""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from span_workloads import Workload, batch_processor, queue_of

from costspan import CostSpanProcessor

MODEL = "gpt-4o"
USAGE = {"prompt_tokens": 2480, "completion_tokens": 514, "cached_tokens": 1024}
MESSAGES = [{"role": "user", "content": "Summarise the ticket in one line."}]


def _openai_chat_json(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "The printer is on fire.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": USAGE["prompt_tokens"],
            "completion_tokens": USAGE["completion_tokens"],
            "total_tokens": USAGE["prompt_tokens"] + USAGE["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": USAGE["cached_tokens"], "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


# Content chunks of the long stream: per-chunk cost is what a long real answer pays, and the
# 5-piece stream hides it.
LONG_STREAM_PIECES = 200


@functools.cache  # the fake server's own work stays out of the difference between contenders
def _openai_stream_body(model: str, include_usage: bool, pieces: int = 5) -> bytes:
    def chunk(choices: list[Any], usage: Any = None) -> str:
        event: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_760_000_000,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": choices,
        }
        if include_usage:
            event["usage"] = usage
        return f"data: {json.dumps(event)}\n\n"

    parts = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    words = ("The ", "printer ", "is ", "on ", "fire.")
    for position in range(pieces):
        piece = words[position % len(words)]
        parts.append(chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
    parts.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        parts.append(chunk([], _openai_chat_json(model)["usage"]))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def _openai_handler(request: Any, pieces: int = 5) -> Any:
    import httpx2

    body = json.loads(request.content)
    model = body["model"] + "-2024-08-06"
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return httpx2.Response(
            200,
            content=_openai_stream_body(model, include_usage, pieces),
            headers={"content-type": "text/event-stream"},
        )
    return httpx2.Response(200, json=_openai_chat_json(model))


def openai_client(pieces: int = 5) -> Any:
    import httpx2
    import openai

    transport = httpx2.MockTransport(functools.partial(_openai_handler, pieces=pieces))
    return openai.OpenAI(
        api_key="bench", base_url="https://api.openai.com/v1", http_client=httpx2.Client(transport=transport)
    )


def _anthropic_handler(request: Any) -> Any:
    import httpx2

    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "The printer is on fire."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 1456,
                "output_tokens": 514,
                "cache_read_input_tokens": 1024,
                "cache_creation_input_tokens": 0,
            },
        },
    )


def anthropic_client() -> Any:
    import anthropic
    import httpx2

    transport = httpx2.MockTransport(_anthropic_handler)
    return anthropic.Anthropic(api_key="bench", http_client=httpx2.Client(transport=transport))


def _gemini_handler(request: Any) -> Any:
    import httpx2

    return httpx2.Response(
        200,
        json={
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "The printer is on fire."}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 2480,
                "candidatesTokenCount": 514,
                "cachedContentTokenCount": 1024,
                "totalTokenCount": 2994,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "bench",
        },
    )


def gemini_client() -> Any:
    import httpx2
    from google import genai
    from google.genai import types

    http = httpx2.Client(transport=httpx2.MockTransport(_gemini_handler))
    return genai.Client(api_key="bench", http_options=types.HttpOptions(httpx_client=http))


def _stream_asking_usage(client: Any) -> list[Any]:
    return [
        _
        for _ in client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=600,
            stream=True,
            stream_options={"include_usage": True},
        )
    ]


# Each call: one request, response read fully (streams consumed to the end).
CALLS: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "openai_chat": (
        openai_client,
        lambda c: c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=600),
    ),
    "openai_stream": (
        openai_client,
        lambda c: [
            _ for _ in c.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=600, stream=True)
        ],
    ),
    # The caller asks for usage itself, as an app that wants stream tokens must: every contender
    # then gets the same events and can report tokens, so this is the like-for-like stream.
    "openai_stream_usage": (openai_client, _stream_asking_usage),
    # The like-for-like stream with a long answer (203 chunks): what each chunk costs.
    "openai_stream_usage_long": (functools.partial(openai_client, LONG_STREAM_PIECES), _stream_asking_usage),
    "anthropic_messages": (
        anthropic_client,
        lambda c: c.messages.create(model="claude-sonnet-4-6", messages=MESSAGES, max_tokens=600),
    ),
    "gemini_generate": (
        gemini_client,
        lambda c: c.models.generate_content(model="gemini-2.5-flash", contents="Summarise the ticket."),
    ),
}

# Calls that take ~20x a short call: counted over fewer calls, and with fewer contenders.
LONG_CALLS = frozenset({"openai_stream_usage_long"})

INSTRUMENTORS: dict[str, Callable[[str], Any]] = {}


def _costspan_instrumentor(call: str) -> Any:
    if call.startswith("openai"):
        from costspan.instrumentation.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()
    if call.startswith("anthropic"):
        from costspan.instrumentation.anthropic import AnthropicInstrumentor

        return AnthropicInstrumentor()
    from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor

    return GoogleGenAIInstrumentor()


def _openai_v2_instrumentor(call: str) -> Any:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _openllmetry_instrumentor(call: str) -> Any:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


INSTRUMENTORS = {
    "costspan": _costspan_instrumentor,
    "openai_v2": _openai_v2_instrumentor,
    "openllmetry": _openllmetry_instrumentor,
}


SDK_PACKAGES = ("openai", "anthropic", "google.genai")
# wrapt 2's C proxy base (`wrapt.ObjectProxy` is a Python subclass of it there); wrapt 1 has one.
_PROXY = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
# Contender -> how many wrappers its uninstrument() left on the SDKs (removed by the benchmark).
LEFT_WRAPPED: dict[str, int] = {}


def _wrapped_in_sdks() -> list[tuple[Any, str]]:
    """(owner, attribute) of every wrapt wrapper on an SDK module or on a class one defines."""
    found: list[tuple[Any, str]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == p or name.startswith(p + ".") for p in SDK_PACKAGES):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, _PROXY):
                found.append((module, attr))
            elif isinstance(value, type) and value.__module__ == name:
                found.extend((value, a) for a, v in vars(value).items() if isinstance(v, _PROXY))
    return found


class Contender:
    """One instrumentation set-up for one call type; `on()`/`off()` instrument and restore."""

    def __init__(self, call: str, name: str, with_meter: bool) -> None:
        self.call = call
        self.name = name
        self.tracer_provider = TracerProvider()
        if name == "costspan":
            self.tracer_provider.add_span_processor(CostSpanProcessor())
        batch = batch_processor()
        self.tracer_provider.add_span_processor(batch)
        self.export_queue = queue_of(batch)
        self.meter_provider = MeterProvider([InMemoryMetricReader()]) if with_meter else None
        self.instrumentor = INSTRUMENTORS[name](call) if name != "bare" else None

    def on(self) -> None:
        if self.instrumentor is None:
            return
        kwargs: dict[str, Any] = {"tracer_provider": self.tracer_provider}
        if self.meter_provider is not None:
            kwargs["meter_provider"] = self.meter_provider
        self.instrumentor.instrument(**kwargs)

    def off(self) -> None:
        """Uninstrument, then remove what uninstrument() left wrapped.

        OpenLLMetry's `opentelemetry-instrumentation-openai` 0.62 unwraps by a dotted path that does
        not resolve, so its wrappers stay: every later block, bare included, would run through them
        and queue their spans (the CPU A/B of stops 13-15 grew to gigabytes and ran slow that way).
        """
        if self.instrumentor is None:
            return
        self.instrumentor.uninstrument()
        left = _wrapped_in_sdks()
        for owner, attr in left:
            setattr(owner, attr, vars(owner)[attr].__wrapped__)
        if left:
            LEFT_WRAPPED[self.name] = len(left)


def calls_workload(call: str, contender: str, with_meter: bool) -> Workload:
    make_client, do_call = CALLS[call]
    setup = Contender(call, contender, with_meter)
    setup.on()
    client = make_client()

    drain = setup.export_queue.clear

    def run(n: int) -> None:
        # Each call's spans are dropped from the export queue right after it, as an exporter would
        # soon do: spans piling up in the queue made the per-call count grow with the call count
        # (the collector rescanning them), ~12k per call between 20/80 and 40/440 calls.
        for _ in range(n):
            do_call(client)
            drain()

    run(20)  # warm-up: lazy imports, pricing caches, first metric points
    # Everything made so far (modules, SDK classes, clients) leaves the collector's view: otherwise a
    # full collection of that heap lands in some measured blocks and not others (+-70k per call).
    gc.collect()
    gc.freeze()
    return run


def _workloads() -> dict[str, Callable[[], Workload]]:
    out: dict[str, Callable[[], Workload]] = {}
    for call in CALLS:
        long = call in LONG_CALLS
        contenders = ["bare", "costspan"] + (
            (["openai_v2"] if long else ["openai_v2", "openllmetry"]) if call.startswith("openai") else []
        )
        for contender in contenders:
            # A long call measures per-chunk cost: a MeterProvider adds a per-call constant that the
            # short stream's rows show already.
            for with_meter in (False, True) if contender != "bare" and not long else (False,):
                name = f"{call}:{contender}" + (":meter" if with_meter else "")
                out[name] = lambda c=call, k=contender, m=with_meter: calls_workload(c, k, m)
    return out


WORKLOADS = _workloads()
