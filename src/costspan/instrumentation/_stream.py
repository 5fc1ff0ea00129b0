"""Proxies for streamed responses: the call's span lives until the stream is exhausted, closed,
fails, or is abandoned (garbage-collected), and the caller sees exactly the items it would see
uninstrumented, minus any the instrumentor asked to hide (e.g. a usage-only chunk that costspan
requested itself).
"""

from __future__ import annotations

import atexit
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

from costspan.budget.gate import stream_refusal
from costspan.instrumentation._call import FAULTS, CallSpan

# Called with each item; returns False to hide the item from the caller.
OnItem = Callable[[Any], bool]


class Tail:
    """The last `size` items of a stream, shown to `on_item` once, when the stream ends: for a
    watcher that needs only what a stream's last items say (usage, finish reasons) and never hides
    one. Per item the proxy then appends to a deque instead of making a Python call, which with the
    look at a chunk's fields costs ~4k instructions on CPython 3.11: ~2M on a 500-chunk answer.
    `each`, if given, still runs on every item before the caller gets it (keep it small). (Its
    owner must not hold it: `on_item` holds the owner.)"""

    __slots__ = ("each", "items", "on_item")

    def __init__(self, on_item: OnItem, each: Callable[[Any], None] | None = None, size: int = 4) -> None:
        self.items: deque[Any] = deque(maxlen=size)
        self.on_item = on_item
        self.each = each

    def take(self, item: Any) -> None:
        """Keep `item` (and run `each` on it): for the proxies' `__next__`, which make a Python call
        per item anyway. Their `for` loop does the same inline."""
        self.items.append(item)
        if self.each is not None:
            try:
                self.each(item)
            except Exception as exc:
                FAULTS.record("stream item", exc)

    def flush(self) -> None:
        items = self.items
        while items:
            try:
                self.on_item(items.popleft())
            except Exception as exc:
                FAULTS.record("stream item", exc)


# Called once before the span ends (exhausted, closed, failed or abandoned) to set usage etc.
OnDone = Callable[[], None]
# The `error.type` for an exception the stream raised (e.g. the API's HTTP status code).
ErrorType = Callable[[BaseException], str]


def _finish(
    call: CallSpan,
    watch: OnItem | Tail,
    on_done: OnDone,
    error: BaseException | None,
    error_type: ErrorType | None,
) -> None:
    if call.ended:
        return
    if type(watch) is Tail:
        watch.flush()
    try:
        on_done()
    except Exception as exc:
        FAULTS.record("stream usage", exc)
    kind = None
    if error is not None and error_type is not None:
        try:
            kind = error_type(error)
        except Exception as exc:
            FAULTS.record("stream error type", exc)
    call.end(error, error_type=kind)


class _EndWhenCollected(weakref.ref):  # type: ignore[type-arg]
    """Ends an abandoned stream's span when its proxy is collected: `weakref.finalize` does the same
    with ~20k instructions more per stream (its bookkeeping object, registry and counter)."""

    __slots__ = ("call", "on_done", "watch")
    call: CallSpan
    on_done: OnDone
    watch: OnItem | Tail


# Kept alive here until their proxy is collected; what is left at exit is ended then (as
# weakref.finalize does, registered at the first stream like it, so it runs before a tracer provider
# made earlier shuts down).
_PENDING: set[_EndWhenCollected] = set()
_AT_EXIT: list[bool] = []


def _collected(ref: _EndWhenCollected) -> None:
    _PENDING.discard(ref)
    _finish(ref.call, ref.watch, ref.on_done, None, None)


def _end_pending_at_exit() -> None:
    while _PENDING:
        ref = _PENDING.pop()
        _finish(ref.call, ref.watch, ref.on_done, None, None)


