"""Faults swallowed on the application's call path: counted, and logged once per place and kind."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from costspan.telemetry.fork_safe import reopen_lock_after_fork

logger = logging.getLogger("costspan")


class FaultCounter:
    """Counts exceptions that costspan caught so that they never reach the application."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        reopen_lock_after_fork(self)

    def record(self, where: str, exc: BaseException) -> None:
        kind = type(exc).__qualname__
        with self._lock:
            self._counts[where] += 1
            first = (where, kind) not in self._logged
            if first:
                self._logged.add((where, kind))
        if first:
            logger.warning(
                "costspan: %s failed (%s: %s); the application is unaffected, further %s faults "
                "here are counted but not logged",
                where,
                kind,
                exc,
                kind,
                exc_info=exc,
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class LogOnce:
    """Logs a warning the first time a key is seen, remembering at most `limit` keys."""

    def __init__(self, limit: int = 1024) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def warn(self, key: str, message: str, *args: object) -> None:
        if key in self._seen or len(self._seen) >= self._limit:
            return
        self._seen.add(key)
        logger.warning(message, *args)


# Faults on the LLM call path (instrumentors, the call span, budget checks, tool spend).
INSTRUMENTATION_FAULTS = FaultCounter()
