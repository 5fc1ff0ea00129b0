"""A ledger in Redis, shared by every process that points at the same server and prefix.

Each key is a hash of two integer fields: `pico` (whole 1e-12 USD) and `sub` (the rest, in 1e-24
USD), so the total stays exact in Redis' 64-bit integers (up to about $9.2 million per key).
`add` runs one Lua script: atomic against every other process, and idempotent. Each charge carries
a random id that the script claims (SET NX, kept `charge_ttl_s`) before the HINCRBYs; a client
that sends the same charge again because the reply was lost after Redis ran it (redis-py retries
on a dropped connection, three times by default since redis-py 6) finds the id claimed and only
reads the total, so the charge is counted once. Needs `redis` (redis-py): `pip install costspan[redis]`.
"""

from __future__ import annotations

import os
from typing import Any

_SUB_PER_PICO = 10**12
DEFAULT_PREFIX = "costspan:budget:"
# How long a charge id is remembered: longer than any client's retries of one command.
DEFAULT_CHARGE_TTL_S = 120.0

# KEYS[1]: the ledger key; KEYS[2]: the charge's id key. ARGV: pico, sub, expire-at in epoch ms
# ("" for none), the charge id's TTL in ms.
_ADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then
  redis.call('HINCRBY', KEYS[1], 'pico', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'sub', ARGV[2])
  if ARGV[3] ~= '' then
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  end
end
return redis.call('HMGET', KEYS[1], 'pico', 'sub')
"""


class RedisLedger:
    """`RedisLedger("redis://host:6379/0")` or `RedisLedger(client=redis.Redis(...))`."""

    remote = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        charge_ttl_s: float = DEFAULT_CHARGE_TTL_S,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("RedisLedger needs exactly one of url= or client=")
        if not charge_ttl_s >= 0.001:
            raise ValueError(f"charge_ttl_s must be at least 0.001 seconds, got {charge_ttl_s!r}")
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
        self._charge_ttl_ms = str(int(charge_ttl_s * 1000))
        self._add_once = client.register_script(_ADD_ONCE)

    @property
    def client(self) -> Any:
        return self._client

    def add(self, key: str, units: int, expire_at: float | None) -> int:
        pico, sub = divmod(units, _SUB_PER_PICO)
        name = self._prefix + key
        charge = f"{self._prefix}charge:{os.urandom(12).hex()}"
        expire_ms = str(int(expire_at * 1000)) if expire_at is not None else ""
        total_pico, total_sub = self._add_once(
            keys=[name, charge], args=[pico, sub, expire_ms, self._charge_ttl_ms]
        )
        return int(total_pico or 0) * _SUB_PER_PICO + int(total_sub or 0)

    def spent(self, key: str) -> int:
        pico, sub = self._client.hmget(self._prefix + key, "pico", "sub")
        return int(pico or 0) * _SUB_PER_PICO + int(sub or 0)
