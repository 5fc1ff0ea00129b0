"""`costspan.configure()`: one call that puts costspan on the global OpenTelemetry providers.

The pieces are shared with the `opentelemetry-instrument` hooks (`costspan.setup.auto`), and each is
idempotent on its own: one CostSpanProcessor per TracerProvider (also when the application added
one itself), one console tree per provider, and an instrumentor that is already instrumented is
left alone. So `configure()` under `opentelemetry-instrument`, or called twice, adds nothing twice.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from costspan.attribution.baggage_trust import (
    AttributionBaggageGuard,
    InboundBaggagePolicy,
    guard_inbound_baggage,
)
from costspan.budget.config import install_budgets
from costspan.exporters import ConsoleCostTreeExporter
from costspan.instrumentation.cost_clients import read_returned_cost_in_http_clients
from costspan.instrumentation.cost_servers import return_cost_from_otel_middlewares
from costspan.pricing import RateCard
from costspan.rollup.call_pricing import apply_cost_attributes, parse_cost_attributes
from costspan.rollup.processor import CostSpanProcessor
from costspan.rollup.remote_cost import CostPeerPolicy, set_cost_peer_policy
from costspan.setup import settings as costspan_settings
from costspan.setup.summary import install_summary
from costspan.telemetry.metrics import (
    DEFAULT_COST_DIMENSIONS,
    checked_dimension_value_limit,
    record_tools_on,
    set_dimension_value_limit,
)
from costspan.telemetry.task_metrics import record_task_runs_on

logger = logging.getLogger("costspan")

INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"
# OpenTelemetry's own context propagation into threads (ThreadPoolExecutor, Thread, Timer).
THREADING_ENTRY_POINT = "threading"
_DISABLED_INSTRUMENTATIONS = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
# The name ConsoleCostTreeExporter is registered under (opentelemetry_traces_exporter entry point).
COSTSPAN_TRACES_EXPORTER = "costspan"

_lock = threading.RLock()
_processors: weakref.WeakKeyDictionary[TracerProvider, CostSpanProcessor] = weakref.WeakKeyDictionary()
_console_trees: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
# Entry-point name -> the cost dimensions costspan instrumented it with.
_applied_dimensions: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class CostspanSetup:
    """What `configure()` left in place (the same objects on every call)."""

    tracer_provider: TracerProvider | None
    meter_provider: Any
    processor: CostSpanProcessor | None
    instrumented: tuple[str, ...] = field(default=())
    disabled: bool = False


# --------------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------------


def sdk_tracer_provider() -> TracerProvider | None:
    """The global TracerProvider if it is the OpenTelemetry SDK's, else None."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def providers_unset() -> bool:
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def metrics_exporter_default(traces_exporter: str) -> str:
    """OTEL_METRICS_EXPORTER's default: `otlp`, except `none` when the traces go only to the console
    cost tree (`--traces_exporter costspan`), a local run with no collector to send metrics to."""
    names = {name.strip().lower() for name in traces_exporter.split(",") if name.strip()}
    return "none" if names == {COSTSPAN_TRACES_EXPORTER} else "otlp"


def configure_sdk_from_env(auto_instrumentation_version: str | None = None) -> TracerProvider | None:
    """Build the global TracerProvider and MeterProvider the way opentelemetry-distro does.

    The SDK's own configurator reads every OTEL_* variable (exporters, OTLP endpoint and protocol,
    resource and service name, sampler). Like the distro, an unset OTEL_TRACES_EXPORTER or
    OTEL_METRICS_EXPORTER means `otlp` (the specification's default); set it to `none` to export
    nothing. One exception: with OTEL_TRACES_EXPORTER=costspan alone (the console cost tree) an
    unset OTEL_METRICS_EXPORTER means `none`, so a local run does not send metrics to a collector
    that is not there (and log each failed export).
    """
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    class CostspanSDKConfigurator(_OTelSDKConfigurator):  # type: ignore[misc]
        """The SDK's configurator, used as distros use it (subclassed, not instantiated bare)."""

    # As opentelemetry-distro does (the variable, not an exporter name, so that `otlp` resolves to
    # gRPC or HTTP per OTEL_EXPORTER_OTLP_PROTOCOL).
    os.environ.setdefault(TRACES_EXPORTER, "otlp")
    os.environ.setdefault(METRICS_EXPORTER, metrics_exporter_default(os.environ[TRACES_EXPORTER]))
    kwargs: dict[str, Any] = {}
    if auto_instrumentation_version:
        kwargs["auto_instrumentation_version"] = auto_instrumentation_version
    CostspanSDKConfigurator().configure(**kwargs)
    return sdk_tracer_provider()


