"""HTTP client workloads: what reading a returned cost (`costspan-cost`) adds to a request without one.

`requests` (a keep-alive Session) under opentelemetry-instrumentation-requests, inside a task span,
against a local HTTP/1.1 server thread that answers with no cost header; a TracerProvider with the
CostSpanProcessor and a BatchSpanProcessor. `requests_today` is that setup as it was before returned
costs; `requests_returned_cost` also has costspan's response hook (installed before the instrumentor
runs, as `opentelemetry-instrument` does). Measure with `callgrind.per_op_in_process`, which counts the
calling thread only (the server thread is not the client's cost):

    python -c "import sys; sys.path.insert(0, 'benchmarks'); import callgrind; \
print(callgrind.per_op_in_process('http_client_workloads:requests_today', 20, 80))"
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from span_workloads import tracer_provider

Workload = Callable[[int], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connection
    wbufsize = -1  # one write per response (flushed after each): no wait on a delayed ACK
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _server() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/items"


def _requests_loop(provider: TracerProvider) -> Workload:
    RequestsInstrumentor().instrument(tracer_provider=provider)
    url = _server()
    session = requests.Session()
    tracer = provider.get_tracer("bench")

    def run(n: int) -> None:
        with tracer.start_as_current_span("task"):
            for _ in range(n):
                session.get(url, timeout=10)

    run(20)  # warm-up: connection, imports, caches
    return run


def _with_returned_cost() -> Workload:
    from costspan.instrumentation.cost_clients import read_returned_cost_in_http_clients

    read_returned_cost_in_http_clients()
    return _requests_loop(tracer_provider(True))


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "requests_today": lambda: _requests_loop(tracer_provider(True)),
    "requests_returned_cost": _with_returned_cost,
}
