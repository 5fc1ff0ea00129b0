"""Swallowed faults and dropped inbound attribution, as metrics an operator can alert on.

`costspan.faults` (`{fault}`, monotonic): exceptions costspan caught so that they never reached the
application, by `costspan.fault.component` (`processor`, `instrumentation`, `baggage`) and
`costspan.fault.where` (the hook or step: `span end`, `on_start`, `LLM call span end`, ...).
`costspan.baggage.inbound` (`{request}`, monotonic): requests whose `costspan.*` baggage the guard
`kept` or `dropped` (`costspan.baggage.outcome`).
`costspan.remote_cost.responses` (`{response}`, monotonic): responses that carried a returned cost
(`costspan-cost`), by `costspan.remote.status` (`accepted`, `untrusted`, `bad_signature`, `malformed`).

Both are observed from the counters costspan keeps anyway, so recording a fault costs nothing more.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics, propagate
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from costspan.attribution.baggage_trust import FAULTS as BAGGAGE_FAULTS
from costspan.attribution.baggage_trust import AttributionBaggageGuard
from costspan.instrumentation._call import FAULTS as INSTRUMENTATION_FAULTS
from costspan.rollup.remote_cost import FAULTS as REMOTE_COST_FAULTS
from costspan.rollup.remote_cost import returned_costs
from costspan.telemetry.faults import FaultCounter

FAULTS_METRIC = "costspan.faults"
INBOUND_BAGGAGE_METRIC = "costspan.baggage.inbound"
RETURNED_COST_METRIC = "costspan.remote_cost.responses"

CountSource = Callable[[], Mapping[str, int]]
SETUP_FAULTS = FaultCounter()


class FaultMetrics:
    """Observes fault counts from the instrumentors, the baggage guard and any processors given."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        processors: Iterable[Any] = (),
        guard: AttributionBaggageGuard | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._processors: weakref.WeakSet[Any] = weakref.WeakSet(processors)
        self._guard = weakref.ref(guard) if guard is not None else None
        meter = metrics.get_meter("costspan", meter_provider=meter_provider)
        meter.create_observable_counter(
            FAULTS_METRIC,
            callbacks=[self._observe_faults],
            unit="{fault}",
            description="Exceptions costspan caught so that they never reached the application",
        )
        meter.create_observable_counter(
            INBOUND_BAGGAGE_METRIC,
            callbacks=[self._observe_inbound],
            unit="{request}",
            description="Requests whose costspan.* baggage was kept or dropped by the trust policy",
        )
        meter.create_observable_counter(
            RETURNED_COST_METRIC,
            callbacks=[self._observe_returned_costs],
            unit="{response}",
            description="Responses carrying a returned cost (costspan-cost), by what was done with it",
        )

    def add_processor(self, processor: Any) -> None:
        """Also observe this CostSpanProcessor's `faults()`."""
        with self._lock:
            self._processors.add(processor)

    def set_guard(self, guard: AttributionBaggageGuard) -> None:
        """Observe this guard's kept/dropped counts (instead of any earlier one)."""
        with self._lock:
            self._guard = weakref.ref(guard)

    def _sources(self) -> list[tuple[str, CountSource]]:
        with self._lock:
            processors = list(self._processors)
        sources: list[tuple[str, CountSource]] = [
            ("instrumentation", INSTRUMENTATION_FAULTS.counts),
            ("baggage", BAGGAGE_FAULTS.counts),
            ("setup", SETUP_FAULTS.counts),
            ("remote_cost", REMOTE_COST_FAULTS.counts),
        ]
        sources += [("processor", processor.faults) for processor in processors]
        return sources

    def _observe_faults(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[str, str], int] = {}
        for component, counts in self._sources():
            for where, count in counts().items():
                key = (component, where)
                totals[key] = totals.get(key, 0) + count
        return [
            Observation(count, {"costspan.fault.component": component, "costspan.fault.where": where})
            for (component, where), count in totals.items()
        ]

    def _observe_inbound(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            guard = self._guard() if self._guard is not None else None
        if guard is None:
            return []
        return [
            Observation(count, {"costspan.baggage.outcome": outcome})
            for outcome, count in guard.inbound().items()
        ]

    def _observe_returned_costs(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"costspan.remote.status": status})
            for status, count in returned_costs().items()
        ]


_by_meter_provider: weakref.WeakKeyDictionary[Any, FaultMetrics] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def observe_faults(
    meter_provider: MeterProvider,
    processor: Any | None = None,
    guard: AttributionBaggageGuard | None = None,
) -> FaultMetrics:
    """The one `FaultMetrics` of this meter provider (made on first use), now also observing
    `processor` and `guard`. Safe to call on every setup: instruments are never registered twice."""
    with _registry_lock:
        found = _by_meter_provider.get(meter_provider)
        if found is None:
            found = FaultMetrics(meter_provider)
            _by_meter_provider[meter_provider] = found
    if processor is not None:
        found.add_processor(processor)
    if guard is not None:
        found.set_guard(guard)
    return found


def observe_setup(meter_provider: MeterProvider, processor: Any | None) -> None:
    """Observe a setup's processor and the global baggage guard (if any) on `meter_provider`.

    For configure() and the zero-code hook; never raises (a failure is logged once and counted).
    """
    try:
        textmap = propagate.get_global_textmap()
        guard = textmap if isinstance(textmap, AttributionBaggageGuard) else None
        observe_faults(meter_provider, processor, guard)
    except Exception as exc:
        SETUP_FAULTS.record("fault metrics setup", exc)


__all__ = [
    "FAULTS_METRIC",
    "INBOUND_BAGGAGE_METRIC",
    "RETURNED_COST_METRIC",
    "FaultMetrics",
    "observe_faults",
    "observe_setup",
]
