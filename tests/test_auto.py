"""Zero-code: `opentelemetry-instrument python app.py`, run for real in a child process, exporting over
OTLP/HTTP to a local receiver (or printing the cost tree), with and without opentelemetry-distro."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes
from e2e.otlp_sink import OtlpHttpSink, ReceivedPoint, ReceivedSpan
from zero_code import clean_env, install_distro, run_instrumented, write_app

pytest.importorskip("openai")

MTOK = Decimal(1_000_000)
INPUT_TOKENS, OUTPUT_TOKENS = 1000, 200
# gpt-4o, genai-prices 0.2.3: $2.50 input, $10 output per million tokens.
CALL_COST = (INPUT_TOKENS * Decimal("2.50") + OUTPUT_TOKENS * Decimal("10")) / MTOK  # $0.0045
TASK_COST = 2 * CALL_COST
CUSTOMER = "cus_zero_7"
FEATURE = "lead-gen"
SERVICE = "zero-code-app"
# Only the SDK the app uses: keeps each child's start-up short.
ONLY_OPENAI = "costspan_anthropic,costspan_google_genai,costspan_litellm"

APP = """
import os

from openai import OpenAI

import costspan

{setup}
client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)


@costspan.task("enrich", customer_id="{customer}", feature="{feature}")
def enrich():
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])


enrich()
print("app done")
"""


def app_source(setup: str = "") -> str:
    return APP.format(setup=setup, customer=CUSTOMER, feature=FEATURE)


@pytest.fixture(scope="session")
def distro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_distro(tmp_path_factory.mktemp("distro"))


@pytest.fixture(params=["without-distro", "with-distro"])
def distro(request: pytest.FixtureRequest) -> Path | None:
    if request.param == "without-distro":
        return None
    return request.getfixturevalue("distro_dir")  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as s:
        add_openai_routes(s, usage=OpenAIUsage(prompt_tokens=INPUT_TOKENS, completion_tokens=OUTPUT_TOKENS))
        yield s


@pytest.fixture
def sink() -> Iterator[OtlpHttpSink]:
    with OtlpHttpSink() as s:
        yield s


def otlp_env(sink: OtlpHttpSink, server: FakeProviderServer, **extra: str) -> dict[str, str]:
    return clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ONLY_OPENAI,
        FAKE_OPENAI_URL=server.base_url,
        **extra,
    )


def llm_spans(sink: OtlpHttpSink) -> list[ReceivedSpan]:
    return [s for s in sink.spans() if s.kind == "CLIENT" and s.scope == "costspan.instrumentation.openai"]


def one_span(sink: OtlpHttpSink, name: str) -> ReceivedSpan:
    found = [s for s in sink.spans() if s.name == name]
    assert len(found) == 1, [s.name for s in sink.spans()]
    return found[0]


def cost_points(sink: OtlpHttpSink) -> list[ReceivedPoint]:
    return [p for p in sink.points() if p.metric == "costspan.cost"]


def assert_priced_task(sink: OtlpHttpSink, call_cost: Decimal = CALL_COST) -> None:
    calls = llm_spans(sink)
    assert len(calls) == 2
    task = one_span(sink, "enrich")
    for call in calls:
        assert call.name == "chat gpt-4o"
        assert call.parent_span_id == task.span_id
        assert call.attributes["gen_ai.usage.cost"] == float(call_cost)
        assert call.attributes["gen_ai.usage.input_tokens"] == INPUT_TOKENS
        assert call.attributes["costspan.customer_id"] == CUSTOMER
        assert call.attributes["costspan.feature"] == FEATURE
        assert call.attributes["costspan.task"] == "enrich"
    assert task.attributes["costspan.rollup.cost_usd"] == float(2 * call_cost)
    assert task.attributes["costspan.rollup.llm_calls"] == 2
    assert task.attributes["costspan.rollup.input_tokens"] == 2 * INPUT_TOKENS
    assert task.resource["service.name"] == SERVICE


def test_exports_priced_attributed_spans_and_metrics_per_otel_settings(
    distro: Path | None, sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    probe = """
try:
    from opentelemetry.distro import OpenTelemetryConfigurator
    print("configured by distro:", OpenTelemetryConfigurator._instance is not None)