def _end_when_collected(proxy: Any, call: CallSpan, watch: OnItem | Tail, on_done: OnDone) -> None:
    ref = _EndWhenCollected(proxy, _collected)
    ref.call = call
    ref.watch = watch
    ref.on_done = on_done
    _PENDING.add(ref)
    if not _AT_EXIT:
        _AT_EXIT.append(True)
        atexit.register(_end_pending_at_exit)


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """A sync stream (iterator, and context manager when the wrapped one is)."""

    def __init__(
        self,
        wrapped: Any,
        call: CallSpan,
        on_item: OnItem | Tail,
        on_done: OnDone,
        error_type: ErrorType | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_on_item = on_item
        self._self_on_done = on_done
        self._self_error_type = error_type
        # Abandoned without being exhausted or closed: end the span when the proxy is collected.
        _end_when_collected(self, call, on_item, on_done)

    def _self_done(self, error: BaseException | None = None) -> None:
        _finish(self._self_call, self._self_on_item, self._self_on_done, error, self._self_error_type)

    def __iter__(self) -> Any:
        # `for item in stream`: a generator over the wrapped stream's own iterator, with what it needs in
        # locals, costs less per item than this proxy's `__next__` (a Python call, attribute reads through
        # the proxy, and the SDK's `__next__` on top). A subclass that wraps `__next__` keeps it.
        if type(self).__next__ is not SyncStreamProxy.__next__:
            return self
        try:
            items = iter(self.__wrapped__)
        except TypeError:  # an iterator without `__iter__`
            return self
        return _items(self, items, self._self_call, self._self_on_item)

    def __next__(self) -> Any:
        if self._self_call.budget is not None:
            self._self_stop_if_over_budget()
        while True:
            try:
                item = next(self.__wrapped__)
            except StopIteration:
                self._self_done()
                raise
            except BaseException as exc:
                self._self_done(exc)
                raise
            watch = self._self_on_item
            if type(watch) is Tail:
                watch.take(item)
                return item
            try:  # runs for every item: no helper call
                if watch(item):
                    return item
            except Exception as exc:
                FAULTS.record("stream item", exc)
                return item

    def _self_stop_if_over_budget(self) -> None:
        """costspan.budget(..., abort_streams=True) ran out while this stream was in flight."""
        refusal = stream_refusal(self._self_call)
        if refusal is None:
            return
        self._self_done(refusal)
        try:
            self.__wrapped__.close()
        except Exception as exc:
            FAULTS.record("stream abort", exc)
        raise refusal

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        # An error the stream itself raised has already ended the span as failed; one raised by the
        # caller's own code in the with-body abandons the stream but is not the call failing.
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_done()

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_done()


def _items(
    proxy: SyncStreamProxy, items: Iterator[Any], call: CallSpan, on_item: OnItem | Tail
) -> Iterator[Any]:
    """What `iter(proxy)` returns: the items `proxy.__next__` would return, and the same span ending. It
    holds the proxy, so that the proxy (whose collection ends an abandoned stream's span) lives while
    it is iterated."""
    if call.budget is not None:
        proxy._self_stop_if_over_budget()
    keep, each = (on_item.items.append, on_item.each) if type(on_item) is Tail else (None, None)
    at_caller = False  # suspended at `yield`: what is thrown in there (GeneratorExit) is not the stream's
    try:
        for item in items:
            if keep is not None:  # runs for every item: no helper call
                keep(item)
                if each is not None:
                    try:
                        each(item)
                    except Exception as exc:
                        FAULTS.record("stream item", exc)
                shown = True
            else:
                try:
                    shown = on_item(item)  # type: ignore[operator]
                except Exception as exc:
                    FAULTS.record("stream item", exc)
                    shown = True
            if shown:
                at_caller = True
                yield item
                at_caller = False
                if call.budget is not None:
                    proxy._self_stop_if_over_budget()
    except BaseException as exc:
        if not at_caller:
            proxy._self_done(exc)
        raise
    proxy._self_done()


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """An async stream (async iterator, and async context manager when the wrapped one is)."""

    def __init__(
        self,
        wrapped: Any,
        call: CallSpan,
        on_item: OnItem | Tail,
        on_done: OnDone,
        error_type: ErrorType | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_on_item = on_item
        self._self_on_done = on_done
        self._self_error_type = error_type
        _end_when_collected(self, call, on_item, on_done)

    def _self_done(self, error: BaseException | None = None) -> None:
        _finish(self._self_call, self._self_on_item, self._self_on_done, error, self._self_error_type)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._self_call.budget is not None:
            await self._self_stop_if_over_budget()
        while True:
            try:
                item = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                self._self_done()
                raise
            except BaseException as exc:
                self._self_done(exc)
                raise
            watch = self._self_on_item
            if type(watch) is Tail:
                watch.take(item)
                return item
            try:  # runs for every item: no helper call
                if watch(item):
                    return item
            except Exception as exc:
                FAULTS.record("stream item", exc)
                return item

    async def _self_stop_if_over_budget(self) -> None:
        refusal = stream_refusal(self._self_call)
        if refusal is None:
            return
        self._self_done(refusal)
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            await closer()
        except Exception as exc:
            FAULTS.record("stream abort", exc)
        raise refusal

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_done()

    async def aclose(self) -> None:
        """Async generators close with `aclose()`; SDK stream objects with `close()`."""
        await self._self_close("aclose", "close")

    async def close(self) -> None:
        await self._self_close("close", "aclose")

    async def _self_close(self, first: str, second: str) -> None:
        try:
            closer = getattr(self.__wrapped__, first, None) or getattr(self.__wrapped__, second)
            await closer()
        finally:
            self._self_done()