# --------------------------------------------------------------------------------------------------
# Processor and console tree, once per provider
# --------------------------------------------------------------------------------------------------


def _span_processors(provider: TracerProvider) -> tuple[SpanProcessor, ...]:
    multi = getattr(provider, "_active_span_processor", None)
    found = getattr(multi, "_span_processors", ())
    return tuple(found) if isinstance(found, tuple | list) else ()


def _exporter_of(processor: SpanProcessor) -> SpanExporter | None:
    exporter = getattr(processor, "span_exporter", None)  # SimpleSpanProcessor (and old Batch)
    if exporter is None:
        exporter = getattr(getattr(processor, "_batch_processor", None), "_exporter", None)
    return exporter if isinstance(exporter, SpanExporter) else None


def install_processor(
    provider: TracerProvider, rate_card: RateCard | None, *, card_given: bool = False
) -> CostSpanProcessor:
    """The provider's CostSpanProcessor: the one already there, else a new one added to it.

    `card_given`: the caller passed `rate_card` explicitly (not from COSTSPAN_PRICES, which the
    first setup already used), so a processor that prices with another card is worth a warning."""
    with _lock:
        existing = _processors.get(provider)
        if existing is None:
            existing = next((p for p in _span_processors(provider) if isinstance(p, CostSpanProcessor)), None)
        if existing is not None:
            if card_given and rate_card is not None and rate_card is not existing.rate_card:
                logger.warning(
                    "costspan: a CostSpanProcessor is already on this TracerProvider (added by "
                    "opentelemetry-instrument, an earlier configure() or the application): the rate "
                    "card given now is not used; set COSTSPAN_PRICES, or pass the card at the first setup"
                )
            _processors[provider] = existing
            return existing
        processor = CostSpanProcessor(rate_card=rate_card)
        provider.add_span_processor(processor)
        _processors[provider] = processor
        return processor


def install_console_tree(provider: TracerProvider) -> None:
    """Print each trace's cost tree to stdout, unless the provider already exports one."""
    with _lock:
        if provider in _console_trees:
            return
        _console_trees.add(provider)
        if any(isinstance(_exporter_of(p), ConsoleCostTreeExporter) for p in _span_processors(provider)):
            return  # e.g. OTEL_TRACES_EXPORTER=costspan
        provider.add_span_processor(SimpleSpanProcessor(ConsoleCostTreeExporter()))


def install_cost_across_services(policy: CostPeerPolicy) -> None:
    """Servers under OpenTelemetry's WSGI/ASGI middleware return what a request cost (to trusted,
    attributed callers); the requests/httpx/aiohttp instrumentations read it back on the client span,
    believing the hosts and signatures `policy` trusts."""
    set_cost_peer_policy(policy)
    return_cost_from_otel_middlewares()
    read_returned_cost_in_http_clients()


def install_baggage_guard(policy: InboundBaggagePolicy) -> None:
    """Keep inbound costspan.* baggage only from trusted callers, unless a guard is already set
    (the application's own `guard_inbound_baggage(policy)` is not replaced)."""
    if not isinstance(propagate.get_global_textmap(), AttributionBaggageGuard):
        guard_inbound_baggage(policy)


# --------------------------------------------------------------------------------------------------
# Instrumentors
# --------------------------------------------------------------------------------------------------


