"""A size-bounded dict cache (oldest entry evicted first)."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Insertion-ordered cache that evicts its oldest entries past ``maxsize``.

    Plain dict operations only, so concurrent use under the GIL is safe; at worst a value is
    computed twice.
    """

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._data: dict[K, V] = {}

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: K, value: V) -> None:
        data = self._data
        data[key] = value
        while len(data) > self.maxsize:
            try:
                data.pop(next(iter(data)), None)
            except (StopIteration, RuntimeError):  # emptied or resized by another thread
                break

    def clear(self) -> None:
        self._data.clear()