except ImportError:
    print("configured by distro: no distro")
"""
    app = write_app(tmp_path, app_source(probe))
    result = run_instrumented(app, otlp_env(sink, server), distro=distro)
    assert result.returncode == 0, result.stderr
    marker = "True" if distro is not None else "no distro"
    assert result.stdout == f"configured by distro: {marker}\napp done\n"
    assert "costspan" not in result.stderr
    assert_priced_task(sink)
    task = one_span(sink, "enrich")
    assert "telemetry.auto.version" in task.resource
    # The instrumentor recorded on the MeterProvider the configurator built (exported at exit).
    points = cost_points(sink)
    assert [p.value for p in points] == [float(TASK_COST)]
    assert points[0].unit == "USD"
    assert points[0].attributes["costspan.customer_id"] == CUSTOMER
    assert points[0].attributes["costspan.feature"] == FEATURE
    assert points[0].resource["service.name"] == SERVICE


def test_app_that_also_calls_configure_gets_one_processor(
    distro: Path | None, sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    setup = """
from opentelemetry import trace

first = costspan.configure()
second = costspan.configure()
provider = trace.get_tracer_provider()
processors = provider._active_span_processor._span_processors
print("cost processors:", sum(isinstance(p, costspan.CostSpanProcessor) for p in processors))
print("same setup:", first.processor is second.processor, first.tracer_provider is provider)
print("instrumented:", ",".join(sorted(first.instrumented)))
"""
    app = write_app(tmp_path, app_source(setup))
    result = run_instrumented(app, otlp_env(sink, server), distro=distro)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "cost processors: 1\nsame setup: True True\ninstrumented: costspan_openai,threading\napp done\n"
    )
    assert "already instrumented" not in result.stderr
    assert_priced_task(sink)


def test_instruments_every_installed_costspan_sdk_and_threads(
    server: FakeProviderServer, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path,
        """
        from importlib.metadata import entry_points

        instrumented = []
        for ep in entry_points(group="opentelemetry_instrumentor"):
            if ep.value.startswith("costspan.") or ep.name == "threading":
                try:
                    cls = ep.load()
                except ImportError:
                    continue
                if cls().is_instrumented_by_opentelemetry:
                    instrumented.append(ep.name)
        print(",".join(sorted(instrumented)))
        """,
    )
    result = run_instrumented(app, clean_env())
    assert result.returncode == 0, result.stderr
    names = set(result.stdout.strip().split(","))
    assert {"costspan_openai", "costspan_google_genai", "threading"} <= names


def test_traces_exporter_costspan_prints_the_cost_tree(server: FakeProviderServer, tmp_path: Path) -> None:
    app = write_app(tmp_path, app_source())
    env = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ONLY_OPENAI, FAKE_OPENAI_URL=server.base_url)
    result = run_instrumented(app, env, "--traces_exporter", "costspan")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The tree prints when the batch processor exports: at shutdown, after the app's own line, or
    # before it when a loaded machine lets the export's schedule come first.
    assert lines.count("app done") == 1
    lines.remove("app done")
    assert lines[0].startswith(
        f"enrich  $0.0090 total  2 calls  customer={CUSTOMER} feature={FEATURE} task_id="
    )
    assert lines[1:] == [
        "├─ chat gpt-4o  $0.0045  1,000 in / 200 out",
        "└─ chat gpt-4o  $0.0045  1,000 in / 200 out",
    ]


def test_traces_exporter_costspan_alone_sends_no_metrics_unless_asked(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    """`--traces_exporter costspan` with OTEL_METRICS_EXPORTER unset: the tree, and no metrics sent to
    the OTLP endpoint (a local run has no collector: each export would fail and log); naming
    `otlp` for metrics, or adding `otlp` to the traces exporters, still sends them."""
    app = write_app(tmp_path, app_source())
    env = clean_env(
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ONLY_OPENAI,
        FAKE_OPENAI_URL=server.base_url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
    )
    del env["OTEL_TRACES_EXPORTER"], env["OTEL_METRICS_EXPORTER"], env["OTEL_LOGS_EXPORTER"]
    result = run_instrumented(app, env, "--traces_exporter", "costspan")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "enrich  $0.0090 total  2 calls" in result.stdout
    assert sink.points() == [] and sink.spans() == []

    for metrics_env, traces_exporter in (
        ({"OTEL_METRICS_EXPORTER": "otlp"}, "costspan"),
        ({}, "otlp,costspan"),
    ):
        with OtlpHttpSink() as other:
            other_env = {**env, **metrics_env, "OTEL_EXPORTER_OTLP_ENDPOINT": other.endpoint}
            result = run_instrumented(app, other_env, "--traces_exporter", traces_exporter)
            assert result.returncode == 0, result.stderr
            assert sum(p.value for p in cost_points(other)) == pytest.approx(float(2 * CALL_COST))
            assert len(llm_spans(other)) == (2 if "otlp" in traces_exporter else 0)


def test_traces_exporter_otlp_and_costspan_together(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    app = write_app(tmp_path, app_source())
    result = run_instrumented(app, otlp_env(sink, server), "--traces_exporter", "otlp,costspan")
    assert result.returncode == 0, result.stderr
    assert "enrich  $0.0090 total  2 calls" in result.stdout
    assert_priced_task(sink)


def test_costspan_console_prints_the_tree_once(server: FakeProviderServer, tmp_path: Path) -> None:
    app = write_app(tmp_path, app_source())
    env = clean_env(
        COSTSPAN_CONSOLE="true",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ONLY_OPENAI,
        FAKE_OPENAI_URL=server.base_url,
    )
    result = run_instrumented(app, env, "--traces_exporter", "costspan")  # asked for twice: one tree
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("enrich  $0.0090 total  2 calls") == 1
    result = run_instrumented(app, env)
    assert result.stdout.count("enrich  $0.0090 total  2 calls") == 1


def test_costspan_disabled_leaves_the_sdk_alone_and_still_exports(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    setup = """
import types

