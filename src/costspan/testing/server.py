"""An HTTP server on 127.0.0.1 that answers like an LLM provider's API.

Providers register routes (see `costspan.testing.openai` etc.); tests can queue scripted replies
(a 429, a 500, a slow reply) that take precedence over the routes, and read back every request
the server received.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """A response: JSON (`body`), server-sent events (`events`), or raw bytes."""

    status: int = 200
    body: Any = None
    events: Iterable[str | tuple[str, Any]] | None = None  # "data" strings or (event name, data)
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def sse(cls, events: Iterable[str | tuple[str, Any]], **kwargs: Any) -> Reply:
        return cls(events=list(events), **kwargs)


Handler = Callable[[Request], Reply]


class _QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a timeout or cancellation under test) is not an error here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeProviderServer:
    """Start with `with FakeProviderServer() as server:`; `server.base_url` is where to point SDKs.

    `port` 0 (the default) takes a free port; a port in use raises OSError here."""

    def __init__(self, port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._scripted: deque[tuple[re.Pattern[str] | None, Reply]] = deque()
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._httpd = _QuietHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path_pattern: str, handler: Handler) -> None:
        """Answer `method` requests whose path (without query) fully matches `path_pattern`."""
        self._routes.append((method.upper(), re.compile(path_pattern), handler))

    def script(self, reply: Reply, *, times: int = 1, path_pattern: str | None = None) -> None:
        """Answer the next `times` matching requests with `reply`, before any route."""
        pattern = re.compile(path_pattern) if path_pattern else None
        with self._lock:
            for _ in range(times):
                self._scripted.append((pattern, reply))

    def start(self) -> FakeProviderServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reply_for(self, request: Request) -> Reply:
        path = request.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(request)
            for i, (pattern, reply) in enumerate(self._scripted):
                if pattern is None or pattern.fullmatch(path):
                    del self._scripted[i]
                    return reply
        for method, pattern, handler in self._routes:
            if method == request.method and pattern.fullmatch(path):
                return handler(request)
        return Reply(404, {"error": {"message": f"no fake route for {request.method} {path}"}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                reply = server._reply_for(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.events is not None:
                    self._send_events(reply)
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"content-type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _send_events(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in {"content-type": "text/event-stream", **reply.headers}.items():
                    self.send_header(key, value)
                self.send_header("connection", "close")
                self.end_headers()
                for event in reply.events or ():
                    if isinstance(event, tuple):
                        name, data = event
                        text = data if isinstance(data, str) else json.dumps(data)
                        chunk = f"event: {name}\ndata: {text}\n\n"
                    else:
                        chunk = f"data: {event}\n\n"
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
                self.close_connection = True

            do_GET = _handle
            do_POST = _handle
            do_DELETE = _handle

        return _Handler
