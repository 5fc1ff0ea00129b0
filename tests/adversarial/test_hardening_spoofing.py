"""Attribution spoofing: a caller's forged `costspan.*` baggage must not bill another customer.

Real servers on 127.0.0.1 (wsgiref + opentelemetry-instrumentation-wsgi, uvicorn +
opentelemetry-instrumentation-asgi), a real HTTP client (urllib) sending a forged `baggage` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn
from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as AsgiMiddleware
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiMiddleware
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import costspan
from costspan import attributes as A
from costspan.attribution.baggage_trust import (
    SECRET_ENV,
    SIGNATURE_HEADER,
    TRUSTED_PEERS_ENV,
    AttributionBaggageGuard,
    InboundBaggagePolicy,
    guard_inbound_baggage,
)
from llm import llm_call

FORGED = "costspan.customer_id=cus_victim,costspan.feature=free-tier,tenant.region=eu"


@dataclass
class Served:
    url: str
    exporter: InMemorySpanExporter

    def get(self, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(self.url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exporter.get_finished_spans()}

    def server_span(self) -> ReadableSpan:
        """The request's SERVER span, which ends just after the response is sent."""
        for _ in range(500):
            found = [s for s in self.exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
            if found:
                (span,) = found
                return span
            time.sleep(0.01)
        raise AssertionError("no SERVER span exported")


def handle(provider: TracerProvider) -> dict[str, Any]:
    """The application: one LLM call, and what attribution it saw."""
    llm_call(provider.get_tracer("app"), "gpt-4o-mini", 1000, 100)
    return {
        "attribution": costspan.current_attribution(),
        "region": baggage.get_baggage("tenant.region"),
    }


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wsgi_server(provider: TracerProvider) -> Iterator[str]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = json.dumps(handle(provider)).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    server = make_server(
        "127.0.0.1", 0, WsgiMiddleware(app, tracer_provider=provider), WSGIServer, _QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def asgi_server(provider: TracerProvider) -> Iterator[str]:
    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(handle(provider)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"json")]})
        await send({"type": "http.response.body", "body": body})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # proxy_headers=False: uvicorn otherwise rewrites scope["client"] from X-Forwarded-For when the
    # peer is in --forwarded-allow-ips (default 127.0.0.1, which is where this test's client is).
    config = uvicorn.Config(
        AsgiMiddleware(app, tracer_provider=provider),
        log_level="error",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


SERVERS = {"wsgi": wsgi_server, "asgi": asgi_server}


@pytest.fixture
def global_propagator() -> Iterator[None]:
    """The OTel default (tracecontext + baggage), restored after the test."""
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    yield
    propagate.set_global_textmap(before)


@pytest.fixture(params=sorted(SERVERS))
def serve(request: pytest.FixtureRequest, global_propagator: None) -> Iterator[Callable[[], Any]]:
    stack = contextlib.ExitStack()

    def start() -> Served:
        provider = TracerProvider()
        provider.add_span_processor(costspan.CostSpanProcessor())
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        stack.callback(provider.shutdown)
        url = stack.enter_context(SERVERS[request.param](provider))
        return Served(url, exporter)

    with stack:
        yield start


def assert_not_attributed(served: Served, answer: dict[str, Any]) -> None:
    assert answer["attribution"] == {}
    served.server_span()
    assert answer["region"] == "eu"  # other baggage passes untouched
    for span in served.exporter.get_finished_spans():
        assert not any(key.startswith("costspan.customer_id") for key in span.attributes or {})
        assert A.FEATURE not in (span.attributes or {})
    llm = served.spans()["chat gpt-4o-mini"]
    assert llm.attributes[A.COST_STATUS] == "priced"  # still priced, just not billed to the victim


def assert_attributed(served: Served, answer: dict[str, Any]) -> None:
    assert answer["attribution"] == {A.CUSTOMER_ID: "cus_victim", A.FEATURE: "free-tier"}
    assert answer["region"] == "eu"
    for span in (served.server_span(), served.spans()["chat gpt-4o-mini"]):
        assert span.attributes[A.CUSTOMER_ID] == "cus_victim"
        assert span.attributes[A.FEATURE] == "free-tier"


def test_without_the_guard_a_forged_header_bills_the_victim(serve: Callable[[], Served]) -> None:
    """The threat, shown: the plain W3C propagator believes any caller."""
    served = serve()
    assert_attributed(served, served.get({"baggage": FORGED}))


def test_default_policy_drops_forged_attribution(serve: Callable[[], Served]) -> None:
    guard = guard_inbound_baggage(InboundBaggagePolicy())
    served = serve()
    answer = served.get({"baggage": FORGED})
    assert_not_attributed(served, answer)
    assert guard.inbound() == {"dropped": 1}


def test_env_default_is_to_drop(serve: Callable[[], Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUSTED_PEERS_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    guard_inbound_baggage()
    served = serve()
    assert_not_attributed(served, served.get({"baggage": FORGED}))


def test_trusted_peer_keeps_attribution(serve: Callable[[], Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUSTED_PEERS_ENV, "10.0.0.0/8, 127.0.0.1")
    guard = guard_inbound_baggage()
    served = serve()
    assert_attributed(served, served.get({"baggage": FORGED}))
    assert guard.inbound() == {"kept": 1}


def test_peer_outside_the_trusted_networks_is_dropped(serve: Callable[[], Served]) -> None:
    guard_inbound_baggage(InboundBaggagePolicy.of(["10.0.0.0/8", "::1"]))
    served = serve()
    assert_not_attributed(served, served.get({"baggage": FORGED}))


def test_forwarded_headers_do_not_make_a_caller_trusted(serve: Callable[[], Served]) -> None:
    guard_inbound_baggage(InboundBaggagePolicy.of(["10.0.0.0/8"]))
    served = serve()
    answer = served.get(
        {"baggage": FORGED, "X-Forwarded-For": "10.1.2.3", "Remote-Addr": "10.1.2.3", "client": "10.1.2.3"}
    )
    assert_not_attributed(served, answer)


def signed_headers(entries: dict[str, str], secret: str) -> dict[str, str]:
    """What an upstream service's guard (holding the secret) sends."""
    upstream = AttributionBaggageGuard(W3CBaggagePropagator(), InboundBaggagePolicy.of(secret=secret))
    ctx = None
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    headers: dict[str, str] = {}
    upstream.inject(headers, ctx)
    return headers


def test_signed_baggage_is_kept_from_any_peer(serve: Callable[[], Served]) -> None:
    guard_inbound_baggage(InboundBaggagePolicy.of(secret="s3cret"))
    served = serve()
    headers = signed_headers(
        {A.CUSTOMER_ID: "cus_victim", A.FEATURE: "free-tier", "tenant.region": "eu"}, "s3cret"
    )
    assert set(headers) == {"baggage", SIGNATURE_HEADER}
    assert_attributed(served, served.get(headers))


@pytest.mark.parametrize("tamper", ["other secret", "changed value", "garbage signature", "added entry"])
def test_bad_signature_is_dropped(serve: Callable[[], Served], tamper: str) -> None:
    guard_inbound_baggage(InboundBaggagePolicy.of(secret="s3cret"))
    served = serve()
    entries = {A.CUSTOMER_ID: "cus_payer", "tenant.region": "eu"}
    headers = signed_headers(entries, "other" if tamper == "other secret" else "s3cret")
    if tamper == "changed value":
        headers["baggage"] = headers["baggage"].replace("cus_payer", "cus_victim")
    elif tamper == "garbage signature":
        headers[SIGNATURE_HEADER] = "v1=" + "0" * 64
    elif tamper == "added entry":
        headers["baggage"] += ",costspan.feature=free-tier"
    assert_not_attributed(served, served.get(headers))


def test_trace_context_still_propagates_when_baggage_is_dropped(serve: Callable[[], Served]) -> None:
    guard_inbound_baggage(InboundBaggagePolicy())
    served = serve()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    served.get({"baggage": FORGED, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert served.server_span().context.trace_id == int(trace_id, 16)


def test_outbound_requests_carry_the_signature_only_with_a_secret() -> None:
    ctx = baggage.set_baggage(A.CUSTOMER_ID, "cus_1")
    plain: dict[str, str] = {}
    AttributionBaggageGuard(W3CBaggagePropagator()).inject(plain, ctx)
    assert plain == {"baggage": "costspan.customer_id=cus_1"}
    other: dict[str, str] = {}
    guard = AttributionBaggageGuard(W3CBaggagePropagator(), InboundBaggagePolicy.of(secret="k"))
    guard.inject(other, baggage.set_baggage("tenant.region", "eu"))
    assert other == {"baggage": "tenant.region=eu"}  # no costspan entries: nothing to sign


def test_guard_installs_once_and_replaces_its_policy(global_propagator: None) -> None:
    first = guard_inbound_baggage(InboundBaggagePolicy())
    second = guard_inbound_baggage(InboundBaggagePolicy.of("127.0.0.1"))
    assert propagate.get_global_textmap() is second
    assert second.inner is first.inner
    assert not isinstance(second.inner, AttributionBaggageGuard)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({TRUSTED_PEERS_ENV: "10.0.0.0/8,intranet"}, "COSTSPAN_TRUSTED_BAGGAGE_PEERS: 'intranet'"),
        ({TRUSTED_PEERS_ENV: "300.1.1.1"}, "'300.1.1.1' is not an IP address"),
    ],
)
def test_bad_trusted_peer_setting_fails_at_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InboundBaggagePolicy.from_env(env)


def test_policy_from_env() -> None:
    policy = InboundBaggagePolicy.from_env({TRUSTED_PEERS_ENV: " 10.0.0.0/8 ,, fd00::/8", SECRET_ENV: "k"})
    assert policy.trusts_peer("10.200.0.1")
    assert policy.trusts_peer("::ffff:10.0.0.1")  # IPv4-mapped IPv6 peer
    assert policy.trusts_peer("fd00::1")
    assert not policy.trusts_peer("11.0.0.1")
    assert not policy.trusts_peer("not-an-address")
    assert not policy.trusts_peer(None)
    assert policy.secret == b"k"
    assert InboundBaggagePolicy.from_env({TRUSTED_PEERS_ENV: "*"}).trusts_peer(None)
    assert InboundBaggagePolicy.from_env({}) == InboundBaggagePolicy()


def test_client_side_spans_untouched_by_guard(global_propagator: None) -> None:
    """Inside one process the guard changes nothing: only extract from a carrier is filtered."""
    guard_inbound_baggage(InboundBaggagePolicy())
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(costspan.CostSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with (
        costspan.attribute(customer_id="cus_1"),
        trace.get_tracer("t", tracer_provider=provider).start_as_current_span("s"),
    ):
        pass
    assert exporter.get_finished_spans()[0].attributes[A.CUSTOMER_ID] == "cus_1"


@pytest.mark.parametrize(
    ("carrier", "address"),
    [
        ({"wsgi.version": (1, 0), "REMOTE_ADDR": "10.0.0.7"}, "10.0.0.7"),  # a WSGI environ
        ({"asgi": {"version": "3.0"}, "type": "http", "client": ("10.0.0.7", 5000)}, "10.0.0.7"),  # ASGI
        ({"asgi": {"version": "3.0"}, "type": "http", "client": None}, None),  # ASGI over a unix socket
        # Header mappings (Tornado, aiohttp, a queue message): whatever they hold, the caller wrote it.
        ({"wsgi.version": "(1, 0)", "REMOTE_ADDR": "10.0.0.7"}, None),
        ({"asgi": "{}", "client": "10.0.0.7"}, None),
        ({"remote_addr": "10.0.0.7", "x-forwarded-for": "10.0.0.7"}, None),
        ([("REMOTE_ADDR", "10.0.0.7")], None),
        (None, None),
    ],
)
def test_peer_address_is_read_only_from_carriers_a_caller_cannot_write(
    carrier: Any, address: str | None
) -> None:
    from costspan.attribution.baggage_trust import peer_address

    assert peer_address(carrier) == address
