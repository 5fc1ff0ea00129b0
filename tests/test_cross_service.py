"""Attribution across services: two processes under `opentelemetry-instrument`, an HTTP client
(requests, instrumented by opentelemetry-instrumentation-requests) calling a WSGI server
(opentelemetry-instrumentation-wsgi's middleware) or an ASGI one (uvicorn and
opentelemetry-instrumentation-asgi's middleware) whose handler calls OpenAI. W3C baggage carries
the caller's attribution; costspan keeps inbound costspan.* baggage only from trusted peers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from e2e.otlp_sink import OtlpHttpSink, ReceivedSpan
from zero_code import TIMEOUT_S, clean_env, instrument_cmd, run_instrumented, write_app

pytest.importorskip("openai")
pytest.importorskip("requests")
pytest.importorskip("opentelemetry.instrumentation.requests")
pytest.importorskip("opentelemetry.instrumentation.wsgi")

MTOK = Decimal(1_000_000)
INPUT_TOKENS, OUTPUT_TOKENS = 1000, 200
CALL_COST = (INPUT_TOKENS * Decimal("2.50") + OUTPUT_TOKENS * Decimal("10")) / MTOK  # gpt-4o: $0.0045

WSGI_SERVICE = """
import os
from wsgiref.simple_server import WSGIRequestHandler, make_server

from openai import OpenAI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


def answer(environ, start_response):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "answer"}])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"answered"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


httpd = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(answer), handler_class=QuietHandler)
httpd.timeout = 20
print(httpd.server_port, flush=True)
httpd.handle_request()  # one request, then exit (spans are flushed at exit)
"""

ASGI_SERVICE = """
import asyncio
import os
import socket

import uvicorn
from openai import AsyncOpenAI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

client = AsyncOpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)
server = None


async def answer(scope, receive, send):
    if scope["type"] != "http":
        return
    await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "answer"}])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"answered"})
    server.should_exit = True  # one request, then exit (spans are flushed at exit)


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
config = uvicorn.Config(
    OpenTelemetryMiddleware(answer), log_level="error", lifespan="off", access_log=False, proxy_headers=False
)
server = uvicorn.Server(config)
print(sock.getsockname()[1], flush=True)
asyncio.run(server.serve(sockets=[sock]))
"""

SERVICES = {"wsgi": WSGI_SERVICE, "asgi": ASGI_SERVICE}

CLIENT_APP = """
import os

import requests

import costspan

with costspan.task("ask", customer_id="cus_remote", feature="search"):
    reply = requests.get(os.environ["SERVICE_URL"], timeout=10)
print(reply.status_code, reply.text)
"""


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(prompt_tokens=INPUT_TOKENS, completion_tokens=OUTPUT_TOKENS))
        yield s


def otlp_env(sink: OtlpHttpSink, service: str, **extra: str) -> dict[str, str]:
    return clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_SERVICE_NAME=service,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_anthropic,costspan_google_genai",
        **extra,
    )


def call_across(
    tmp_path: Path, server: FakeProviderServer, kind: str, **server_env: str
) -> list[ReceivedSpan]:
    """Run the service, call it once from the client, return every span both exported."""
    service_app = write_app(tmp_path, SERVICES[kind], "service.py")
    client_app = write_app(tmp_path, CLIENT_APP, "client.py")
    with OtlpHttpSink() as sink:
        service = subprocess.Popen(
            instrument_cmd(service_app),
            env=otlp_env(sink, "llm-service", FAKE_OPENAI_URL=server.base_url, **server_env),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert service.stdout is not None
            port = int(service.stdout.readline())
            client = run_instrumented(
                client_app, otlp_env(sink, "caller", SERVICE_URL=f"http://127.0.0.1:{port}/answer")
            )
            assert client.returncode == 0, client.stderr
            assert client.stdout == "200 answered\n"
            _, service_err = service.communicate(timeout=TIMEOUT_S)
            assert service.returncode == 0, service_err
        finally:
            if service.poll() is None:
                service.kill()
                service.communicate()
        return sink.spans()


def by_service(spans: list[ReceivedSpan], service: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.resource.get("service.name") == service]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_callee_llm_span_carries_the_callers_attribution(
    kind: str, server: FakeProviderServer, tmp_path: Path
) -> None:
    if kind == "asgi":
        pytest.importorskip("uvicorn")
        pytest.importorskip("opentelemetry.instrumentation.asgi")
    spans = call_across(tmp_path, server, kind, COSTSPAN_TRUSTED_BAGGAGE_PEERS="127.0.0.1")
    caller, callee = by_service(spans, "caller"), by_service(spans, "llm-service")
    (task,) = [s for s in caller if s.name == "ask"]
    (outbound,) = [s for s in caller if s.kind == "CLIENT"]
    (inbound,) = [s for s in callee if s.kind == "SERVER"]
    (llm,) = [s for s in callee if s.kind == "CLIENT"]
    # One trace across both processes: task -> GET -> server span -> LLM call.
    assert outbound.parent_span_id == task.span_id
    assert inbound.trace_id == task.trace_id and inbound.parent_span_id == outbound.span_id
    assert llm.trace_id == task.trace_id and llm.parent_span_id == inbound.span_id
    # The caller's attribution, from baggage, on the callee's LLM call and server span.
    task_id = task.attributes["costspan.task_id"]
    for span in (inbound, llm):
        assert span.attributes["costspan.customer_id"] == "cus_remote"
        assert span.attributes["costspan.feature"] == "search"
        assert span.attributes["costspan.task"] == "ask"
        assert span.attributes["costspan.task_id"] == task_id
    assert llm.attributes["gen_ai.usage.cost"] == float(CALL_COST)
    # The callee's server span holds the call's cost. It returns it (costspan-cost), but this caller
    # trusts no service's figures (no COSTSPAN_TRUSTED_COST_PEERS, no secret): its task holds none.
    # tests/test_cost_across_services.py has callers that do.
    assert inbound.attributes["costspan.rollup.cost_usd"] == float(CALL_COST)
    assert outbound.attributes["costspan.remote.status"] == "untrusted"
    assert "costspan.rollup.cost_usd" not in task.attributes


def test_untrusted_caller_attribution_is_dropped(server: FakeProviderServer, tmp_path: Path) -> None:
    spans = call_across(tmp_path, server, "wsgi")  # no COSTSPAN_TRUSTED_BAGGAGE_PEERS: trust no one
    (task,) = [s for s in by_service(spans, "caller") if s.name == "ask"]
    (llm,) = [s for s in by_service(spans, "llm-service") if s.kind == "CLIENT"]
    assert llm.trace_id == task.trace_id  # the trace context still crosses
    assert not any(
        key in llm.attributes for key in ("costspan.customer_id", "costspan.feature", "costspan.task")
    )
    assert llm.attributes["gen_ai.usage.cost"] == float(CALL_COST)
