"""Returned costs in one process: the `costspan-cost` format, whose figures a caller believes, and
what an accepted figure touches (the span rollup) and does not (the `costspan.cost` metric, budgets).

The client is the real `requests` library under opentelemetry-instrumentation-requests, calling a
real HTTP server on 127.0.0.1 that answers with the header a test gives it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from costspan.rollup import cost_header
from costspan.rollup.call_pricing import COST, INPUT, LLM_CALLS, OUTPUT, REMOTE_CALLS, REMOTE_COST, TALLY_SIZE
from costspan.rollup.remote_cost import CostPeerPolicy, cost_peer_policy, returned_costs, set_cost_peer_policy
from costspan.setup.settings import read_settings

requests = pytest.importorskip("requests")
pytest.importorskip("opentelemetry.instrumentation.requests")
pytest.importorskip("openai")

# --- the header format ----------------------------------------------------------------------------


def tally(units: int, calls: int = 1, **slots: int) -> list[int]:
    values = [0] * TALLY_SIZE
    values[COST], values[LLM_CALLS] = units, calls
    for slot, value in slots.items():
        values[globals()[slot]] = value
    return values


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0"),
        (4_500_000_000_000_000_000_000, "0.0045"),
        (1, "0.000000000000000000000001"),  # 1e-24 USD: the ledger's unit, kept exactly
        (12 * 10**24 + 34, "12.000000000000000000000034"),
    ],
)
def test_usd_is_written_exactly_and_read_back_to_the_same_units(units: int, text: str) -> None:
    value = cost_header.encode(tally(units, 2, INPUT=3000, OUTPUT=600))
    assert value == f"v1;usd={text};calls=2;in=3000;out=600"
    decoded = cost_header.decode(value)
    assert decoded[COST] == decoded[REMOTE_COST] == units
    assert (decoded[LLM_CALLS], decoded[REMOTE_CALLS], decoded[INPUT], decoded[OUTPUT]) == (2, 2, 3000, 600)


@pytest.mark.parametrize(
    "value",
    [
        "v2;usd=1;calls=1",
        "usd=1;calls=1",
        "v1;calls=1",
        "v1;usd=1",
        "v1;usd=-1;calls=1",
        "v1;usd=1e3;calls=1",
        "v1;usd=nan;calls=1",
        "v1;usd=1000000000;calls=1",  # $1e9: not a request's cost
        "v1;usd=1;calls=1.5",
        "v1;usd=1;calls=1;calls=2",
        "v1;usd=1;calls=1, v1;usd=1;calls=1",  # two headers joined by the client
        "v1;usd=1;calls=" + "9" * 20,
        "v1;usd=1;calls=1;x=" + "y" * 1100,
    ],
)
def test_malformed_values_are_refused_whole(value: str) -> None:
    with pytest.raises(cost_header.MalformedCostHeader):
        cost_header.decode(value)


def test_unknown_fields_are_ignored_by_v1_readers() -> None:
    assert cost_header.decode("v1;usd=0.5;calls=1;future=7")[COST] == 5 * 10**23


def test_a_signature_holds_for_its_trace_only() -> None:
    signed = cost_header.sign("v1;usd=0.5;calls=1", b"s3cret", 0xABC)
    body, signature = cost_header.split_signature(signed)
    assert body == "v1;usd=0.5;calls=1" and signature is not None
    assert cost_header.signature_valid(body, signature, b"s3cret", 0xABC)
    assert not cost_header.signature_valid(body, signature, b"s3cret", 0xABD)
    assert not cost_header.signature_valid(body, signature, b"other", 0xABC)
    assert not cost_header.signature_valid("v1;usd=5;calls=1", signature, b"s3cret", 0xABC)


# --- whom a caller believes -----------------------------------------------------------------------


def test_peer_policy_matches_hosts_domains_and_networks() -> None:
    policy = CostPeerPolicy.of("rag.internal, *.svc.cluster.local, 10.0.0.0/8, ::1")
    assert policy.trusts_host("rag.internal") and policy.trusts_host("RAG.internal.")
    assert policy.trusts_host("summariser.team.svc.cluster.local")
    assert policy.trusts_host("10.2.3.4") and policy.trusts_host("[::1]")
    for host in ("rag.internal.evil.com", "evilrag.internal", "svc.cluster.local.evil", "11.0.0.1", None, ""):
        assert not policy.trusts_host(host), host
    assert CostPeerPolicy.of("*").trusts_host("anything")
    assert not CostPeerPolicy().trusts_host("127.0.0.1")


def test_a_bad_peer_entry_is_reported_naming_the_variable_and_the_entry() -> None:
    settings = read_settings(
        {"COSTSPAN_TRUSTED_COST_PEERS": "rag.internal,http://x/", "COSTSPAN_BAGGAGE_SECRET": "s"}
    )
    assert settings.problems == (
        "COSTSPAN_TRUSTED_COST_PEERS: 'http://x/' is not a host name, *.domain, IP address or network "
        "(e.g. rag.internal, *.svc.cluster.local, 10.0.0.0/8, or *); returned costs are believed only "
        "when signed (COSTSPAN_BAGGAGE_SECRET)",
    )
    assert settings.cost_peer_policy == CostPeerPolicy(secret=b"s")


# --- what an accepted figure reaches --------------------------------------------------------------


class CostHeaderHandler(BaseHTTPRequestHandler):
    value: ClassVar[str | None] = None

    def do_GET(self) -> None:
        self.send_response(200)
        if self.value is not None:
            self.send_header(cost_header.HEADER, self.value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CostHeaderHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    CostHeaderHandler.value = None


@pytest.fixture
def trusting_localhost() -> Iterator[None]:
    before = cost_peer_policy()
    set_cost_peer_policy(CostPeerPolicy.of("127.0.0.1"))
    yield
    set_cost_peer_policy(before)


@pytest.fixture
def instrumented_requests(observed: Any) -> Iterator[None]:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    from costspan.instrumentation.cost_clients import read_returned_cost_in_http_clients

    read_returned_cost_in_http_clients()
    RequestsInstrumentor().instrument(tracer_provider=observed.tracer_provider)
    yield
    RequestsInstrumentor().uninstrument()


@pytest.fixture
def openai_client(observed: Any) -> Iterator[Any]:
    from openai import OpenAI

    from costspan.instrumentation.openai import OpenAIInstrumentor
    from costspan.testing import FakeProviderServer
    from costspan.testing.openai import OpenAIUsage, add_openai_routes

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=observed.tracer_provider, meter_provider=observed.meter_provider)
    with FakeProviderServer() as server:
        add_openai_routes(server, usage=OpenAIUsage(prompt_tokens=1000, completion_tokens=200))
        client = OpenAI(base_url=server.base_url + "/v1", api_key="test", max_retries=0)
        yield client
        client.close()
    instrumentor.uninstrument()


GPT_4O = Decimal("0.0045")  # 1,000 in / 200 out


@pytest.mark.usefixtures("instrumented_requests", "trusting_localhost", "no_configured_budgets")
def test_accepted_cost_rolls_up_but_is_neither_metered_nor_charged(
    observed: Any, service: str, openai_client: Any
) -> None:
    import costspan

    CostHeaderHandler.value = "v1;usd=5;calls=4;in=40;out=8"
    tracer = observed.tracer_provider.get_tracer("test")
    before = returned_costs().get("accepted", 0)
    with tracer.start_as_current_span("task"), costspan.budget(GPT_4O * 2, scope="block") as spend:
        assert requests.get(service, timeout=10).text == "ok"
        # $5 came back from the service, over the $0.009 budget: the budget did not see it.
        for _ in range(2):
            openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert spend.spent_usd == 2 * GPT_4O
    assert returned_costs()["accepted"] == before + 1
    spans = {s.name: s for s in observed.finished()}
    get = spans["GET"].attributes
    assert get["costspan.remote.status"] == "accepted" and get["costspan.remote.peer"] == "127.0.0.1"
    assert (get["costspan.remote.cost_usd"], get["costspan.remote.llm_calls"]) == (5.0, 4)
    assert (get["costspan.remote.input_tokens"], get["costspan.remote.output_tokens"]) == (40, 8)
    # Like a call's own usage, the figures are not repeated as a rollup on the span that carries them.
    assert not any(key.startswith("costspan.rollup.") for key in get)
    assert "gen_ai.usage.cost" not in get
    task = spans["task"].attributes
    assert task["costspan.rollup.cost_usd"] == float(5 + 2 * GPT_4O)
    assert task["costspan.rollup.remote_cost_usd"] == 5.0
    assert task["costspan.rollup.llm_calls"] == 6 and task["costspan.rollup.remote_llm_calls"] == 4
    assert task["costspan.rollup.input_tokens"] == 40 + 2 * 1000
    # The costspan.cost metric holds this process's calls only: the service recorded its own.
    points = observed.metric_points("costspan.cost")
    assert sum(Decimal(repr(p.value)) for p in points) == 2 * GPT_4O


@pytest.mark.usefixtures("instrumented_requests", "trusting_localhost")
def test_a_response_without_the_header_changes_nothing(observed: Any, service: str) -> None:
    before = returned_costs()
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("task"):
        requests.get(service, timeout=10)
    spans = {s.name: s for s in observed.finished()}
    for span in spans.values():
        assert not any(key.startswith("costspan.") for key in span.attributes or {}), span.name
    assert returned_costs() == before


@pytest.mark.usefixtures("instrumented_requests")
def test_an_untrusted_figure_is_counted_and_summed_nowhere(observed: Any, service: str) -> None:
    CostHeaderHandler.value = "v1;usd=5;calls=1"
    before = returned_costs().get("untrusted", 0)
    tracer = observed.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("task"):
        requests.get(service, timeout=10)
    spans = {s.name: s for s in observed.finished()}
    assert spans["GET"].attributes["costspan.remote.status"] == "untrusted"
    assert not any(key.startswith("costspan.rollup") for s in spans.values() for key in s.attributes or {})
    assert returned_costs()["untrusted"] == before + 1


@pytest.mark.usefixtures("instrumented_requests")
def test_outcomes_are_a_metric(observed: Any, service: str) -> None:
    from costspan.setup.fault_metrics import observe_faults

    observe_faults(observed.meter_provider)
    CostHeaderHandler.value = "v1;usd=oops;calls=1"
    requests.get(service, timeout=10)
    points = observed.metric_points("costspan.remote_cost.responses")
    by_status = {p.attributes["costspan.remote.status"]: p.value for p in points}
    assert by_status["malformed"] == returned_costs()["malformed"] >= 1


def test_a_fault_while_reading_is_counted_and_never_raised(observed: Any) -> None:
    from costspan.instrumentation import cost_clients
    from costspan.rollup.remote_cost import FAULTS

    class BrokenHeaders:
        def get(self, name: str) -> str:
            raise RuntimeError("broken")

    before = FAULTS.counts().get("read returned cost", 0)
    with observed.tracer_provider.get_tracer("test").start_as_current_span("GET") as span:
        cost_clients._read(span, "http://127.0.0.1/", BrokenHeaders())
    assert FAULTS.counts()["read returned cost"] == before + 1
