"""Bad attribution input: wrong types, long values, control characters, malformed baggage headers.

Nothing raises into the application's call path, and nothing unbounded or unprintable reaches span
attributes, metric dimensions or the outbound `baggage` header.
"""

from __future__ import annotations

import unicodedata
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import costspan
from conftest import Traced
from costspan import attributes as A
from costspan.attribution.baggage_trust import AttributionBaggageGuard, InboundBaggagePolicy
from costspan.attribution.values import MAX_VALUE_BYTES, clean_attribution, clean_text
from costspan.instrumentation._call import CallSpan, Instrumentation
from llm import llm_call


def bag() -> dict[str, str]:
    return costspan.current_attribution()


def assert_clean(value: object) -> None:
    assert isinstance(value, str) and value
    assert len(value.encode("utf-8")) <= MAX_VALUE_BYTES
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in value)
    value.encode("utf-8")  # no lone surrogate: every exporter can encode it
    assert value == value.strip()


# --- values the application passes -------------------------------------------------------------


def test_ints_and_uuids_are_written_as_str() -> None:
    task_uuid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with costspan.attribute(customer_id=8821, task_id=task_uuid):
        assert bag() == {A.CUSTOMER_ID: "8821", A.TASK_ID: "12345678-1234-5678-1234-567812345678"}


@pytest.mark.parametrize("value", [1.5, True, b"cus_1", {"id": 1}, ["cus_1"], object()])
def test_other_types_fail_at_the_call_naming_the_key(value: object) -> None:
    with pytest.raises(TypeError, match=r"costspan\.customer_id: an attribution value must be a str, int"):
        costspan.attribute(customer_id=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"costspan\.feature: an attribution value"):
        costspan.task("t", feature=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "   ", "\n", 3, None])
def test_scope_names_must_be_non_empty_strings(name: object) -> None:
    for scope in (costspan.agent, costspan.step, costspan.tool):
        with pytest.raises(TypeError, match="name must be a non-empty string"):
            scope(name)  # type: ignore[arg-type]


def test_whitespace_only_value_is_no_value() -> None:
    with costspan.attribute(customer_id="cus_1"), costspan.attribute(customer_id="  ", feature="\t"):
        assert bag() == {A.CUSTOMER_ID: "cus_1"}


def test_surrounding_whitespace_is_removed_as_the_w3c_propagator_does() -> None:
    with costspan.attribute(customer_id="  cus_1 "):
        assert bag() == {A.CUSTOMER_ID: "cus_1"}


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("cus\n1", "cus\\x0a1"),
        ("cus\x001", "cus\\x001"),
        ("cus\x1b[31m1", "cus\\x1b[31m1"),
        ("cus\u202e1", "cus\\u202e1"),  # right-to-left override
        ("cus\u200b1", "cus\\u200b1"),  # zero-width space
        ("cus\ud8001", "cus\\ud8001"),  # lone surrogate: no exporter can encode it
        ("cus\u20281", "cus\\u20281"),  # line separator
        ("Zürich 東京 🚀", "Zürich 東京 🚀"),  # printable non-ASCII is kept
    ],
)
def test_control_and_invisible_characters_are_escaped(raw: str, cleaned: str) -> None:
    with costspan.attribute(customer_id=raw):
        assert bag() == {A.CUSTOMER_ID: cleaned}


def test_long_values_are_cut_to_the_limit_and_stay_distinct() -> None:
    a = "cus_" + "x" * 1000 + "a"
    b = "cus_" + "x" * 1000 + "b"
    ca, cb = clean_text(a), clean_text(b)
    assert ca is not None and cb is not None
    assert len(ca.encode()) == len(cb.encode()) == MAX_VALUE_BYTES
    assert ca != cb
    assert ca.startswith("cus_xxx") and ca[-17] == "~"
    assert clean_text("x" * MAX_VALUE_BYTES) == "x" * MAX_VALUE_BYTES  # at the limit: unchanged
    multibyte = clean_text("é" * 300)  # 600 bytes, cut at a character boundary
    assert multibyte is not None and len(multibyte.encode()) <= MAX_VALUE_BYTES
    assert multibyte.startswith("é" * 100)


def test_names_are_cleaned_on_spans_too(traced: Traced) -> None:
    long_name = "research-" + "r" * 500
    with (
        costspan.agent(long_name, tracer_provider=traced.provider),
        costspan.step("write\nnow", tracer_provider=traced.provider),
    ):
        llm_call(traced.tracer, "gpt-4o-mini", 10, 10, name="llm")
    spans = traced.spans()
    cleaned = clean_text(long_name)
    assert cleaned is not None and len(cleaned.encode()) == MAX_VALUE_BYTES
    assert spans["llm"].attributes[A.AGENT] == cleaned
    assert spans["llm"].attributes[A.STEP] == "write\\x0anow"
    assert spans[f"invoke_agent {cleaned}"].attributes[A.GEN_AI_AGENT_NAME] == cleaned
    assert "write\\x0anow" in spans