def disabled_instrumentations() -> set[str]:
    """Entry-point names in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (`*`: all)."""
    raw = os.environ.get(_DISABLED_INSTRUMENTATIONS, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def costspan_entry_points() -> Iterator[EntryPoint]:
    """costspan's own instrumentors, whichever are registered."""
    for entry_point in entry_points(group=INSTRUMENTOR_GROUP):
        if entry_point.value.startswith("costspan."):
            yield entry_point


def _threading_entry_point() -> EntryPoint | None:
    for entry_point in entry_points(group=INSTRUMENTOR_GROUP, name=THREADING_ENTRY_POINT):
        if entry_point.value.startswith("opentelemetry.instrumentation.threading"):
            return entry_point
    return None


def _load_instrumentor(entry_point: EntryPoint) -> Any | None:
    try:
        return entry_point.load()()
    except ImportError as exc:
        logger.debug("costspan: instrumentor %s not loaded: %s", entry_point.name, exc)
        return None


def instrument_installed(
    tracer_provider: TracerProvider | None,
    meter_provider: Any,
    cost_dimensions: tuple[str, ...] | None,
    *,
    dimensions_given: bool = False,
) -> tuple[str, ...]:
    """Instrument costspan's instrumentors whose SDK is installed, and thread context propagation.

    Returns the entry-point names now instrumented (by this call or before it). One instrumented
    already keeps its settings (`dimensions_given`: say so)."""
    disabled = disabled_instrumentations()
    if "*" in disabled:
        return ()
    done: list[str] = []
    for entry_point in costspan_entry_points():
        if entry_point.name in disabled:
            continue
        instrumentor = _load_instrumentor(entry_point)
        if instrumentor is None:
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            applied = _applied_dimensions.get(entry_point.name, DEFAULT_COST_DIMENSIONS)
            if dimensions_given and cost_dimensions != applied:
                logger.warning(
                    "costspan: %s was already instrumented (by opentelemetry-instrument or an earlier "
                    "configure()): cost_dimensions= is not applied to it; set COSTSPAN_COST_DIMENSIONS",
                    entry_point.name,
                )
        else:
            if get_dependency_conflicts(instrumentor.instrumentation_dependencies()) is not None:
                continue  # its SDK is not installed (or not a supported version)
            kwargs: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
            if cost_dimensions is not None:
                kwargs["cost_dimensions"] = cost_dimensions
            instrumentor.instrument(skip_dep_check=True, **kwargs)
            record_dimensions(entry_point.name, cost_dimensions)
        done.append(entry_point.name)
    if THREADING_ENTRY_POINT not in disabled and (entry_point := _threading_entry_point()) is not None:
        instrumentor = _load_instrumentor(entry_point)
        if instrumentor is not None:
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            done.append(entry_point.name)
    return tuple(done)


def record_dimensions(entry_point_name: str, cost_dimensions: tuple[str, ...] | None) -> None:
    _applied_dimensions[entry_point_name] = (
        cost_dimensions if cost_dimensions is not None else DEFAULT_COST_DIMENSIONS
    )


def each_instrumented_costspan_instrumentor() -> Iterator[tuple[str, Any]]:
    for entry_point in costspan_entry_points():
        instrumentor = _load_instrumentor(entry_point)
        if instrumentor is not None and instrumentor.is_instrumented_by_opentelemetry:
            yield entry_point.name, instrumentor


# --------------------------------------------------------------------------------------------------
# configure()
# --------------------------------------------------------------------------------------------------


def _rate_card_from(value: RateCard | str | os.PathLike[str] | None) -> RateCard | None:
    if value is None or isinstance(value, RateCard):
        return value
    return RateCard.default().with_overrides(value)


def configure(
    *,
    rate_card: RateCard | str | os.PathLike[str] | None = None,
    console_tree: bool | None = None,
    cost_dimensions: Sequence[str] | str | None = None,
    cost_attributes: Sequence[str] | str | None = None,
    metric_dimension_limit: int | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: Any = None,
    instrument: bool = True,
    summary: bool | None = None,
) -> CostspanSetup:
    """Put costspan on the OpenTelemetry providers; safe to call more than once.

    - TracerProvider: `tracer_provider`, else the global SDK one, else one (and a MeterProvider)
      built from the OTEL_* variables like opentelemetry-distro does, set as the globals.
    - Adds one CostSpanProcessor (priced with `rate_card`: a RateCard, or a path to an override
      file layered on the bundled prices; default COSTSPAN_PRICES, else the bundled card).
    - `console_tree=True` (default COSTSPAN_CONSOLE) prints each trace's cost tree to stdout.
    - `cost_attributes` (default COSTSPAN_COST_ATTRIBUTES, else none): optional cost attributes
      priced call spans also carry, e.g. `("parts",)` for the input/output/cache cost parts.
    - `instrument=True` instruments the provider SDKs that are installed, with `cost_dimensions`
      (default COSTSPAN_COST_DIMENSIONS, else the instrumentors' default), and turns on
      OpenTelemetry context propagation into threads. OTEL_PYTHON_DISABLED_INSTRUMENTATIONS is
      honoured.
    - `metric_dimension_limit` (default COSTSPAN_METRIC_DIMENSION_LIMIT, else 1,000): distinct
      values per dimension of the `costspan.cost` metric; later new values are recorded as
      `_overflow` (sums stay exact) and the first overflow is logged.
    - Records each `costspan.task` run (`costspan.task.cost`, `costspan.task.retry_cost`) on the
      MeterProvider with the same dimensions; `summary=True` (default COSTSPAN_SUMMARY) prints
      one table per task type to standard error at exit (`costspan.setup.summary`).

    Explicit arguments win over COSTSPAN_* variables. With COSTSPAN_DISABLED=true costspan adds
    nothing (providers are still built when none exist). A bad explicit argument raises (a bad
    override file raises `RateCardError` naming the file, entry and field); a bad COSTSPAN_* value is
    logged once and its default applies.
    """
    env = costspan_settings.read_settings()
    costspan_settings.report(env)
    card = _rate_card_from(rate_card) if rate_card is not None else env.rate_card
    dimensions = (
        costspan_settings.parse_cost_dimensions(
            cost_dimensions if isinstance(cost_dimensions, str) else ",".join(cost_dimensions)
        )
        if cost_dimensions is not None
        else env.cost_dimensions
    )
    show_tree = console_tree if console_tree is not None else bool(env.console_tree)
    extra_cost_attributes = (
        parse_cost_attributes(cost_attributes) if cost_attributes is not None else env.cost_attributes
    )
    dimension_limit = (
        checked_dimension_value_limit(metric_dimension_limit)
        if metric_dimension_limit is not None
        else env.metric_dimension_limit
    )

    with _lock:
        if tracer_provider is None:
            tracer_provider = sdk_tracer_provider()
            if tracer_provider is None and providers_unset():
                tracer_provider = configure_sdk_from_env()
        if tracer_provider is None:
            logger.warning(
                "costspan: the global TracerProvider (%s) is not the OpenTelemetry SDK's; pass "
                "tracer_provider= to costspan.configure()",
                type(trace.get_tracer_provider()).__name__,
            )
        if meter_provider is None:
            meter_provider = metrics.get_meter_provider()
        if env.disabled:
            return CostspanSetup(tracer_provider, meter_provider, None, disabled=True)
        processor = (
            install_processor(tracer_provider, card, card_given=rate_card is not None)
            if tracer_provider is not None
            else None
        )
        install_baggage_guard(env.baggage_policy)
        install_cost_across_services(env.cost_peer_policy)
        if extra_cost_attributes is not None:
            apply_cost_attributes(extra_cost_attributes)
        record_tools_on(meter_provider, dimensions if dimensions is not None else DEFAULT_COST_DIMENSIONS)
        if dimension_limit is not None:
            set_dimension_value_limit(dimension_limit)
        record_task_runs_on(meter_provider, dimensions if dimensions is not None else DEFAULT_COST_DIMENSIONS)
        if summary if summary is not None else env.summary:
            install_summary()
        from costspan.setup.fault_metrics import observe_setup  # here: it imports the instrumentation

        observe_setup(meter_provider, processor)
        if env.budgets is not None:
            install_budgets(env.budgets)
        if show_tree and tracer_provider is not None:
            install_console_tree(tracer_provider)
        instrumented = (
            instrument_installed(
                tracer_provider, meter_provider, dimensions, dimensions_given=cost_dimensions is not None
            )
            if instrument
            else ()
        )
        return CostspanSetup(tracer_provider, meter_provider, processor, instrumented)


__all__ = ["CostspanSetup", "configure"]
