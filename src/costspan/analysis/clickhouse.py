"""`costspan report --clickhouse URL`: the report's SQL (clickhouse_report.sql) over ClickHouse's HTTP
interface, on the table the OpenTelemetry Collector's `clickhouse` exporter writes.

URL: `http[s]://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?database=DB&SETTING=VALUE...]`, ClickHouse's
HTTP port (8123, or 8443 with TLS). The user and password are sent as the `X-ClickHouse-User` /
`X-ClickHouse-Key` headers (so are `?user=` and `?password=`), never in the request's URL nor in
messages; the rest of the query string goes to ClickHouse as is (`database` selects the database the
exporter writes to, `default` if none; any other ClickHouse setting may be added). Only the standard
library is used.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from costspan.analysis.report import DIMENSIONS, NO_GROUP, GroupCost, _divide, _money, _ns

__all__ = [
    "DEFAULT_TABLE",
    "ClickHouseError",
    "ClickHouseTarget",
    "clickhouse_group_costs",
    "parse_clickhouse_url",
    "report_params",
    "report_sql",
    "rows_to_group_costs",
]

DEFAULT_TABLE = "otel_traces"
NO_LOWER_BOUND_NS = 0
NO_UPPER_BOUND_NS = 2**63 - 1
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MONEY_FIELDS = ("cost_usd", "cost_per_run_p50", "cost_per_run_p95", "retry_cost_usd")


class ClickHouseError(Exception):
    """A bad URL or table name, an unreachable server, or an error ClickHouse answered with."""


def report_sql() -> str:
    """The report's SQL, as shipped in the package (a copy is in collector-config/clickhouse/)."""
    return resources.files("costspan.analysis").joinpath("clickhouse_report.sql").read_text(encoding="utf-8")


def report_params(
    by: str, since: datetime | None, until: datetime | None, table: str = DEFAULT_TABLE
) -> dict[str, str]:
    """The SQL's query parameters (`{table:Identifier}`, `{by:String}`, `{since_ns:Int64}`,
    `{until_ns:Int64}`), with the same time cut-offs as the DuckDB report."""
    if by not in DIMENSIONS:
        raise ClickHouseError(f"cannot group by {by!r} (one of {', '.join(DIMENSIONS)})")
    if not _IDENTIFIER.match(table):
        raise ClickHouseError(f"--clickhouse-table {table!r} is not a table name (letters, digits, _)")
    return {
        "table": table,
        "by": by,
        "since_ns": str(NO_LOWER_BOUND_NS if since is None else _ns(since)),
        "until_ns": str(NO_UPPER_BOUND_NS if until is None else _ns(until)),
    }


def rows_to_group_costs(rows: list[dict[str, Any]]) -> list[GroupCost]:
    """The SQL's rows (JSONEachRow, parsed with Decimal for numbers) as the report's GroupCost rows."""
    result = []
    for row in rows:
        money = {key: None if row[key] is None else _money(Decimal(str(row[key]))) for key in _MONEY_FIELDS}
        ok = int(row["successful_runs"])
        cost = money["cost_usd"] if money["cost_usd"] is not None else Decimal(0)
        result.append(
            GroupCost(
                group=NO_GROUP if row["grp"] is None else str(row["grp"]),
                runs=int(row["runs"]),
                successful_runs=ok,
                cost_usd=cost,
                cost_per_run_p50=money["cost_per_run_p50"],
                cost_per_run_p95=money["cost_per_run_p95"],
                cost_per_successful_run=_divide(cost, ok) if ok else None,
                retry_cost_usd=money["retry_cost_usd"],
                llm_calls=int(row["llm_calls"]),
                unpriced_calls=int(row["unpriced_calls"]),
                input_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
            )
        )
    return result


def parse_json_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where to send queries: the URL without its credentials, and the credentials."""

    url: str  # scheme://host:port/path?query, no user or password
    user: str | None
    password: str | None

    @property
    def shown(self) -> str:
        """The URL as printed in messages: the user, never the password."""
        if self.user is None:
            return self.url
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(
            parts._replace(netloc=f"{urllib.parse.quote(self.user)}@{parts.netloc}")
        )


_EXAMPLE = "http://user:password@host:8123/?database=otel"


def parse_clickhouse_url(url: str) -> ClickHouseTarget:
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ClickHouseError(f"--clickhouse: not a URL (like {_EXAMPLE})") from None
    if parts.scheme not in ("http", "https") or not host:
        shown = urllib.parse.urlunsplit(parts._replace(netloc=host or "")) if host else parts.scheme + ":..."
        raise ClickHouseError(
            f"--clickhouse {shown}: ClickHouse's HTTP interface is an http:// or https:// URL "
            f"(like {_EXAMPLE})"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    # ClickHouse also takes ?user=...&password=...: move them to the headers too, out of messages.
    query = []
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key == "user" and user is None:
            user = value
        elif key == "password" and password is None:
            password = value
        elif key not in ("user", "password"):
            query.append((key, value))
    clean = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path or "/", urllib.parse.urlencode(query), "")
    )
    return ClickHouseTarget(clean, user or None, password)


def run_query(
    target: ClickHouseTarget, sql: str, params: dict[str, str], timeout: float = 120.0
) -> list[dict[str, Any]]:
    """POST the query with its parameters (`param_NAME=...`) and read its JSONEachRow rows."""
    parts = urllib.parse.urlsplit(target.url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    # wait_end_of_query: ClickHouse sends the result only once the query ended, so an error midway is
    # an HTTP error status, not a 200 with the exception appended to a partial result.
    query += [("default_format", "JSONEachRow"), ("wait_end_of_query", "1")]
    query += [(f"param_{name}", value) for name, value in params.items()]
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if target.user is not None:
        headers["X-ClickHouse-User"] = target.user
    if target.password is not None:
        headers["X-ClickHouse-Key"] = target.password
    request = urllib.request.Request(url, data=sql.encode("utf-8"), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace").strip()
        first = body.splitlines()[0] if body else f"HTTP {exc.code} {exc.reason}"
        raise ClickHouseError(f"ClickHouse at {target.shown} answered: {_short(first)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if isinstance(exc, http.client.HTTPException):
            reason = (
                f"no HTTP answer ({type(exc).__name__}): is it ClickHouse's HTTP port (8123, 8443 with TLS)?"
            )
        else:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ClickHouseError(f"cannot reach ClickHouse at {target.shown}: {reason}") from None
    try:
        return parse_json_rows(text)
    except ValueError:
        raise ClickHouseError(
            f"{target.shown} did not answer as ClickHouse's HTTP interface does: {_short(text)}"
        ) from None


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clickhouse_group_costs(
    url: str,
    by: str = "task",
    since: datetime | None = None,
    until: datetime | None = None,
    table: str = DEFAULT_TABLE,
    timeout: float = 120.0,
) -> list[GroupCost]:
    """One GroupCost per group, dearest first, from the exporter's table in the ClickHouse at `url`."""
    target = parse_clickhouse_url(url)
    params = report_params(by, since, until, table)
    rows = run_query(target, report_sql(), params, timeout)
    try:
        return rows_to_group_costs(rows)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise ClickHouseError(f"{target.shown} answered rows the report cannot read") from None
