"""Zero-code wiring: `opentelemetry-instrument python app.py` runs these two entry points.

opentelemetry-instrument (its sitecustomize) runs, in order: the distro, the configurator (which
builds the global providers: opentelemetry-distro's reads the OTEL_* variables), the
`opentelemetry_pre_instrument` hooks, every `opentelemetry_instrumentor`, then the
`opentelemetry_post_instrument` hooks.

- `pre_instrument` runs after the providers exist and before any instrumentor takes a tracer or
  meter: it reads COSTSPAN_*, makes the COSTSPAN_PRICES card the shared one (so instrumentors price
  with it), and adds the CostSpanProcessor (and, asked for, the console tree) to the SDK
  TracerProvider. When no configurator ran (opentelemetry-distro not installed) the providers do
  not exist yet: costspan builds them from the OTEL_* variables as the distro would. Choosing a
  hook rather than registering a configurator or a distro of its own leaves whatever distro or
  configurator the user installed in charge.
- `post_instrument` undoes costspan's instrumentors when COSTSPAN_DISABLED is set, and applies
  COSTSPAN_COST_DIMENSIONS (opentelemetry-instrument instruments without arguments).

Neither hook raises: an exception here would stop opentelemetry-instrument loading the rest.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics

from costspan.budget.config import install_budgets
from costspan.rollup.call_pricing import apply_cost_attributes
from costspan.setup import settings as costspan_settings
from costspan.setup.configure import (
    configure_sdk_from_env,
    each_instrumented_costspan_instrumentor,
    install_baggage_guard,
    install_console_tree,
    install_cost_across_services,
    install_processor,
    providers_unset,
    record_dimensions,
    sdk_tracer_provider,
)
from costspan.setup.summary import install_summary
from costspan.telemetry.metrics import record_tools_on, set_dimension_value_limit
from costspan.telemetry.task_metrics import record_task_runs_on

logger = logging.getLogger("costspan")

_settings: costspan_settings.Settings | None = None


def _auto_instrumentation_version() -> str | None:
    try:
        from opentelemetry.instrumentation.version import __version__

        return str(__version__)
    except ImportError:
        return None


def pre_instrument() -> None:
    global _settings
    try:
        settings = costspan_settings.read_settings()
        _settings = settings
        costspan_settings.report(settings)
        provider = sdk_tracer_provider()
        if provider is None and providers_unset():
            provider = configure_sdk_from_env(_auto_instrumentation_version())
        if settings.disabled:
            logger.info("costspan: disabled by %s", costspan_settings.DISABLED)
            return
        install_baggage_guard(settings.baggage_policy)
        install_cost_across_services(settings.cost_peer_policy)
        if settings.cost_attributes is not None:
            apply_cost_attributes(settings.cost_attributes)
        if settings.cost_dimensions is not None:
            record_tools_on(None, settings.cost_dimensions)
            record_task_runs_on(None, settings.cost_dimensions)
        if settings.summary:
            install_summary()
        if settings.metric_dimension_limit is not None:
            set_dimension_value_limit(settings.metric_dimension_limit)
        if settings.budgets is not None:
            install_budgets(settings.budgets)
        if provider is None:
            logger.warning(
                "costspan: the global TracerProvider is not the OpenTelemetry SDK's; no cost processor"
            )
            return
        processor = install_processor(provider, settings.rate_card)
        from costspan.setup.fault_metrics import observe_setup  # here: it imports the instrumentation

        observe_setup(metrics.get_meter_provider(), processor)
        if settings.console_tree:
            install_console_tree(provider)
    except Exception:
        logger.exception("costspan: zero-code setup failed; the application runs without costspan")


def post_instrument() -> None:
    try:
        settings = _settings if _settings is not None else costspan_settings.read_settings()
        if settings.disabled:
            for name, instrumentor in each_instrumented_costspan_instrumentor():
                instrumentor.uninstrument()
                logger.debug("costspan: %s uninstrumented (%s)", name, costspan_settings.DISABLED)
        elif settings.cost_dimensions is not None:
            for name, instrumentor in each_instrumented_costspan_instrumentor():
                instrumentor.uninstrument()
                instrumentor.instrument(skip_dep_check=True, cost_dimensions=settings.cost_dimensions)
                record_dimensions(name, settings.cost_dimensions)
    except Exception:
        logger.exception("costspan: zero-code setup failed; the application runs without costspan")
