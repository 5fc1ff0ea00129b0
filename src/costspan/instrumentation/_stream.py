"""Proxies for streamed responses: the call's span lives until the stream is exhausted, closed,
fails, or is abandoned (garbage-collected), and the caller sees exactly the items it would see
uninstrumented, minus any the instrumentor asked to hide (e.g. a usage-only chunk that costspan
requested itself).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from costspan.budget.gate import stream_refusal
from costspan.instrumentation._call import FAULTS, CallSpan

# Called with each item; returns False to hide the item from the caller.
OnItem = Callable[[Any], bool]
# Called once before the span ends (exhausted, closed, failed or abandoned) to set usage etc.
OnDone = Callable[[], None]
# The `error.type` for an exception the stream raised (e.g. the API's HTTP status code).
ErrorType = Callable[[BaseException], str]


def _finish(
    call: CallSpan, on_done: OnDone, error: BaseException | None, error_type: ErrorType | None
) -> None:
    if call.ended:
        return
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


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """A sync stream (iterator, and context manager when the wrapped one is)."""

    def __init__(
        self,
        wrapped: Any,
        call: CallSpan,
        on_item: OnItem,
        on_done: OnDone,
        error_type: ErrorType | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_on_item = on_item
        self._self_on_done = on_done
        self._self_error_type = error_type
        # Abandoned without being exhausted or closed: end the span when the proxy is collected.
        weakref.finalize(self, _finish, call, on_done, None, None)

    def _self_done(self, error: BaseException | None = None) -> None:
        _finish(self._self_call, self._self_on_done, error, self._self_error_type)

    def __iter__(self) -> SyncStreamProxy:
        return self

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
            try:  # runs for every item: no helper call
                if self._self_on_item(item):
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


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """An async stream (async iterator, and async context manager when the wrapped one is)."""

    def __init__(
        self,
        wrapped: Any,
        call: CallSpan,
        on_item: OnItem,
        on_done: OnDone,
        error_type: ErrorType | None = None,
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_on_item = on_item
        self._self_on_done = on_done
        self._self_error_type = error_type
        weakref.finalize(self, _finish, call, on_done, None, None)

    def _self_done(self, error: BaseException | None = None) -> None:
        _finish(self._self_call, self._self_on_done, error, self._self_error_type)

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
            try:  # runs for every item: no helper call
                if self._self_on_item(item):
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
