"""Cost across services, with real processes under `opentelemetry-instrument` on 127.0.0.1.

A (a task, a script) calls B (WSGI: wsgiref + OpenTelemetry's middleware) with `requests`, and C
(ASGI: uvicorn + OpenTelemetry's middleware) with `aiohttp` and `httpx`; B calls C with `httpx`. Every
service makes real OpenAI SDK calls to the fake provider. B and C return what each request cost in
`costspan-cost`; the instrumented HTTP clients record it on their spans, and it rolls up into A's
steps and task, apart from A's own spend, exactly.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from costspan.rollup import cost_header
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from e2e.otlp_sink import OtlpHttpSink, ReceivedSpan
from zero_code import TIMEOUT_S, clean_env, instrument_cmd, run_instrumented, write_app

for module in (
    "openai",
    "requests",
    "httpx",
    "aiohttp",
    "uvicorn",
    "opentelemetry.instrumentation.requests",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.aiohttp_client",
    "opentelemetry.instrumentation.wsgi",
    "opentelemetry.instrumentation.asgi",
):
    pytest.importorskip(module)

MTOK = Decimal(1_000_000)
IN, OUT = 1000, 200
GPT_4O = (IN * Decimal("2.50") + OUT * Decimal("10")) / MTOK  # $0.0045
GPT_4O_MINI = (IN * Decimal("0.15") + OUT * Decimal("0.60")) / MTOK  # $0.00027
SECRET = "shared-by-a-b-and-c"

# C: /answer makes two gpt-4o-mini calls; /fail makes one and answers 500 (it still spent money);
# /stream makes one before its response starts and one after.
SERVICE_C = """
import asyncio, os, signal, socket

import uvicorn
from openai import AsyncOpenAI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

client = AsyncOpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # Spent after the headers left: not returned (README "Cost across services", Streaming).
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}])
        await send({"type": "http.response.body", "body": b"streamed"})
        return
    calls = 1 if scope["path"] == "/fail" else 2
    for _ in range(calls):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}])
    status = 500 if scope["path"] == "/fail" else 200
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"from C"})


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
config = uvicorn.Config(
    OpenTelemetryMiddleware(app), log_level="error", lifespan="off", access_log=False, proxy_headers=False
)
print(sock.getsockname()[1], flush=True)
asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))  # SIGTERM: graceful exit, spans flushed
"""

# B: one gpt-4o call, then C's /answer with httpx.
SERVICE_B = """
import os, signal, sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
from openai import OpenAI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


def app(environ, start_response):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "b"}])
    reply = httpx.get(os.environ["C_URL"] + "/answer", timeout=10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"from B and " + reply.content]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through atexit: spans flushed
httpd = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), handler_class=QuietHandler)
print(httpd.server_port, flush=True)
httpd.serve_forever()
"""

# A: one gpt-4o call of its own, B through requests, C through aiohttp and httpx (C's /fail).
CLIENT_A = """
import asyncio, os

import aiohttp
import httpx
import requests
from openai import OpenAI

import costspan
from costspan.rollup.remote_cost import returned_costs

client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


async def summarise():
    async with aiohttp.ClientSession() as session:
        async with session.get(os.environ["C_URL"] + "/answer") as reply:
            return await reply.text()


with costspan.task("enrich", customer_id="cus_chain"):
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
    with costspan.step("research"):
        print(requests.get(os.environ["B_URL"], timeout=10).text)
    with costspan.step("summarise"):
        print(asyncio.run(summarise()))
        print(httpx.get(os.environ["C_URL"] + "/fail", timeout=10).status_code)
