"""ConsoleCostTreeExporter: contract attributes set by hand, exact printed text."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from costspan import attributes as attrs
from costspan.exporters import ConsoleCostTreeExporter, format_tree
from costspan.exporters.console import format_line, format_root_line


class Harness:
    def __init__(self, max_buffered_spans: int = 10_000) -> None:
        self.out = io.StringIO()
        self.exporter = ConsoleCostTreeExporter(self.out, max_buffered_spans=max_buffered_spans)
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")
        self._clock = itertools.count(1_000_000_000, 1_000)

    def start(
        self,
        name: str,
        parent: trace.Span | None = None,
        attributes: dict[str, Any] | None = None,
        *,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> trace.Span:
        if context is None:
            context = (
                trace.set_span_in_context(parent)
                if parent is not None
                else trace.set_span_in_context(trace.INVALID_SPAN)
            )
        return self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=next(self._clock)
        )

    def end(self, span: trace.Span, attributes: dict[str, Any] | None = None) -> None:
        if attributes:
            span.set_attributes(attributes)
        span.end(end_time=next(self._clock))

    def text(self) -> str:
        return self.out.getvalue()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.provider.shutdown()


def chat(model: str, **usage: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: "openai",
        attrs.GEN_AI_REQUEST_MODEL: model,
    }
    attributes.update(usage)
    return attributes


def rollup(cost: float, calls: int, **extra: Any) -> dict[str, Any]:
    return {attrs.ROLLUP_COST_USD: cost, attrs.ROLLUP_LLM_CALLS: calls, **extra}


def test_nested_tree_with_box_characters_and_cached_tokens(h: Harness) -> None:
    root = h.start(
        "lead-enrichment",
        attributes={
            attrs.TASK: "lead-enrichment",
            attrs.CUSTOMER_ID: "cus_8821",
            attrs.FEATURE: "lead-gen",
            attrs.TASK_ID: "4f1c",
        },
    )
    research = h.start("invoke_agent company-research", root, {attrs.GEN_AI_OPERATION_NAME: "invoke_agent"})
    call = h.start("chat gpt-4o", research, chat("gpt-4o"), kind=SpanKind.CLIENT)
    h.end(
        call,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 2480,
            attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 514,
            attrs.GEN_AI_USAGE_COST: 0.01006,
        },
    )
    tool = h.start(
        "execute_tool clearbit.enrich",
        research,
        {attrs.GEN_AI_OPERATION_NAME: "execute_tool", attrs.GEN_AI_USAGE_COST: 0.1},
    )
    h.end(tool)
    h.end(research, rollup(0.11006, 1))
    summariser = h.start("invoke_agent summariser", root, {attrs.GEN_AI_OPERATION_NAME: "invoke_agent"})
    step = h.start("draft", summariser)
    claude = h.start("chat claude-sonnet-4-6", step, chat("claude-sonnet-4-6"))
    h.end(
        claude,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 6000,
            attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4000,
            attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 1500,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1900,
            attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1000,
            attrs.GEN_AI_USAGE_COST: 0.036825,
        },
    )
    h.end(step, rollup(0.036825, 1))
    no_cost = h.start("format", summariser)
    h.end(no_cost)
    h.end(summariser, rollup(0.036825, 1))
    assert h.text() == ""  # nothing until the root ends
    h.end(root, rollup(0.146885, 2))
    assert h.text() == (
        "lead-enrichment  $0.1469 total  2 calls  customer=cus_8821 feature=lead-gen task_id=4f1c\n"
        "├─ invoke_agent company-research  $0.1101\n"
        "│  ├─ chat gpt-4o  $0.0101  2,480 in (1,024 cached) / 514 out\n"
        "│  └─ execute_tool clearbit.enrich  $0.1000\n"
        "└─ invoke_agent summariser  $0.0368\n"
        "   ├─ draft  $0.0368\n"
        "   │  └─ chat claude-sonnet-4-6  $0.0368  6,000 in (4,000 cached, 1,500 cache write)"
        " / 1,900 out (1,000 reasoning)\n"
        "   └─ format\n"
    )
    assert h.exporter.buffered_spans == 0


def test_children_sorted_by_start_time_not_end_time(h: Harness) -> None:
    root = h.start("root")
    first = h.start("first", root)
    second = h.start("second", root)
    h.end(second)
    h.end(first)
    h.end(root)
    assert h.text() == "root  $0.0000 total  0 calls\n├─ first\n└─ second\n"


def test_unknown_model_and_failed_call_and_counts(h: Harness) -> None:
    root = h.start("task", attributes={attrs.AGENT: "triage", attrs.STEP: "route"})
    unknown = h.start("chat my-finetune", root, chat("my-finetune"))
    h.end(
        unknown,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1200,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 80,
            attrs.COST_STATUS: attrs.STATUS_UNKNOWN_MODEL,
        },
    )
    failed = h.start("chat gpt-4o-mini", root, chat("gpt-4o-mini"))
    failed.set_status(Status(StatusCode.ERROR, "boom"))
    h.end(failed, {attrs.ERROR_TYPE: "RateLimitError", attrs.COST_STATUS: attrs.STATUS_NO_USAGE})
    failed_with_usage = h.start("chat gpt-4o", root, chat("gpt-4o"))
    failed_with_usage.set_status(Status(StatusCode.ERROR, "stream cut"))
    h.end(
        failed_with_usage,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 100,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
            attrs.GEN_AI_USAGE_COST: 0.00032,
        },
    )
    h.end(
        root,
        rollup(0.00032, 3, **{attrs.ROLLUP_FAILED_CALLS: 2, attrs.ROLLUP_UNPRICED_CALLS: 1}),
    )
    assert h.text() == (
        "task  $0.00032 total  3 calls  2 failed  1 unpriced  agent=triage step=route\n"
        "├─ chat my-finetune  unpriced (unknown model)  1,200 in / 80 out\n"
        "├─ chat gpt-4o-mini  FAILED RateLimitError\n"
        "└─ chat gpt-4o  FAILED stream cut  $0.00032  100 in / 7 out\n"
    )


def test_late_child_prints_as_a_continuation(h: Harness) -> None:
    root = h.start("task")
    background = h.start("invoke_agent background", root)
    h.end(root)
    call = h.start("chat gpt-4o", background, chat("gpt-4o"))
    h.end(
        call,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
            attrs.GEN_AI_USAGE_COST: 0.5,
        },
    )
    h.end(background, rollup(0.5, 1, **{attrs.ROLLUP_LATE: True}))
    assert h.text() == (
        "task  $0.0000 total  0 calls\n"
        "task (continued)\n"
        "└─ invoke_agent background  $0.5000 (late)\n"
        "   └─ chat gpt-4o  $0.5000  10 in / 1 out\n"
    )
    assert h.exporter.buffered_spans == 0


def test_late_child_whose_parent_is_unknown_prints_with_the_parent_id(h: Harness) -> None:
    parent = NonRecordingSpan(SpanContext(0xABC, 0x1234, is_remote=False, trace_flags=TraceFlags(1)))
    late = h.start("chat gpt-4o", context=trace.set_span_in_context(parent), attributes=chat("gpt-4o"))
    h.end(late, {attrs.GEN_AI_USAGE_COST: 0.25, **rollup(0.25, 1, **{attrs.ROLLUP_LATE: True})})
    assert h.text() == "span 0000000000001234 (continued)\n└─ chat gpt-4o  $0.2500 (late)\n"


def test_two_interleaved_traces(h: Harness) -> None:
    a = h.start("task-a", attributes={attrs.CUSTOMER_ID: "a"})
    b = h.start("task-b", attributes={attrs.CUSTOMER_ID: "b"})
    a_call = h.start("chat gpt-4o", a, chat("gpt-4o"))
    b_call = h.start("chat gpt-4o-mini", b, chat("gpt-4o-mini"))
    h.end(a_call, {attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 100})
    h.end(b_call, {attrs.GEN_AI_USAGE_INPUT_TOKENS: 2000, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200})
    h.end(b, rollup(0.00042, 1))
    assert h.text() == (
        "task-b  $0.00042 total  1 call  customer=b\n└─ chat gpt-4o-mini  2,000 in / 200 out\n"
    )
    h.end(a, rollup(0.0035, 1))
    assert h.text().endswith(
        "task-a  $0.0035 total  1 call  customer=a\n└─ chat gpt-4o  1,000 in / 100 out\n"
    )
    assert h.exporter.buffered_spans == 0


def test_local_root_with_a_remote_parent(h: Harness) -> None:
    remote = NonRecordingSpan(SpanContext(0xFEED, 0xBEEF, is_remote=True, trace_flags=TraceFlags(1)))
    root = h.start("handle-request", context=trace.set_span_in_context(remote))
    child = h.start("chat gpt-4o", root, chat("gpt-4o"))
    h.end(child, {attrs.GEN_AI_USAGE_INPUT_TOKENS: 5, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 5})
    h.end(root, rollup(0.0001, 1))
    assert h.text() == "handle-request  $0.0001 total  1 call\n└─ chat gpt-4o  5 in / 5 out\n"


def test_root_that_is_itself_a_call(h: Harness) -> None:
    call = h.start("chat gpt-4o", attributes=chat("gpt-4o", **{attrs.CUSTOMER_ID: "c1"}))
    h.end(
        call,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
            attrs.GEN_AI_USAGE_COST: 0.00260,
            **rollup(0.0026, 1, **{attrs.ROLLUP_INPUT_TOKENS: 1000, attrs.ROLLUP_OUTPUT_TOKENS: 10}),
        },
    )
    assert h.text() == "chat gpt-4o  $0.0026 total  1 call  1,000 in / 10 out  customer=c1\n"


def test_a_lone_calls_tokens_are_read_as_the_processor_reads_them(h: Harness) -> None:
    # A call with nothing under it carries no rollup: its tokens come from its own attributes,
    # normalised across instrumentations (here OpenInference's llm.token_count.*).
    root = h.start("task")
    call = h.start("chat claude", root, chat("claude"))
    h.end(
        call,
        {
            "llm.token_count.prompt": 1000,
            "llm.token_count.prompt_details.cache_read": 900,
            "llm.token_count.completion": 10,
        },
    )
    h.end(root, rollup(0.001, 1))
    assert h.text().splitlines()[1] == "└─ chat claude  1,000 in (900 cached) / 10 out"


def test_buffer_cap_drops_oldest_traces() -> None:
    h = Harness(max_buffered_spans=5)
    orphans = []
    for i in range(3):  # three traces of two buffered spans each, roots never end
        root = h.start(f"root-{i}")
        orphans.append(root)
        for j in range(2):
            h.end(h.start(f"child-{i}-{j}", root))
    # 6 spans > 5: the oldest trace (2 spans) was dropped.
    assert h.exporter.dropped_spans == 2
    assert h.exporter.dropped_traces == 1
    assert h.exporter.buffered_spans == 4
    h.end(orphans[0])  # its children are gone: the root prints alone
    h.end(orphans[2])
    assert h.text() == (
        "root-0  $0.0000 total  0 calls\nroot-2  $0.0000 total  0 calls\n├─ child-2-0\n└─ child-2-1\n"
    )
    assert h.exporter.buffered_spans == 2
    h.provider.shutdown()


def test_shutdown_prints_nothing_and_clears(h: Harness) -> None:
    root = h.start("root")
    h.end(h.start("child", root))
    assert h.exporter.buffered_spans == 1
    assert h.exporter.force_flush() is True
    h.exporter.shutdown()
    assert h.exporter.buffered_spans == 0
    h.end(root)
    assert h.text() == ""


def test_export_after_shutdown_fails(h: Harness) -> None:
    h.exporter.shutdown()
    assert h.exporter.export([]) is SpanExportResult.FAILURE


def test_default_output_is_stdout_looked_up_at_write_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = ConsoleCostTreeExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    replacement = io.StringIO()
    monkeypatch.setattr("sys.stdout", replacement)
    provider.get_tracer("t").start_span("solo").end()
    provider.shutdown()
    assert replacement.getvalue() == "solo  $0.0000 total  0 calls\n"


def test_thread_safety_many_traces_in_parallel() -> None:
    h = Harness()
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(50):
            root = h.tracer.start_span(f"t{n}-{i}", context=trace.set_span_in_context(trace.INVALID_SPAN))
            for _ in range(3):
                h.tracer.start_span("c", context=trace.set_span_in_context(root)).end()
            root.end()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = h.text().splitlines()
    assert len(lines) == 8 * 50 * 4
    assert sum(line.endswith("0 calls") for line in lines) == 400
    assert h.exporter.buffered_spans == 0
    h.provider.shutdown()


def test_format_functions_are_pure(h: Harness) -> None:
    spans: list[ReadableSpan] = []

    class Capture(ConsoleCostTreeExporter):
        def export(self, batch: Any) -> SpanExportResult:
            spans.extend(batch)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Capture()))
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root", start_time=1)
    child = tracer.start_span("agent", context=trace.set_span_in_context(root), start_time=2)
    child.set_attribute(attrs.ROLLUP_COST_USD, 1.23456)
    child.end()
    root.set_attributes(rollup(1.23456, 4, **{attrs.ROLLUP_UNPRICED_CALLS: 1}))
    root.end()
    by_name = {span.name: span for span in spans}
    assert format_line(by_name["agent"]) == "agent  $1.2346"
    assert format_root_line(by_name["root"]) == "root  $1.2346 total  4 calls  1 unpriced"
    assert format_tree(by_name["root"], {by_name["root"].context.span_id: [by_name["agent"]]}) == (
        "root  $1.2346 total  4 calls  1 unpriced\n└─ agent  $1.2346"
    )
    provider.shutdown()


def sonnet_4_5(input_tokens: int, output_tokens: int, cost: float) -> dict[str, Any]:
    return {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
        attrs.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-5-20250929",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        attrs.GEN_AI_USAGE_COST: cost,
    }


def test_costs_below_a_cent_keep_their_significant_digits_and_a_tier_price_is_marked(h: Harness) -> None:
    """A call that cost something never reads $0.0000; a call priced above the model's base tier
    says which tier (claude-sonnet-4-5: $3 / $15 per million tokens, $6 / $22.50 above 200k input)."""
    root = h.start("task")
    tiny = h.start("chat gpt-4o-mini", root, chat("gpt-4o-mini"))
    h.end(
        tiny,
        {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 40,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
            attrs.GEN_AI_USAGE_COST: 1.8e-05,
        },
    )
    base = h.start("chat claude-sonnet-4-5", root)
    h.end(base, sonnet_4_5(200_000, 400, 0.606))  # 200,000 is not above the tier start
    above = h.start("chat claude-sonnet-4-5", root)
    h.end(above, sonnet_4_5(250_000, 400, 1.509))
    h.end(root, rollup(2.115018, 3))
    assert h.text() == (
        "task  $2.1150 total  3 calls\n"
        "├─ chat gpt-4o-mini  $0.000018  40 in / 20 out\n"
        "├─ chat claude-sonnet-4-5  $0.6060  200,000 in / 400 out\n"
        "└─ chat claude-sonnet-4-5  $1.5090  250,000 in / 400 out  [price tier: over 200,000 input tokens]\n"
    )


@pytest.mark.parametrize(
    ("usd", "printed"),
    [
        (0.0, "$0.0000"),
        (1.8e-05, "$0.000018"),
        (0.00036, "$0.00036"),
        (0.000325, "$0.000325"),
        (0.0001234567, "$0.0001235"),
        (0.009, "$0.0090"),
        (0.0035, "$0.0035"),
        (0.1207, "$0.1207"),
        (12.5, "$12.5000"),
    ],
)
def test_money_format(usd: float, printed: str) -> None:
    from costspan.exporters.console import money

    assert money(usd) == printed
