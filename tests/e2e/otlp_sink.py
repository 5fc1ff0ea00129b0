"""An OTLP/HTTP (protobuf) receiver on 127.0.0.1: the backend the collector under test exports to.

It decodes what arrives with the OTLP protobuf messages (`opentelemetry-proto`) and keeps every
span and metric data point as plain Python values, so tests assert exactly what a backend such as
Jaeger or Tempo would store.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value it carries (int stays int, double stays float)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values)
    return getattr(value, kind)


def key_values(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        out[pair.key] = any_value(pair.value)
    return out


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str
    parent_span_id: str  # "" for a root
    kind: str  # "INTERNAL", "CLIENT", ...
    status: str  # "UNSET", "OK", "ERROR"
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


@dataclass(frozen=True)
class ReceivedPoint:
    metric: str
    unit: str
    value: float | int
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out = []
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        status=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                        attributes=key_values(span.attributes),
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return out


def _points(request: ExportMetricsServiceRequest) -> list[ReceivedPoint]:
    out = []
    for resource_metrics in request.resource_metrics:
        resource = key_values(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = metric.WhichOneof("data")
                if data not in ("sum", "gauge"):
                    continue  # histograms are not asserted on here
                for point in getattr(metric, data).data_points:
                    value = getattr(point, point.WhichOneof("value"))
                    out.append(
                        ReceivedPoint(metric.name, metric.unit, value, key_values(point.attributes), resource)
                    )
    return out


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class OtlpHttpSink:
    """Use as `with OtlpHttpSink() as sink:`; point an OTLP/HTTP exporter at `sink.endpoint`."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._points: list[ReceivedPoint] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every POST
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="otlp-sink", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> OtlpHttpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def points(self) -> list[ReceivedPoint]:
        with self._lock:
            return list(self._points)

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float
    ) -> list[ReceivedSpan]:
        """The spans received so far, once `predicate(spans)` holds; AssertionError after `timeout_s`."""
        return self._wait(self.spans, predicate, timeout_s, "spans")

    def wait_for_points(
        self, predicate: Callable[[list[ReceivedPoint]], bool], timeout_s: float
    ) -> list[ReceivedPoint]:
        return self._wait(self.points, predicate, timeout_s, "metric points")

    def _wait(self, read: Callable[[], list[Any]], predicate: Any, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                items = read()
                if predicate(items):
                    return items
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the sink did not receive the expected {what} in {timeout_s}s: {items}"
                    )
                self._lock.wait(left)

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> bytes | None:
        if path == "/v1/traces":
            spans = _spans(ExportTraceServiceRequest.FromString(body))
            reply = ExportTraceServiceResponse().SerializeToString()
            with self._lock:
                self.requests.append((path, headers))
                self._spans.extend(spans)
                self._lock.notify_all()
            return reply
        if path == "/v1/metrics":
            points = _points(ExportMetricsServiceRequest.FromString(body))
            reply = ExportMetricsServiceResponse().SerializeToString()
            with self._lock:
                self.requests.append((path, headers))
                self._points.extend(points)
                self._lock.notify_all()
            return reply
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = _decompress(self.rfile.read(length), self.headers.get("content-encoding"))
                reply = sink._receive(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if reply is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