print(sorted(returned_costs().items()))
"""


@pytest.fixture
def provider() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        add_openai_routes(server, usage=OpenAIUsage(prompt_tokens=IN, completion_tokens=OUT))
        yield server


def env_for(sink: OtlpHttpSink, service: str, provider: FakeProviderServer, **extra: str) -> dict[str, str]:
    return clean_env(
        http_clients=True,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_SERVICE_NAME=service,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="costspan_anthropic,costspan_google_genai,httpx2",
        FAKE_OPENAI_URL=provider.base_url,
        **extra,
    )


@contextmanager
def service(app: Path, env: dict[str, str]) -> Iterator[str]:
    """Start a service; yield its URL; stop it with SIGTERM (it flushes its spans) and check its exit."""
    process = subprocess.Popen(
        instrument_cmd(app),
        env=env,
        cwd=app.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise AssertionError(process.communicate(timeout=TIMEOUT_S)[1])
        yield f"http://127.0.0.1:{int(line)}"
        process.terminate()
        _, err = process.communicate(timeout=TIMEOUT_S)
        assert "Traceback" not in err, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def by_service(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.resource.get("service.name") == name]


def usd(value: Decimal) -> float:
    return float(value)


@contextmanager
def three_services(
    directory: Path, sink: OtlpHttpSink, provider: FakeProviderServer, trust: dict[str, str]
) -> Iterator[tuple[str, str]]:
    """B and C running (B calling C); yields their URLs."""
    c_app = write_app(directory, SERVICE_C, "service_c.py")
    b_app = write_app(directory, SERVICE_B, "service_b.py")
    with service(c_app, env_for(sink, "svc-c", provider, **trust)) as c_url:  # noqa: SIM117 (B needs C's URL)
        with service(b_app, env_for(sink, "svc-b", provider, C_URL=c_url, **trust)) as b_url:
            yield b_url, c_url


def run_chain(
    tmp_path: Path, provider: FakeProviderServer, trust: dict[str, str], **a_env: str
) -> tuple[subprocess.CompletedProcess[str], list[ReceivedSpan]]:
    a_app = write_app(tmp_path, CLIENT_A, "client_a.py")
    with OtlpHttpSink() as sink:
        with three_services(tmp_path, sink, provider, trust) as (b_url, c_url):
            a = run_instrumented(
                a_app, env_for(sink, "caller-a", provider, B_URL=b_url, C_URL=c_url, **trust, **a_env)
            )
            assert a.returncode == 0, a.stderr
        sink.wait_for_spans(lambda spans: len(by_service(spans, "svc-c")) >= 3 * 3, timeout_s=TIMEOUT_S)
        return a, sink.spans()


TRUST_BY_PEER = {"COSTSPAN_TRUSTED_BAGGAGE_PEERS": "127.0.0.1", "COSTSPAN_TRUSTED_COST_PEERS": "127.0.0.1"}
TRUST_BY_SIGNATURE = {"COSTSPAN_BAGGAGE_SECRET": SECRET}


@pytest.mark.parametrize("trust", [TRUST_BY_PEER, TRUST_BY_SIGNATURE], ids=["trusted-peers", "signed"])
def test_chain_returns_every_service_spend_to_the_callers_task(
    trust: dict[str, str], provider: FakeProviderServer, tmp_path: Path
) -> None:
    a, spans = run_chain(tmp_path, provider, trust, COSTSPAN_CONSOLE="true")
    lines = a.stdout.splitlines()
    assert lines[:3] == ["from B and from C", "from C", "500"]
    assert lines[-1] == "[('accepted', 3)]"
    # The console tree (README "Cost across services"): each call to a service on one line.
    assert lines[3].startswith("enrich  $0.0103 total  7 calls  ($0.00585 in other services)  customer=cus_")
    assert lines[4:-1] == [
        "├─ chat gpt-4o  $0.0045  1,000 in / 200 out",
        "├─ research  $0.00504",
        "│  └─ GET  $0.00504 remote  3 calls  3,000 in / 600 out",
        "└─ summarise  $0.00081",
        "   ├─ GET  $0.00054 remote  2 calls  2,000 in / 400 out",
        "   └─ GET  $0.00027 remote  1 call  1,000 in / 200 out",
    ]

    c_answer = 2 * GPT_4O_MINI
    b_answer = GPT_4O + c_answer
    c_fail = GPT_4O_MINI

    # C's server spans hold their own calls; the 500 still reports the call it made.
    c_servers = sorted(
        (s for s in by_service(spans, "svc-c") if s.kind == "SERVER"),
        key=lambda s: s.attributes["costspan.rollup.llm_calls"],
    )
    assert [s.attributes["costspan.rollup.cost_usd"] for s in c_servers] == [
        usd(c_fail),
        usd(c_answer),
        usd(c_answer),
    ]
    assert all("costspan.rollup.remote_cost_usd" not in s.attributes for s in c_servers)

    # B: its httpx span to C carries C's spend; its server span the sum, the remote part apart.
    (b_server,) = [s for s in by_service(spans, "svc-b") if s.kind == "SERVER"]
    (b_to_c,) = [s for s in by_service(spans, "svc-b") if "costspan.remote.status" in s.attributes]
    assert b_to_c.attributes["costspan.remote.status"] == "accepted"
    assert b_to_c.attributes["costspan.remote.peer"] == "127.0.0.1"
    assert b_to_c.attributes["costspan.remote.cost_usd"] == usd(c_answer)
    assert b_to_c.attributes["costspan.remote.llm_calls"] == 2
    assert b_to_c.attributes["costspan.remote.input_tokens"] == 2 * IN
    assert "gen_ai.usage.cost" not in b_to_c.attributes  # a backend summing call costs counts C once
    assert b_server.attributes["costspan.rollup.cost_usd"] == usd(b_answer)
    assert b_server.attributes["costspan.rollup.remote_cost_usd"] == usd(c_answer)
    assert b_server.attributes["costspan.rollup.llm_calls"] == 3
    assert b_server.attributes["costspan.rollup.remote_llm_calls"] == 2
    assert b_server.attributes["costspan.rollup.input_tokens"] == 3 * IN

    # A: each client span carries what its service (and those it called) spent.
    caller = by_service(spans, "caller-a")
    named = {s.name: s for s in caller if s.name in ("enrich", "research", "summarise")}
    remote = {
        s.attributes["costspan.remote.cost_usd"]: s
        for s in caller
        if s.attributes.get("costspan.remote.status") == "accepted"
    }
    assert sorted(remote) == sorted([usd(b_answer), usd(c_answer), usd(c_fail)])
    assert remote[usd(b_answer)].attributes["costspan.remote.llm_calls"] == 3
    assert remote[usd(b_answer)].parent_span_id == named["research"].span_id
    assert named["research"].attributes["costspan.rollup.cost_usd"] == usd(b_answer)
    assert named["summarise"].attributes["costspan.rollup.cost_usd"] == usd(c_answer + c_fail)
    assert named["summarise"].attributes["costspan.rollup.remote_cost_usd"] == usd(c_answer + c_fail)
    task = named["enrich"].attributes
    assert task["costspan.rollup.cost_usd"] == usd(GPT_4O + b_answer + c_answer + c_fail)
    assert task["costspan.rollup.remote_cost_usd"] == usd(b_answer + c_answer + c_fail)
    assert task["costspan.rollup.llm_calls"] == 1 + 3 + 2 + 1
    assert task["costspan.rollup.remote_llm_calls"] == 3 + 2 + 1
    assert task["costspan.rollup.input_tokens"] == 7 * IN
    assert task["costspan.rollup.output_tokens"] == 7 * OUT

    # Every LLM call's gen_ai.usage.cost appears once in the whole trace: the trace total is exact.
    call_costs = [
        Decimal(repr(s.attributes["gen_ai.usage.cost"])) for s in spans if "gen_ai.usage.cost" in s.attributes
    ]
    assert len(call_costs) == 7
    assert sum(call_costs) == GPT_4O + b_answer + c_answer + c_fail


CONSOLE_CLIENT = """
import os

