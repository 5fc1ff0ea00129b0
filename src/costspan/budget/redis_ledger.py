"""A ledger in Redis, shared by every process that points at the same server and prefix.

Each key is a hash of two integer fields: `pico` (whole 1e-12 USD) and `sub` (the rest, in 1e-24
USD), so the total stays exact in Redis' 64-bit integers (up to about $9.2 million per key).
`add` runs HINCRBY (x2) and PEXPIREAT in one MULTI/EXEC transaction: atomic against every other
process. Needs `redis` (redis-py): `pip install costspan[redis]`.
"""

from __future__ import annotations

from typing import Any

_SUB_PER_PICO = 10**12
DEFAULT_PREFIX = "costspan:budget:"


class RedisLedger:
    """`RedisLedger("redis://host:6379/0")` or `RedisLedger(client=redis.Redis(...))`."""

    remote = True

    def __init__(self, url: str | None = None, *, client: Any = None, prefix: str = DEFAULT_PREFIX) -> None:
        if (url is None) == (client is None):
            raise ValueError("RedisLedger needs exactly one of url= or client=")
        if client is None:
            try:
                import redis
            except ImportError as exc:
                raise ImportError(
                    "RedisLedger needs the redis package: pip install 'costspan[redis]'"
                ) from exc
            client = redis.Redis.from_url(url)
        self._client = client
        self._prefix = prefix

    @property
    def client(self) -> Any:
        return self._client

    def add(self, key: str, units: int, expire_at: float | None) -> int:
        pico, sub = divmod(units, _SUB_PER_PICO)
        name = self._prefix + key
        pipe = self._client.pipeline(transaction=True)
        pipe.hincrby(name, "pico", pico)
        pipe.hincrby(name, "sub", sub)
        if expire_at is not None:
            pipe.pexpireat(name, int(expire_at * 1000))
        results = pipe.execute()
        return int(results[0]) * _SUB_PER_PICO + int(results[1])

    def spent(self, key: str) -> int:
        pico, sub = self._client.hmget(self._prefix + key, "pico", "sub")
        return int(pico or 0) * _SUB_PER_PICO + int(sub or 0)
