"""Whether a tracer's sampler reads the attributes a span is started with.

Attributes given to `Tracer.start_span` exist for the sampler; the SDK validates each one on the
way in (about 7k instructions apiece). The SDK's own samplers decide on the trace id and the parent
alone, so under them a call's request attributes can be written straight into the started span
(see `costspan.instrumentation._call`). Any other sampler, a subclass of these included, may read
them and gets them at start as usual.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import sampling

# Exact types: a subclass may override `should_sample`. The private ones are what the
# OTEL_TRACES_SAMPLER names build; they only set the decision in `__init__`.
_LEAVES = tuple(
    kind
    for kind in (
        sampling.StaticSampler,
        sampling.TraceIdRatioBased,
        getattr(sampling, "_AlwaysOn", None),
        getattr(sampling, "_AlwaysOff", None),
    )
    if kind is not None
)
_PARENT_BASED = tuple(
    kind
    for kind in (
        sampling.ParentBased,
        sampling.ParentBasedTraceIdRatio,
        getattr(sampling, "_ParentBasedAlwaysOn", None),
        getattr(sampling, "_ParentBasedAlwaysOff", None),
        getattr(sampling, "_ParentBasedTraceIdRatio", None),
    )
    if kind is not None
)
_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def sampler_of(tracer: Any) -> object:
    """The SDK sampler behind a tracer (a global-provider proxy resolved), or None if unknown."""
    sampler = getattr(tracer, "sampler", None)
    if sampler is None:
        sampler = getattr(getattr(tracer, "_real_tracer", None), "sampler", None)
    return sampler


def ignores_attributes(sampler: object) -> bool:
    """True only for the SDK's built-in samplers, and ParentBased over them."""
    kind = type(sampler)
    if kind in _LEAVES:
        return True
    if kind in _PARENT_BASED:
        delegates = [getattr(sampler, name, None) for name in _DELEGATES]
        return all(type(d) in _LEAVES for d in delegates)
    return False