import requests

import costspan

with costspan.task("enrich", customer_id="cus_tree"):
    with costspan.step("research"):
        requests.get(os.environ["B_URL"], timeout=10)
    with costspan.step("stream"):
        requests.get(os.environ["C_URL"] + "/stream", timeout=10)
"""


def test_console_tree_shows_each_remote_call_on_one_line(
    provider: FakeProviderServer, tmp_path: Path
) -> None:
    a_app = write_app(tmp_path, CONSOLE_CLIENT, "client_a.py")
    with OtlpHttpSink() as sink:
        with three_services(tmp_path, sink, provider, TRUST_BY_PEER) as (b_url, c_url):
            env = env_for(sink, "caller-a", provider, B_URL=b_url, C_URL=c_url, **TRUST_BY_PEER)
            a = run_instrumented(a_app, {**env, "OTEL_TRACES_EXPORTER": "costspan"})
        assert a.returncode == 0, a.stderr
        spans = sink.wait_for_spans(
            lambda spans: len([s for s in by_service(spans, "svc-c") if s.kind == "SERVER"]) == 2,
            timeout_s=TIMEOUT_S,
        )
    assert a.stdout.splitlines() == [
        "enrich  $0.00531 total  4 calls  ($0.00531 in other services)  customer=cus_tree"
        + f" task_id={a.stdout.split('task_id=')[1].split()[0]}",
        "├─ research  $0.00504",
        "│  └─ GET  $0.00504 remote  3 calls  3,000 in / 600 out",
        "└─ stream  $0.00027",
        "   └─ GET  $0.00027 remote  1 call  1,000 in / 200 out",
    ]
    # The streamed response returned the call made before its headers; C's own span has both.
    (streamed,) = [
        s for s in by_service(spans, "svc-c") if s.kind == "SERVER" and "/stream" in str(s.attributes)
    ]
    assert streamed.attributes["costspan.rollup.llm_calls"] == 2
    assert streamed.attributes["costspan.rollup.cost_usd"] == usd(2 * GPT_4O_MINI)


class ForgingHandler(BaseHTTPRequestHandler):
    """An uninstrumented service that answers with whatever `costspan-cost` its path names."""

    headers_by_path: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        value = self.headers_by_path.get(self.path)
        self.send_response(200)
        if value is not None:
            self.send_header("costspan-cost", value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


FORGED_CLIENT = """
import os

