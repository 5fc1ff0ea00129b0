"""`python -m costspan.demo`: runs offline and prints the totals worked out by hand below."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan
from costspan import attributes as attrs
from costspan.demo import RATE_CARD_OVERRIDES, run_task

SRC = Path(__file__).resolve().parents[1] / "src"

# Published prices, USD per million tokens: (input, cached input read, cache write, output).
MTOK = Decimal(1_000_000)
GPT_4O = (Decimal("2.50"), Decimal("1.25"), None, Decimal("10"))
GPT_4O_MINI = (Decimal("0.15"), Decimal("0.075"), None, Decimal("0.60"))
CLAUDE_SONNET_4_6 = (Decimal("3"), Decimal("0.30"), Decimal("3.75"), Decimal("15"))


def call_cost(
    prices: tuple[Decimal, Decimal, Decimal | None, Decimal],
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
) -> Decimal:
    """Input tokens include cached ones (GenAI semconv): the rest is billed at the input rate."""
    uncached_rate, read_rate, write_rate, output_rate = prices
    uncached = input_tokens - cache_read - cache_write
    total = uncached * uncached_rate + cache_read * read_rate + output_tokens * output_rate
    if cache_write:
        assert write_rate is not None
        total += cache_write * write_rate
    return total / MTOK


# company-research: gpt-4o 2,480 in (1,024 cached) / 514 out
#   1,456 x $2.50 + 1,024 x $1.25 + 514 x $10 = $3,640 + $1,280 + $5,140 per MTok = $0.010060
COMPANY_CHAT = call_cost(GPT_4O, 2480, 514, cache_read=1024)
CLEARBIT = Decimal("0.10")  # the rate-card override, per call
COMPANY = COMPANY_CHAT + CLEARBIT  # $0.110060
# person-research: plan on gpt-4o-mini 1,800 in / 220 out
#   1,800 x $0.15 + 220 x $0.60 = $270 + $132 per MTok = $0.000402
PLAN = call_cost(GPT_4O_MINI, 1800, 220)
# ... then 3 contacts in parallel, each gpt-4o-mini 3,200 in (2,048 cached) / 450 out
#   1,152 x $0.15 + 2,048 x $0.075 + 450 x $0.60 = $172.8 + $153.6 + $270 per MTok = $0.0005964
CONTACT = call_cost(GPT_4O_MINI, 3200, 450, cache_read=2048)
PERSON = PLAN + 3 * CONTACT  # $0.0021912
# summariser: claude-sonnet-4-6 6,000 in (4,000 cache read, 1,500 cache write) / 900 out
#   500 x $3 + 4,000 x $0.30 + 1,500 x $3.75 + 900 x $15 = $1,500 + $1,200 + $5,625 + $13,500 per MTok
SUMMARY = call_cost(CLAUDE_SONNET_4_6, 6000, 900, cache_read=4000, cache_write=1500)  # $0.021825
TOTAL = COMPANY + PERSON + SUMMARY  # $0.1340762
LLM_CALLS = 1 + 1 + 3 + 1


def test_hand_arithmetic() -> None:
    assert Decimal("0.01006") == COMPANY_CHAT
    assert Decimal("0.000402") == PLAN
    assert Decimal("0.0005964") == CONTACT
    assert Decimal("0.021825") == SUMMARY
    assert Decimal("0.1340762") == TOTAL


def dollars(amount: Decimal) -> str:
    """As the console cost tree prints it: 4 decimals; below a cent, up to 4 significant digits."""
    if amount == 0 or amount >= Decimal("0.01"):
        return f"${amount:.4f}"
    significant = amount.quantize(Decimal(1).scaleb(amount.adjusted() - 3)).normalize()
    return f"${significant:f}" if -significant.as_tuple().exponent > 4 else f"${amount:.4f}"


@pytest.fixture(scope="module")
def demo_output() -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "costspan.demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_total_line(demo_output: str) -> None:
    first = demo_output.splitlines()[0]
    assert dollars(TOTAL) == "$0.1341"
    expected = re.escape(
        f"lead-enrichment  {dollars(TOTAL)} total  {LLM_CALLS} calls  1 tool call  "
        "customer=cus_8821 feature=lead-gen "
    )
    assert re.fullmatch(expected + r"task_id=[0-9a-f]{32}", first), first


def test_every_agent_with_its_cost(demo_output: str) -> None:
    lines = demo_output.splitlines()
    assert f"├─ invoke_agent company-research  {dollars(COMPANY)}" in lines
    assert f"├─ invoke_agent person-research  {dollars(PERSON)}" in lines
    assert f"└─ invoke_agent summariser  {dollars(SUMMARY)}" in lines
    assert dollars(COMPANY) == "$0.1101"
    assert dollars(PERSON) == "$0.002191"
    assert dollars(SUMMARY) == "$0.0218"


def test_calls_tool_and_parallel_contacts(demo_output: str) -> None:
    lines = demo_output.splitlines()
    assert lines[1:4] == [
        f"├─ invoke_agent company-research  {dollars(COMPANY)}",
        f"│  ├─ chat gpt-4o  {dollars(COMPANY_CHAT)}  2,480 in (1,024 cached) / 514 out",
        f"│  └─ execute_tool clearbit.enrich  {dollars(CLEARBIT)}",
    ]
    assert lines[-2:] == [
        f"└─ invoke_agent summariser  {dollars(SUMMARY)}",
        f"   └─ chat claude-sonnet-4-6  {dollars(SUMMARY)}"
        "  6,000 in (4,000 cached, 1,500 cache write) / 900 out",
    ]
    contact_call = f"chat gpt-4o-mini  {dollars(CONTACT)}  3,200 in (2,048 cached) / 450 out"
    # The three workers start in any order; each ran under its step, inside person-research.
    assert sum(line.endswith(contact_call) for line in lines) == 3
    for contact in ("ceo@acme.example", "cto@acme.example", "vp-sales@acme.example"):
        assert any(line.endswith(f"─ enrich {contact}  {dollars(CONTACT)}") for line in lines), contact
    assert len(lines) == 15


def test_exact_rollup_values_in_process() -> None:
    """The same task on an in-memory exporter: rolled-up USD exact to float precision."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    rate_card = costspan.RateCard.default().with_overrides(RATE_CARD_OVERRIDES)
    provider.add_span_processor(costspan.CostSpanProcessor(rate_card=rate_card))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_task(provider)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    by_name = {span.name: span for span in spans}
    expected = {
        "lead-enrichment": TOTAL,
        "invoke_agent company-research": COMPANY,
        "invoke_agent person-research": PERSON,
        "invoke_agent summariser": SUMMARY,
    }
    for name, amount in expected.items():
        got = (by_name[name].attributes or {})[attrs.ROLLUP_COST_USD]
        assert got == pytest.approx(float(amount), rel=1e-12, abs=0), name
    root = by_name["lead-enrichment"].attributes or {}
    assert root[attrs.ROLLUP_LLM_CALLS] == LLM_CALLS
    assert attrs.ROLLUP_UNPRICED_CALLS not in root
    # Baggage crossed into the worker threads: the contact calls carry the task's attribution.
    contact_calls = [
        span
        for span in spans
        if span.name == "chat gpt-4o-mini" and span.parent is not None
        if by_name_of(spans, span.parent.span_id).startswith("enrich ")
    ]
    assert len(contact_calls) == 3
    for span in contact_calls:
        attributes = span.attributes or {}
        assert attributes[attrs.CUSTOMER_ID] == "cus_8821"
        assert attributes[attrs.AGENT] == "person-research"
        assert attributes[attrs.TASK] == "lead-enrichment"
        assert span.context.trace_id == by_name["lead-enrichment"].context.trace_id


def by_name_of(spans: Sequence[ReadableSpan], span_id: int) -> str:
    for span in spans:
        if span.context is not None and span.context.span_id == span_id:
            return span.name
    return ""