def test_cleaned_attribution_survives_an_otlp_encode_and_a_baggage_round_trip(traced: Traced) -> None:
    raw = "cus\ud800\n" + "ü" * 400
    with costspan.attribute(customer_id=raw, feature="a,b;c=d e%"):
        carrier: dict[str, str] = {}
        W3CBaggagePropagator().inject(carrier)
        llm_call(traced.tracer, "gpt-4o-mini", 10, 10, name="llm")
        sent = bag()
    received = costspan.current_attribution(W3CBaggagePropagator().extract(carrier, otel_context.Context()))
    assert received == sent  # the next service sees exactly the same values
    assert encode_spans(traced.exporter.get_finished_spans()).SerializeToString()


# --- values costspan did not choose: baggage set by hand, or arriving in a header ----------------


@given(
    st.dictionaries(
        st.sampled_from([*A.ATTRIBUTION_KEYS, "costspan.other", "other"]),
        st.one_of(st.text(), st.integers(), st.floats(), st.binary(), st.none(), st.lists(st.text())),
    )
)
@settings(max_examples=300, deadline=None)
def test_clean_attribution_never_raises_and_returns_only_clean_attribution(
    entries: dict[str, object],
) -> None:
    cleaned = clean_attribution(entries)
    assert set(cleaned) <= set(A.ATTRIBUTION_KEYS)
    for value in cleaned.values():
        assert_clean(value)


_header_parts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "costspan.customer_id=cus_1",
            "costspan.customer_id=%0Acus%00",
            "costspan.customer_id=%ED%A0%80",
            "costspan.customer_id=%E2%80%AE",
            "costspan.customer_id=" + "a" * 5000,
            "costspan.feature=" + "%F0%9F%9A%80" * 200,
            "costspan.step=x;prop=1;other",
            "costspan.agent==",
            "=value",
            "costspan.task_id",
            ";;;",
            "costspan.customer_id=%zz",
            "costspan.customer_id=+++",
            "k\u00e9y=v",
        ]
    ),
)


@given(st.lists(_header_parts, max_size=250).map(",".join))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_malformed_baggage_headers_never_raise_and_yield_only_clean_attribution(header: str) -> None:
    guard = AttributionBaggageGuard(W3CBaggagePropagator(), InboundBaggagePolicy.of("*"))
    ctx = guard.extract({"baggage": header}, otel_context.Context())
    entries = baggage.get_all(ctx)
    for key, value in entries.items():
        if key.startswith("costspan."):
            assert key in A.ATTRIBUTION_KEYS
            assert_clean(value)


def test_too_many_entries_and_oversized_headers_keep_the_first_entries_or_none() -> None:
    guard = AttributionBaggageGuard(W3CBaggagePropagator(), InboundBaggagePolicy.of("*"))
    many = ",".join([f"k{i}=v" for i in range(500)] + ["costspan.customer_id=cus_late"])
    assert costspan.current_attribution(guard.extract({"baggage": many}, otel_context.Context())) == {}
    first = "costspan.customer_id=cus_1," + ",".join(f"k{i}=v" for i in range(500))
    assert costspan.current_attribution(guard.extract({"baggage": first}, otel_context.Context())) == {
        A.CUSTOMER_ID: "cus_1"
    }
    oversized = "costspan.customer_id=cus_1," + "k=" + "v" * 9000
    assert baggage.get_all(guard.extract({"baggage": oversized}, otel_context.Context())) == {}


def test_hand_set_baggage_reaches_spans_cleaned(traced: Traced) -> None:
    """Baggage set with opentelemetry.baggage directly (no attribute()) must not put garbage on spans."""
    ctx = baggage.set_baggage(A.CUSTOMER_ID, "cus\n" + "x" * 5000)
    ctx = baggage.set_baggage(A.FEATURE, 3.5, ctx)  # baggage values may be any object
    token = otel_context.attach(ctx)
    try:
        llm_call(traced.tracer, "gpt-4o-mini", 10, 10, name="llm")
    finally:
        otel_context.detach(token)
    attributes = traced.spans()["llm"].attributes
    assert_clean(attributes[A.CUSTOMER_ID])
    assert A.FEATURE not in attributes


def test_hand_set_baggage_reaches_cost_metrics_cleaned() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentation = Instrumentation("test", meter_provider=meter_provider)
    token = otel_context.attach(baggage.set_baggage(A.CUSTOMER_ID, "cus\n" + "x" * 5000))
    try:
        call = CallSpan(instrumentation, "chat", "openai", "gpt-4o-mini")
        call.set_usage(input_tokens=10, output_tokens=10)
        call.end()
    finally:
        otel_context.detach(token)
    data = reader.get_metrics_data()
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "costspan.cost"
        for point in metric.data.data_points
    ]
    assert len(points) == 1
    assert_clean(points[0].attributes[A.CUSTOMER_ID])
    meter_provider.shutdown()
