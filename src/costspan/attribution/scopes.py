"""Run a function, generator or coroutine inside a scope that is entered afresh per call.

`attribute()`, `task()`, `agent()`, `step()` and `tool()` are context managers that also decorate
sync, async, generator and async-generator functions. A generator's body runs in the caller's
context between yields, so the scope's context is attached around each resumption, never left
attached across a yield.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context

F = TypeVar("F", bound=Callable[..., Any])


class OpenScope(Protocol):
    """One entered scope: the context to run in, and how to close it."""

    context: otel_context.Context

    def close(self, exc: BaseException | None) -> None: ...


def decorate(fn: F, open_scope: Callable[[Callable[..., Any]], OpenScope]) -> F:
    """Wrap `fn` so each call runs inside a fresh scope from `open_scope(fn)`."""
    if inspect.isasyncgenfunction(fn):
        return _wrap_async_generator(fn, open_scope)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, open_scope)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            scope = open_scope(fn)
            token = otel_context.attach(scope.context)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _close(scope, token, exc)
                raise
            _close(scope, token, None)
            return result

        return run_coroutine  # type: ignore[return-value]

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        scope = open_scope(fn)
        token = otel_context.attach(scope.context)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _close(scope, token, exc)
            raise
        _close(scope, token, None)
        return result

    return run  # type: ignore[return-value]


def _close(scope: OpenScope, token: object, exc: BaseException | None) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]
    scope.close(exc)


def _wrap_generator(fn: Callable[..., Generator[Any, Any, Any]], open_scope: Any) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run_generator(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        scope: OpenScope = open_scope(fn)
        token = otel_context.attach(scope.context)
        try:
            gen = fn(*args, **kwargs)
        finally:
            otel_context.detach(token)
        sent: Any = None
        thrown: BaseException | None = None
        failure: BaseException | None = None
        try:
            while True:
                token = otel_context.attach(scope.context)
                try:
                    item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                except StopIteration as stop:
                    return stop.value
                finally:
                    thrown = None
                    otel_context.detach(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = otel_context.attach(scope.context)
                    try:
                        gen.close()
                    finally:
                        otel_context.detach(token)
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            scope.close(failure)

    return run_generator


def _wrap_async_generator(fn: Callable[..., AsyncGenerator[Any, Any]], open_scope: Any) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def run_async_generator(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope: OpenScope = open_scope(fn)
        token = otel_context.attach(scope.context)
        try:
            agen = fn(*args, **kwargs)
        finally:
            otel_context.detach(token)
        sent: Any = None
        thrown: BaseException | None = None
        failure: BaseException | None = None
        try:
            while True:
                token = otel_context.attach(scope.context)
                try:
                    if thrown is not None:
                        item = await agen.athrow(thrown)
                    else:
                        item = await agen.asend(sent)
                except StopAsyncIteration:
                    return
                finally:
                    thrown = None
                    otel_context.detach(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = otel_context.attach(scope.context)
                    try:
                        await agen.aclose()
                    finally:
                        otel_context.detach(token)
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            scope.close(failure)

    return run_async_generator
