"""Spans to a file: OTLP JSON lines, as the OpenTelemetry Collector's `file` exporter writes them.

Each line is one `ExportTraceServiceRequest` in OTLP's JSON encoding (resourceSpans / scopeSpans /
spans, lowerCamelCase field names, trace and span ids in hex, 64-bit integers as strings, enums as
numbers, attributes as `{"key": ..., "value": {"stringValue" | "intValue" | ...}}`), so
`costspan report` reads a file a Collector wrote the same way. The spans are encoded by the SDK's
own OTLP protobuf encoder and turned into JSON by protobuf's `json_format`; only the ids differ
from protobuf's generic mapping (base64 there, hex in OTLP).

Several processes may append to one file: each batch is written with one `write` on a descriptor
opened with O_APPEND while holding an exclusive `flock` on `<path>.lock`, which also serialises
rotation (a process whose file was rotated by another reopens the path before writing).
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FILE_ENV",
    "MAX_BYTES_ENV",
    "OtlpJsonFileExporter",
    "encode_request_line",
]

logger = logging.getLogger("costspan")

FILE_ENV = "COSTSPAN_FILE"
MAX_BYTES_ENV = "COSTSPAN_FILE_MAX_BYTES"
DEFAULT_PATH = "costspan-spans.jsonl"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5
# Spans per line: bounds one line's size (a Collector writes one line per batch, too).
_SPANS_PER_LINE = 512
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(message: dict[str, Any]) -> None:
    for field in _ID_FIELDS:
        value = message.get(field)
        if value:
            message[field] = base64.b64decode(value).hex()


def encode_request_line(spans: Sequence[ReadableSpan]) -> bytes:
    """One ExportTraceServiceRequest as an OTLP JSON line (newline included)."""
    request = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _max_bytes_from_env() -> int:
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        logger.warning(
            "costspan: %s=%r is not a whole number of bytes; using %d", MAX_BYTES_ENV, raw, DEFAULT_MAX_BYTES
        )
        return DEFAULT_MAX_BYTES
    return value


class OtlpJsonFileExporter(SpanExporter):
    """Appends spans to `path` as OTLP JSON lines; rotates to `path.1` ... `path.N` past `max_bytes`.

    `path` defaults to $COSTSPAN_FILE, else `costspan-spans.jsonl`; `max_bytes` to
    $COSTSPAN_FILE_MAX_BYTES, else 100 MiB (0: never rotate). Registered as the
    `opentelemetry_traces_exporter` `costspan_file`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = None,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        chosen = path if path is not None else os.environ.get(FILE_ENV, "").strip() or DEFAULT_PATH
        self.path = os.fspath(chosen)
        if max_bytes is None:
            max_bytes = _max_bytes_from_env()
        if max_bytes < 0 or backups < 1:
            raise ValueError(
                f"OtlpJsonFileExporter: max_bytes must be >= 0 and backups >= 1, got {max_bytes}, {backups}"
            )
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._closed = False
        self.failed_exports = 0

    # -- file handling (called with self._lock held) -------------------------------------------

    def _make_directory(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)

    def _open(self) -> int:
        self._make_directory()
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _current_fd(self) -> int:
        """The descriptor of the file now at `path` (another process may have rotated ours away)."""
        if self._fd is not None:
            try:
                if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        self._fd = self._open()
        return self._fd

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _write(self, data: bytes) -> None:
        if self._lock_fd is None:
            self._make_directory()  # the lock file sits beside the spans file
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            if self.max_bytes and size > 0 and size + len(data) > self.max_bytes:
                self._rotate()
                fd = self._current_fd()
            view = memoryview(data)
            while view:  # one write for a regular file; the loop only covers a short write
                written = os.write(fd, view)
                view = view[written:]
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- SpanExporter ---------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        try:
            data = b"".join(
                encode_request_line(spans[start : start + _SPANS_PER_LINE])
                for start in range(0, len(spans), _SPANS_PER_LINE)
            )
            with self._lock:
                self._write(data)
        except Exception:
            self.failed_exports += 1
            if self.failed_exports == 1:  # logged once; counted always
                logger.exception("costspan: could not write spans to %s", self.path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written before it returns
