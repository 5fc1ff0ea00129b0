"""`costspan report --clickhouse URL` as a user runs it, against a stand-in for ClickHouse's HTTP
interface on 127.0.0.1 that runs each posted query in ClickHouse's real engine (chDB, in this
process): the engine and the SQL are real, the HTTP layer is this file's (chDB has no server). The
printed report must be byte for byte the one `costspan report SPAN_FILE` prints for the same spans.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from clickhouse_table import ChdbServer

from conftest import Scenario, costspan_report

USER, PASSWORD = "reporter", "s3cr3t/pw"  # a password that needs quoting in a URL


class StandIn:
    """ClickHouse's HTTP interface, as far as the report uses it: POST the query, `database`,
    `default_format` and `param_*` in the query string, the user and password in X-ClickHouse-User /
    X-ClickHouse-Key; a ClickHouse exception comes back as its text with an HTTP error status."""

    def __init__(self, engine: ChdbServer) -> None:
        self.engine = engine
        self.requests: list[tuple[str, dict[str, str]]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stand_in.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if (self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key")) != (
                    USER,
                    PASSWORD,
                ):
                    self._answer(
                        401,
                        f"Code: 516. DB::Exception: {self.headers.get('X-ClickHouse-User')}: "
                        "Authentication failed: password is incorrect, or there is no user with such name. "
                        "(AUTHENTICATION_FAILED)",
                    )
                    return
                sql = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                params = {
                    key[len("param_") :]: values[0]
                    for key, values in query.items()
                    if key.startswith("param_")
                }
                try:
                    text = stand_in.engine.query(
                        query.get("database", ["default"])[0],
                        sql,
                        query.get("default_format", ["TabSeparated"])[0],
                        params,
                    )
                except Exception as exc:  # ClickHouse answers with the exception's text
                    self._answer(404 if "UNKNOWN_TABLE" in str(exc) else 500, str(exc).strip() + "\n")
                    return
                self._answer(200, text)

            def _answer(self, status: int, text: str) -> None:
                body = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, database: str = "otel", password: str = PASSWORD) -> str:
        secret = urllib.parse.quote(password, safe="")
        return f"http://{USER}:{secret}@127.0.0.1:{self.port}/?database={database}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def clickhouse(chdb_engine: ChdbServer) -> Iterator[StandIn]:
    stand_in = StandIn(chdb_engine)
    yield stand_in
    stand_in.close()


@pytest.mark.parametrize(
    "args",
    [
        ("--format", "json"),
        ("--by", "customer", "--format", "json"),
        ("--by", "model", "--format", "csv"),
        (
            "--by",
            "agent",
        ),
        (),
    ],
    ids=["task-json", "customer-json", "model-csv", "agent-table", "task-table"],
)
def test_prints_the_same_report_as_the_span_files(
    clickhouse: StandIn, scenario: Scenario, args: tuple[str, ...]
) -> None:
    from_clickhouse = costspan_report("--clickhouse", clickhouse.url(), *args)
    from_files = costspan_report(str(scenario.path), *args)
    assert from_clickhouse.stdout == from_files.stdout
    assert from_clickhouse.stderr == ""
    assert len(from_clickhouse.stdout.splitlines()) >= 3  # a header and groups, not an empty report


def test_credentials_go_in_headers_not_the_url(clickhouse: StandIn) -> None:
    clickhouse.requests.clear()
    costspan_report("--clickhouse", clickhouse.url(), "--clickhouse-table", "otel_traces", "--by", "feature")
    ((path, headers),) = clickhouse.requests
    assert "s3cr3t" not in path and "reporter" not in path
    assert (headers["x-clickhouse-user"], headers["x-clickhouse-key"]) == (USER, PASSWORD)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    assert query["database"] == ["otel"] and query["param_by"] == ["feature"]
    assert query["param_table"] == ["otel_traces"]


def test_baseline_from_clickhouse_is_the_one_from_span_files(
    clickhouse: StandIn, scenario: Scenario, tmp_path: Path
) -> None:
    costspan_report(str(scenario.path), "--save-baseline", str(tmp_path / "files.json"))
    costspan_report("--clickhouse", clickhouse.url(), "--save-baseline", str(tmp_path / "clickhouse.json"))
    from_files = json.loads((tmp_path / "files.json").read_text())
    from_clickhouse = json.loads((tmp_path / "clickhouse.json").read_text())
    assert from_clickhouse["tasks"] == from_files["tasks"]
    gate = costspan_report("--clickhouse", clickhouse.url(), "--baseline", str(tmp_path / "files.json"))
    assert gate.returncode == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _not_http() -> Iterator[int]:
    """A port that answers a request with bytes that are not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"\x00\x17\x02 not http\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def _fails_cleanly(done: Any, *expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "s3cr3t" not in done.stderr and "s3cr3t" not in urllib.parse.unquote(done.stderr)
    for text in expected:
        assert text in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_errors_name_the_url_without_the_password(clickhouse: StandIn) -> None:
    shown = f"http://{USER}@127.0.0.1:{clickhouse.port}/?database=otel"
    no_table = costspan_report("--clickhouse", clickhouse.url(), "--clickhouse-table", "traces", check=False)
    _fails_cleanly(no_table, f"ClickHouse at {shown} answered", "Code: 60", "UNKNOWN_TABLE")
    wrong_password = costspan_report("--clickhouse", clickhouse.url(password="nope"), check=False)
    _fails_cleanly(wrong_password, shown, "AUTHENTICATION_FAILED")
    port = _closed_port()
    unreachable = costspan_report("--clickhouse", f"http://{USER}:s3cr3t@127.0.0.1:{port}/", check=False)
    _fails_cleanly(unreachable, f"cannot reach ClickHouse at http://{USER}@127.0.0.1:{port}/")
    with _not_http() as garbage_port:  # e.g. ClickHouse's native port (9000) instead of its HTTP one
        not_http = costspan_report(
            "--clickhouse", f"http://{USER}:s3cr3t@127.0.0.1:{garbage_port}/", check=False
        )
    _fails_cleanly(not_http, f"cannot reach ClickHouse at http://{USER}@127.0.0.1:{garbage_port}/")
    in_query = f"http://127.0.0.1:{clickhouse.port}/?database=otel&user={USER}&password=s3cr3t%2Fpw"
    _fails_cleanly(
        costspan_report("--clickhouse", in_query, "--clickhouse-table", "traces", check=False),
        f"ClickHouse at http://{USER}@127.0.0.1:{clickhouse.port}/?database=otel answered",
        "UNKNOWN_TABLE",  # the user and password in the query string were taken as such
    )
    bad_table = costspan_report(
        "--clickhouse", clickhouse.url(), "--clickhouse-table", "x; DROP", check=False
    )
    _fails_cleanly(bad_table, "--clickhouse-table 'x; DROP' is not a table name")
    for url in (f"clickhouse://{USER}:s3cr3t@db:9000/otel", "db:8123", f"http://{USER}:s3cr3t@:8123/"):
        _fails_cleanly(costspan_report("--clickhouse", url, check=False), "http:// or https:// URL")


def test_span_file_only_options_are_refused(clickhouse: StandIn, scenario: Scenario) -> None:
    for args in (("--format", "html"), ("--trace", "abc"), ("--reprice",), (str(scenario.path),)):
        done = costspan_report("--clickhouse", clickhouse.url(), *args, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "s3cr3t" not in done.stderr
