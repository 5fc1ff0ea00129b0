"""Servers answer with what a request cost them: the `costspan-cost` response header.

`CostReturningWSGI` / `CostReturningASGI` wrap an application inside its server span (the OpenTelemetry
middleware's span is the current span when they are called). When the request carries `costspan.*`
attribution (baggage the inbound guard kept: the caller is trusted) they add the header when the
response starts (WSGI `start_response`, ASGI `http.response.start`), with what the calls that ended
under the server span so far add up to (`costspan.rollup.remote_cost.response_cost_header`).

`return_cost_from_otel_middlewares()` makes every `OpenTelemetryMiddleware` of
opentelemetry-instrumentation-wsgi and -asgi created from then on wrap its application so (FastAPI's
and Starlette's instrumentations use the ASGI one). Nothing here raises into the application: a
fault is counted in `costspan.rollup.remote_cost.FAULTS` and the response goes out without the header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import wrapt
from opentelemetry import baggage, trace

from costspan.attribution.baggage_trust import PREFIX
from costspan.rollup.cost_header import HEADER
from costspan.rollup.remote_cost import FAULTS, response_cost_header

_HEADER_BYTES = HEADER.encode("ascii")


def _attributed() -> bool:
    return any(key.startswith(PREFIX) for key in baggage.get_all())


def _header_for(span: object) -> str | None:
    try:
        return response_cost_header(span)
    except Exception as exc:
        FAULTS.record("cost header", exc)
        return None


class CostReturningWSGI:
    """A WSGI application that adds the request's cost to its response headers."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            report = _attributed()
        except Exception as exc:
            FAULTS.record("cost header", exc)
            report = False
        if not report:
            return self.app(environ, start_response)
        span = trace.get_current_span()

        def start_with_cost(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            value = _header_for(span)
            if value is not None:
                headers = [*headers, (HEADER, value)]
            return start_response(status, headers, *exc_info)

        return self.app(environ, start_with_cost)


class CostReturningASGI:
    """An ASGI application that adds the request's cost to its `http.response.start` message."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> Any:
        try:
            report = scope.get("type") == "http" and _attributed()
        except Exception as exc:
            FAULTS.record("cost header", exc)
            report = False
        if not report:
            return await self.app(scope, receive, send)
        span = trace.get_current_span()

        async def send_with_cost(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                value = _header_for(span)
                if value is not None:
                    headers = [*message.get("headers", ()), (_HEADER_BYTES, value.encode("ascii"))]
                    message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cost)


def _wrap_inner_app(attribute: str, wrapper: type) -> Callable[..., Any]:
    def init(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            inner = getattr(instance, attribute, None)
            if inner is not None and not isinstance(inner, wrapper):
                setattr(instance, attribute, wrapper(inner))
        except Exception as exc:
            FAULTS.record("middleware wrap", exc)
        return result

    return init


def _patch(attribute: str, wrapper: type) -> Callable[[Any], None]:
    def patch(module: Any) -> None:  # runs inside the import of the middleware's module: never raises
        try:
            wrapt.wrap_function_wrapper(
                module, "OpenTelemetryMiddleware.__init__", _wrap_inner_app(attribute, wrapper)
            )
        except Exception as exc:
            FAULTS.record("middleware patch", exc)

    return patch


_installed = False


def return_cost_from_otel_middlewares() -> None:
    """From now on (and once), OpenTelemetry's WSGI and ASGI middlewares answer with the request's cost."""
    global _installed
    if _installed:
        return
    _installed = True
    wrapt.register_post_import_hook(_patch("wsgi", CostReturningWSGI), "opentelemetry.instrumentation.wsgi")
    wrapt.register_post_import_hook(_patch("app", CostReturningASGI), "opentelemetry.instrumentation.asgi")


__all__ = ["CostReturningASGI", "CostReturningWSGI", "return_cost_from_otel_middlewares"]