from openai.resources.chat.completions.completions import Completions

print("patched:", type(vars(Completions)["create"]) is not types.FunctionType)
"""
    app = write_app(tmp_path, app_source(setup))
    enabled = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=ONLY_OPENAI, FAKE_OPENAI_URL=server.base_url)
    assert run_instrumented(app, enabled).stdout == "patched: True\napp done\n"
    result = run_instrumented(app, otlp_env(sink, server, COSTSPAN_DISABLED="true"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "patched: False\napp done\n"
    assert llm_spans(sink) == []
    task = one_span(sink, "enrich")
    assert not any(key.startswith("costspan.rollup.") for key in task.attributes)


def test_disabled_instrumentations_names_costspan_instrumentors(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    app = write_app(tmp_path, app_source())
    env = otlp_env(sink, server)
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] += ",costspan_openai"
    result = run_instrumented(app, env)
    assert result.returncode == 0, result.stderr
    assert llm_spans(sink) == []
    assert one_span(sink, "enrich").attributes["costspan.customer_id"] == CUSTOMER


def test_cost_dimensions_from_env(sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path) -> None:
    app = write_app(tmp_path, app_source())
    result = run_instrumented(app, otlp_env(sink, server, COSTSPAN_COST_DIMENSIONS="feature"))
    assert result.returncode == 0, result.stderr
    points = cost_points(sink)
    assert [p.value for p in points] == [float(TASK_COST)]
    assert points[0].attributes["costspan.feature"] == FEATURE
    assert "costspan.customer_id" not in points[0].attributes
    assert "costspan.task" not in points[0].attributes


def test_tool_spend_on_the_cost_metric_with_env_dimensions(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    tool_call = (
        f'with costspan.attribute(customer_id="{CUSTOMER}", feature="{FEATURE}"), '
        'costspan.tool("clearbit.enrich", cost_usd=0.1):\n    pass\n'
    )
    app = write_app(tmp_path, app_source() + tool_call)
    result = run_instrumented(app, otlp_env(sink, server, COSTSPAN_COST_DIMENSIONS="feature"))
    assert result.returncode == 0, result.stderr
    by_kind = {p.attributes.get("gen_ai.tool.name", "llm"): p for p in cost_points(sink)}
    assert {kind: p.value for kind, p in by_kind.items()} == {"llm": float(TASK_COST), "clearbit.enrich": 0.1}
    assert by_kind["clearbit.enrich"].attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "clearbit.enrich",
        "costspan.feature": FEATURE,
    }


def test_prices_override_file_from_env(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    (tmp_path / "prices.yaml").write_text(
        'models:\n  - model: "gpt-4o"\n    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n'
    )
    app = write_app(tmp_path, app_source())
    result = run_instrumented(app, otlp_env(sink, server, COSTSPAN_PRICES="prices.yaml"))
    assert result.returncode == 0, result.stderr
    override_cost = (INPUT_TOKENS * Decimal(1) + OUTPUT_TOKENS * Decimal(2)) / MTOK  # $0.0014
    assert_priced_task(sink, call_cost=override_cost)
    assert {s.attributes["costspan.price.source"] for s in llm_spans(sink)} == {"override:prices.yaml"}
    assert [p.value for p in cost_points(sink)] == [float(2 * override_cost)]


def test_app_calling_configure_under_env_settings_warns_about_nothing(
    sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    (tmp_path / "prices.yaml").write_text(
        'models:\n  - model: "gpt-4o"\n    input_per_mtok: 1.0\n    output_per_mtok: 2.0\n'
    )
    app = write_app(tmp_path, app_source("costspan.configure()"))
    env = otlp_env(sink, server, COSTSPAN_PRICES="prices.yaml", COSTSPAN_COST_DIMENSIONS="feature")
    result = run_instrumented(app, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    override_cost = (INPUT_TOKENS * Decimal(1) + OUTPUT_TOKENS * Decimal(2)) / MTOK
    assert_priced_task(sink, call_cost=override_cost)
    (point,) = cost_points(sink)
    assert "costspan.customer_id" not in point.attributes and point.attributes["costspan.feature"] == FEATURE


BAD_YAML = 'models:\n  - model: "gpt-4o"\n    input_per_mtok: -3\n    output_per_mtok: 2.0\n'


# Each bad value and what its one message must say. Two runs: COSTSPAN_PRICES takes one value a run.
BAD_SETTINGS = {
    "missing file": {
        "COSTSPAN_PRICES": (
            "missing.yaml",
            ["COSTSPAN_PRICES='missing.yaml' is not used", "cannot read file"],
        ),
        "COSTSPAN_CONSOLE": ("maybe", ["COSTSPAN_CONSOLE='maybe' is not a boolean"]),
        "COSTSPAN_COST_DIMENSIONS": ("task_id", ["COSTSPAN_COST_DIMENSIONS='task_id': 'task_id' cannot be"]),
        "COSTSPAN_DISABLED": ("sometimes", ["COSTSPAN_DISABLED='sometimes'", "stays enabled"]),
        "COSTSPAN_PRICE": ("prices.yaml", ["COSTSPAN_PRICE is not a costspan setting"]),
        "COSTSPAN_TRUSTED_BAGGAGE_PEERS": ("intranet", ["COSTSPAN_TRUSTED_BAGGAGE_PEERS: 'intranet' is not"]),
    },
    "bad entry": {
        "COSTSPAN_PRICES": (
            "bad.yaml",
            ["COSTSPAN_PRICES='bad.yaml' is not used: bad.yaml: models[0].input_per_mtok", "(got -3)"],
        ),
    },
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings_are_one_clear_message_each_and_the_app_runs(
    case: str, sink: OtlpHttpSink, server: FakeProviderServer, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    app = write_app(tmp_path, app_source())
    bad = BAD_SETTINGS[case]
    result = run_instrumented(
        app, otlp_env(sink, server, **{name: value for name, (value, _) in bad.items()})
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app done\n"
    messages = result.stderr.splitlines()
    assert len(messages) == len(bad), result.stderr
    for name, (_, parts) in bad.items():
        (message,) = [
            m
            for m in messages
            if m.startswith((f"costspan: {name}=", f"costspan: {name} ", f"costspan: {name}:"))
        ]
        for part in parts:
            assert part in message
    assert_priced_task(sink)  # bundled prices, default settings
