"""Callers take in what a service returned in `costspan-cost`: through the HTTP client instrumentations.

The OpenTelemetry instrumentations users already run for `requests`, `httpx` (and `httpx2`) and
`aiohttp` call a `response_hook` with the client span before it ends. From
`read_returned_cost_in_http_clients()` on, each of these instrumentors gets costspan's hook when it
instruments (under `opentelemetry-instrument`, costspan's pre-instrument hook runs before them),
ahead of any hook the application passed, which still runs and sees the same arguments. The hook
reads one header and, when it is there, hands it to `costspan.rollup.remote_cost`; a response without
it costs one header lookup. An instrumentor that instrumented before this was installed is left as
it is (logged once): instrument it after `costspan.configure()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

import wrapt

from costspan.rollup.cost_header import HEADER
from costspan.rollup.remote_cost import FAULTS, record_returned_cost

logger = logging.getLogger("costspan")


def _host(url: Any) -> str | None:
    host = getattr(url, "host", None)  # httpx.URL, yarl.URL
    if isinstance(host, str):
        return host
    if isinstance(url, str):  # requests: the prepared request's URL
        from urllib.parse import urlsplit

        return urlsplit(url).hostname
    return None


def _read(span: Any, url: Any, headers: Any) -> None:
    try:
        value = headers.get(HEADER) if headers is not None else None
        if value is not None:
            record_returned_cost(span, value, _host(url))
    except Exception as exc:
        FAULTS.record("read returned cost", exc)


def _requests_hook(user_hook: Callable[..., Any] | None) -> Callable[..., Any]:
    def hook(span: Any, request: Any, response: Any) -> None:
        _read(span, getattr(request, "url", None), getattr(response, "headers", None))
        if user_hook is not None:
            user_hook(span, request, response)

    return hook


def _httpx_hook(user_hook: Callable[..., Any] | None) -> Callable[..., Any]:
    def hook(span: Any, request: Any, response: Any) -> None:
        _read(span, getattr(request, "url", None), getattr(response, "headers", None))
        if callable(user_hook):
            user_hook(span, request, response)

    return hook


def _httpx_async_hook(user_hook: Callable[..., Any] | None) -> Callable[..., Any]:
    async def hook(span: Any, request: Any, response: Any) -> None:
        _read(span, getattr(request, "url", None), getattr(response, "headers", None))
        if user_hook is not None:
            await user_hook(span, request, response)

    return hook


def _aiohttp_hook(user_hook: Callable[..., Any] | None) -> Callable[..., Any]:
    def hook(span: Any, params: Any) -> None:
        response = getattr(params, "response", None)  # absent on TraceRequestExceptionParams
        if response is not None:
            _read(span, getattr(params, "url", None), getattr(response, "headers", None))
        if callable(user_hook):
            user_hook(span, params)

    return hook


def _requests_kwargs(kwargs: dict[str, Any]) -> None:
    user_hook = kwargs.get("response_hook")
    kwargs["response_hook"] = _requests_hook(user_hook if callable(user_hook) else None)


def _httpx_kwargs(kwargs: dict[str, Any]) -> None:
    kwargs["response_hook"] = _httpx_hook(kwargs.get("response_hook"))
    user_async = kwargs.get("async_response_hook")
    # The instrumentation drops an async hook that is not a coroutine function: so do we.
    kwargs["async_response_hook"] = _httpx_async_hook(user_async if iscoroutinefunction(user_async) else None)


def _aiohttp_kwargs(kwargs: dict[str, Any]) -> None:
    kwargs["response_hook"] = _aiohttp_hook(kwargs.get("response_hook"))


# module -> (instrumentor classes whose _instrument gets the hook, first found is patched; kwargs edit)
_CLIENTS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], None]]] = {
    "opentelemetry.instrumentation.requests": (("RequestsInstrumentor",), _requests_kwargs),
    "opentelemetry.instrumentation.httpx": (
        ("_BaseHTTPXClientInstrumentor", "HTTPXClientInstrumentor"),
        _httpx_kwargs,
    ),
    "opentelemetry.instrumentation.aiohttp_client": (("AioHttpClientInstrumentor",), _aiohttp_kwargs),
}


def _with_hook(edit: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    def instrument(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        try:
            edit(kwargs)
        except Exception as exc:
            FAULTS.record("client hook", exc)
        return wrapped(*args, **kwargs)

    return instrument


def _patch(class_names: tuple[str, ...], edit: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    def patch(module: Any) -> None:  # runs inside the import of the instrumentation: never raises
        try:
            for name in class_names:
                cls = getattr(module, name, None)
                if cls is None:
                    continue
                wrapt.wrap_function_wrapper(module, f"{name}._instrument", _with_hook(edit))
                for instrumentor in (cls, *cls.__subclasses__()):
                    instance = instrumentor.__dict__.get("_instance")
                    if instance is not None and instance.is_instrumented_by_opentelemetry:
                        logger.warning(
                            "costspan: %s instrumented before costspan was configured; its responses' "
                            "%s headers are not read (instrument it after costspan.configure())",
                            instrumentor.__name__,
                            HEADER,
                        )
                return
        except Exception as exc:
            FAULTS.record("client patch", exc)

    return patch


_installed = False


def read_returned_cost_in_http_clients() -> None:
    """From now on (and once), the requests/httpx/aiohttp instrumentors read returned costs."""
    global _installed
    if _installed:
        return
    _installed = True
    for module, (class_names, edit) in _CLIENTS.items():
        wrapt.register_post_import_hook(_patch(class_names, edit), module)


__all__ = ["read_returned_cost_in_http_clients"]