import requests

import costspan
from costspan.rollup.remote_cost import returned_costs

with costspan.task("enrich", customer_id="cus_forged"):
    for path in ("/none", "/unsigned", "/wrong-secret", "/other-trace", "/malformed"):
        requests.get(os.environ["FORGER_URL"] + path, timeout=10)
print(sorted(returned_costs().items()))
"""


def test_forged_and_unsigned_costs_are_refused_and_counted(tmp_path: Path) -> None:
    body = "v1;usd=5;calls=1;in=10;out=10"
    ForgingHandler.headers_by_path = {
        "/unsigned": body,
        "/wrong-secret": cost_header.sign(body, b"not-the-secret", 0),  # trace id unknown: see below
        "/other-trace": cost_header.sign(body, SECRET.encode(), 0x1234),  # valid for another trace
        "/malformed": "v1;usd=lots;calls=1",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForgingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        app = write_app(tmp_path, FORGED_CLIENT, "client_a.py")
        with OtlpHttpSink() as sink:
            env = clean_env(
                http_clients=True,
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
                OTEL_SERVICE_NAME="caller-a",
                FORGER_URL=f"http://127.0.0.1:{server.server_address[1]}",
                COSTSPAN_BAGGAGE_SECRET=SECRET,
                COSTSPAN_TRUSTED_COST_PEERS="10.1.2.3,rag.internal",  # not 127.0.0.1
            )
            a = run_instrumented(app, env)
            assert a.returncode == 0, a.stderr
            spans = sink.wait_for_spans(lambda s: any(x.name == "enrich" for x in s), timeout_s=TIMEOUT_S)
    finally:
        server.shutdown()
        server.server_close()
    assert a.stdout.strip() == "[('bad_signature', 2), ('malformed', 1), ('untrusted', 1)]"
    assert "costspan: ignored the costspan-cost header from 127.0.0.1" in a.stderr
    (task,) = [s for s in spans if s.name == "enrich"]
    assert not any(key.startswith("costspan.rollup.") for key in task.attributes)
    gets = [s for s in spans if s.kind == "CLIENT"]
    statuses = {
        str(s.attributes.get("url.full") or s.attributes["http.url"]).rsplit("/", 1)[1]: s.attributes.get(
            "costspan.remote.status"
        )
        for s in gets
    }
    assert statuses == {
        "none": None,
        "unsigned": "untrusted",
        "wrong-secret": "bad_signature",
        "other-trace": "bad_signature",
        "malformed": "malformed",
    }
    for span in gets:  # a refused figure is not summed anywhere
        assert not any(key.startswith("costspan.rollup.") for key in span.attributes)
