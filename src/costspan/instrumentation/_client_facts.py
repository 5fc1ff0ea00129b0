"""What an instrumentor derives from a provider SDK client (server attributes, provider name),
computed once per client base URL instead of on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Facts = tuple[dict[str, Any], str]  # server attributes, provider name


class ClientFacts:
    """`facts.of(client)`: `derive(client, base_url)` cached by the client's `base_url` object.

    Keyed by id(base_url); the entry holds that URL object (so its id is not reused while the entry
    exists) and the client's class. A client's `base_url` setter stores a new URL object, so an
    identity check keeps an entry correct. A plain dict (a WeakKeyDictionary builds a weakref per
    lookup), cleared when full.
    """

    __slots__ = ("_derive", "_entries", "_maxsize", "_stored_url")

    def __init__(self, derive: Callable[[Any, Any], Facts], maxsize: int = 256) -> None:
        self._derive = derive
        self._entries: dict[int, tuple[Any, type, dict[str, Any], str]] = {}
        self._maxsize = maxsize
        # Client class -> whether its `base_url` property returns the instance's `_base_url` as it is
        # (the SDKs' base clients do). openai 3.x's property imports a module on every read (~12k
        # instructions); the instance dict is read instead where the class was seen to agree.
        self._stored_url: dict[type, bool] = {}

    def _read_base_url(self, client: Any, kind: type, stored: bool | None) -> Any:
        base_url = getattr(client, "base_url", None)
        if stored is None and len(self._stored_url) < self._maxsize:
            own = getattr(client, "__dict__", {}).get("_base_url")
            self._stored_url[kind] = own is not None and own is base_url
        return base_url

    def of(self, client: Any) -> Facts:
        """The client's server attributes (a fresh dict the caller may extend) and provider name."""
        kind = type(client)
        stored = self._stored_url.get(kind)
        base_url = client.__dict__.get("_base_url") if stored else None
        if base_url is None:
            base_url = self._read_base_url(client, kind, stored)
        cached = self._entries.get(id(base_url))
        if cached is not None and cached[0] is base_url and cached[1] is kind:
            return dict(cached[2]), cached[3]
        server, provider = self._derive(client, base_url)
        if base_url is not None:
            if len(self._entries) >= self._maxsize:
                self._entries.clear()
            self._entries[id(base_url)] = (base_url, kind, server, provider)
        return dict(server), provider
