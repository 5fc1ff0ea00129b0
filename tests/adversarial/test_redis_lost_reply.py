"""The Redis ledger when a reply is lost after Redis ran the charge (issue 23, item 6).

A TCP proxy between redis-py and a real redis-server forwards a charge to Redis, waits for the
reply and drops the connection instead of passing it on. redis-py retries the command on a new
connection (its default since redis-py 6); each charge must still be counted exactly once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from costspan.budget import RedisLedger
from test_budget_redis import redis_url  # noqa: F401  (the module's redis-server fixture)

UNITS = 10**24
# What a charge sends: a MULTI/EXEC transaction or a script (EVALSHA, or EVAL once unloaded).
CHARGE_COMMANDS = (b"$4\r\nEXEC\r\n", b"$7\r\nEVALSHA\r\n", b"$4\r\nEVAL\r\n")


class ReplyDroppingProxy:
    """127.0.0.1 proxy to redis-server. While armed, the next charge command is forwarded and
    executed, and its reply dropped with the client's connection (once per arming)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=10)
            self._sockets += [client, server]
            drop_reply = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, drop_reply), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, drop_reply), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, drop_reply: threading.Event) -> None:
        try:
            while chunk := client.recv(65536):
                if self.armed.is_set() and any(c in chunk.upper() for c in CHARGE_COMMANDS):
                    self.armed.clear()
                    drop_reply.set()
                server.sendall(chunk)
        except OSError:
            pass

    def _replies(self, server: socket.socket, client: socket.socket, drop_reply: threading.Event) -> None:
        try:
            while chunk := server.recv(65536):
                if drop_reply.is_set():  # the charge ran in Redis: its reply never arrives
                    self.dropped += 1
                    break
                client.sendall(chunk)
        except OSError:
            pass
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[ReplyDroppingProxy]:  # noqa: F811
    upstream = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    p = ReplyDroppingProxy((upstream["host"], upstream["port"]))
    yield p
    p.close()


def ledger_through(proxy: ReplyDroppingProxy, retries: int) -> RedisLedger:
    client = redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        retry=Retry(NoBackoff(), retries),
        retry_on_error=[redis.ConnectionError],
        socket_timeout=10,
    )
    return RedisLedger(client=client, prefix=f"lost-reply:{time.monotonic_ns()}:")


def test_a_retried_charge_whose_reply_was_lost_is_counted_once(proxy: ReplyDroppingProxy) -> None:
    ledger = ledger_through(proxy, retries=3)
    assert ledger.add("customer:cus_1:86400:0", 3 * UNITS, None) == 3 * UNITS
    proxy.armed.set()
    total = ledger.add("customer:cus_1:86400:0", 2 * UNITS + 7, time.time() + 3600)
    assert proxy.dropped == 1  # Redis ran it, the client never saw the reply, and sent it again
    assert total == 5 * UNITS + 7
    assert ledger.spent("customer:cus_1:86400:0") == 5 * UNITS + 7
    ttl_ms = ledger.client.pttl(f"{ledger._prefix}customer:cus_1:86400:0")
    assert 3_500_000 < ttl_ms <= 3_600_000


def test_without_retries_the_lost_reply_raises_and_the_charge_stands_once(proxy: ReplyDroppingProxy) -> None:
    """A client that does not retry gets the connection error (the budget gate counts it as a
    fault and the call goes on); Redis counted the charge once."""
    ledger = ledger_through(proxy, retries=0)
    ledger.add("task:t1", UNITS, None)
    proxy.armed.set()
    with pytest.raises(redis.ConnectionError):
        ledger.add("task:t1", UNITS, None)
    assert proxy.dropped == 1
    assert ledger.spent("task:t1") == 2 * UNITS


def test_each_charge_is_its_own_even_with_equal_amounts(proxy: ReplyDroppingProxy) -> None:
    """The idempotency key is per charge, not per amount: equal charges all count."""
    ledger = ledger_through(proxy, retries=3)
    for _ in range(50):
        ledger.add("task:t2", UNITS // 4, None)
    assert ledger.spent("task:t2") == 50 * (UNITS // 4)
