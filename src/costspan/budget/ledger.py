"""Where budget spend is counted: the ledger interface and the in-process ledger.

A ledger maps a key (`task:<task id>`, `customer:<id>:<window>:<n>`) to a spend in 1e-24 USD
units (exact ints). Keys expire: a customer window at its end, a task key some time after its
last call. `RedisLedger` (costspan.budget.redis_ledger) shares the counts between processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from costspan.telemetry.fork_safe import reopen_lock_after_fork

DEFAULT_MAX_KEYS = 100_000
# Expired keys are swept at most this often (when a new key is added).
SWEEP_INTERVAL_S = 60.0


@runtime_checkable
class Ledger(Protocol):
    """Spend per key. Both methods are called on the application's call path: keep them fast."""

    # True when reads cross a network: a stream's abort check then reads at most twice a second.
    remote: bool

    def add(self, key: str, units: int, expire_at: float | None) -> int:
        """Add `units` to `key` atomically and return the new total. `expire_at` (epoch seconds)
        replaces the key's expiry; None leaves the key without one."""
        ...

    def spent(self, key: str) -> int:
        """The key's total, 0 for an absent or expired key."""
        ...


class InMemoryLedger:
    """This process's ledger (the default). At most `max_keys` keys: past that, expired keys go
    first, then the oldest; `evicted` counts keys dropped before they expired."""

    remote = False

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, list[float | int | None]] = {}  # key -> [units, expire_at]
        self._next_sweep = clock() + SWEEP_INTERVAL_S
        self.evicted = 0
        reopen_lock_after_fork(self)

    def add(self, key: str, units: int, expire_at: float | None) -> int:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is not None and entry[1] <= now:  # type: ignore[operator]
                del self._entries[key]
                entry = None
            if entry is None:
                if now >= self._next_sweep:
                    self._sweep(now)
                if len(self._entries) >= self._max_keys:
                    self._make_room(now)
                entry = self._entries[key] = [0, None]
            total = int(entry[0]) + units  # type: ignore[arg-type]
            entry[0] = total
            entry[1] = expire_at
            return total

    def spent(self, key: str) -> int:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return 0
            if entry[1] is not None and entry[1] <= self._clock():  # type: ignore[operator]
                del self._entries[key]
                return 0
            return int(entry[0])  # type: ignore[arg-type]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL_S
        expired = [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]  # type: ignore[operator]
        for key in expired:
            del self._entries[key]

    def _make_room(self, now: float) -> None:
        self._sweep(now)
        while len(self._entries) >= self._max_keys:
            del self._entries[next(iter(self._entries))]
            self.evicted += 1
