"""collector-config/: structural checks of the OpenTelemetry Collector files (no otelcol-contrib can
be installed here, so they are not run), and rotel.env against the real rotel-agent's settings.

What is checked: each file parses; every component a pipeline names is defined and every defined
component is used; connectors join two pipelines; each component type is one otelcol-contrib
ships (v0.157 names) and has its required settings; every `${env:...}` endpoint is documented in
the file's comments; every span attribute the files read is one costspan writes.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rotel_collector import agent_path, documented_settings

from costspan import attributes

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
YAML_FILES = sorted([*CONFIG_DIR.glob("*.yaml"), *CONFIG_DIR.glob("clickhouse/*.yaml")])
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")

# Component types these files may use (otelcol-contrib v0.157+ names).
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "tail_sampling", "deltatocumulative"},
    "exporters": {"otlp_grpc", "otlp_http", "load_balancing", "prometheus", "debug", "clickhouse"},
    "connectors": {"signaltometrics"},
    "extensions": set(),
}
# What a connector of each type consumes -> produces (pipeline signal types).
CONNECTOR_SIGNALS = {"signaltometrics": ("traces", "metrics")}
TAIL_SAMPLING_POLICY_TYPES = {
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "span_count",
    "boolean_attribute",
    "ottl_condition",
    "and",
    "drop",
    "composite",
}
ENV_REF = re.compile(r"\$\{([^}]*)\}")
ENV_REF_SYNTAX = re.compile(r"env:([A-Z_][A-Z0-9_]*)(:-[^}]*)?")
OTTL_ATTRIBUTE = re.compile(r'attributes\["([^"]+)"\]')
CONTRACT_KEYS = {
    value for name, value in vars(attributes).items() if name.isupper() and isinstance(value, str)
}


def load(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict), path
    return config


def component_type(name: str) -> str:
    return name.split("/", 1)[0]


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return config["service"]["pipelines"]


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_the_documented_files_exist() -> None:
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in YAML_FILES}
    assert names == {
        "jaeger.yaml",
        "tempo.yaml",
        "gateway-loadbalancer.yaml",
        "gateway-sampler.yaml",
        "cost-metrics.yaml",
        "clickhouse/otelcol-clickhouse.yaml",
    }
    readme = (CONFIG_DIR / "README.md").read_text()
    for name in [*names, "rotel.env"]:
        assert f"({name})" in readme, f"collector-config/README.md does not link {name}"


@pytest.fixture(params=YAML_FILES, ids=[p.relative_to(CONFIG_DIR).as_posix() for p in YAML_FILES])
def config_file(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_pipelines_name_only_defined_components_and_use_all_of_them(config_file: Path) -> None:
    config = load(config_file)
    assert pipelines(config), f"{config_file.name}: no pipelines"
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, pipeline in pipelines(config).items():
        assert component_type(name) in ("traces", "metrics", "logs"), name
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                is_connector = component in config.get("connectors", {}) and kind != "processors"
                defined = component in config.get(kind, {}) or is_connector
                assert defined, f"{config_file.name}: pipeline {name} names undefined {kind[:-1]} {component}"
                used["connectors" if is_connector else kind].add(component)
    used["extensions"] = set(config["service"].get("extensions", []))
    for kind in KINDS:
        unused = set(config.get(kind, {})) - used[kind]
        assert not unused, f"{config_file.name}: {kind} defined but unused: {unused}"


def test_connectors_join_a_pipeline_of_what_they_consume_to_one_of_what_they_produce(
    config_file: Path,
) -> None:
    config = load(config_file)
    for connector in config.get("connectors", {}):
        consumes, produces = CONNECTOR_SIGNALS[component_type(connector)]
        as_exporter = [n for n, p in pipelines(config).items() if connector in p.get("exporters", [])]
        as_receiver = [n for n, p in pipelines(config).items() if connector in p.get("receivers", [])]
        assert as_exporter and all(component_type(n) == consumes for n in as_exporter), as_exporter
        assert as_receiver and all(component_type(n) == produces for n in as_receiver), as_receiver


def test_components_are_contrib_types_with_their_required_settings(config_file: Path) -> None:
    config = load(config_file)
    for kind in KINDS:
        for name, settings in (config.get(kind) or {}).items():
            kind_name = component_type(name)
            assert kind_name in KNOWN_TYPES[kind], f"{config_file.name}: unknown {kind[:-1]} type {name}"
            check = REQUIRED.get(kind_name)
            if check is not None:
                check(settings or {}, f"{config_file.name}: {name}")


def _otlp_receiver(settings: dict[str, Any], where: str) -> None:
    protocols = settings["protocols"]
    assert set(protocols) <= {"grpc", "http"} and protocols, where
    for protocol in protocols.values():
        assert protocol["endpoint"], where


def _endpoint(settings: dict[str, Any], where: str) -> None:
    assert settings.get("endpoint"), f"{where}: no endpoint"


def _memory_limiter(settings: dict[str, Any], where: str) -> None:
    assert settings.get("check_interval"), where
    assert "limit_percentage" in settings or "limit_mib" in settings, where


def _load_balancing(settings: dict[str, Any], where: str) -> None:
    assert settings.get("routing_key", "traceID") == "traceID", (
        f"{where}: tail sampling needs traceID routing"
    )
    assert "otlp" in settings["protocol"], where
    assert "endpoint" not in settings["protocol"]["otlp"], f"{where}: the resolver sets the endpoint"
    resolver = settings["resolver"]
    assert len(set(resolver) & {"static", "dns", "k8s", "aws_cloud_map"}) == 1, where
    if "dns" in resolver:
        assert resolver["dns"]["hostname"], where
        assert isinstance(resolver["dns"].get("port", "4317"), str), f"{where}: dns port is a string"


def _policy(policy: dict[str, Any], where: str) -> None:
    assert policy.get("name") and policy.get("type") in TAIL_SAMPLING_POLICY_TYPES, f"{where}: {policy}"
    if policy["type"] != "always_sample":
        assert policy.get(policy["type"]), f"{where}: policy {policy['name']} has no {policy['type']} block"
    if policy["type"] == "ottl_condition":
        conditions = policy["ottl_condition"].get("span", []) + policy["ottl_condition"].get("spanevent", [])
        assert conditions, where
        for condition in conditions:
            _ottl(condition, where)
    if policy["type"] == "numeric_attribute":
        # The policy reads the attribute as an integer: a double such as a cost would read as 0.
        key = policy["numeric_attribute"]["key"]
        assert not key.startswith("costspan.rollup.cost") and key != "gen_ai.usage.cost", where


def _tail_sampling(settings: dict[str, Any], where: str) -> None:
    assert settings["policies"], where
    for policy in settings["policies"]:
        _policy(policy, where)


def _ottl(expression: str, where: str) -> None:
    assert expression.count("(") == expression.count(")"), f"{where}: {expression}"
    assert expression.count('"') % 2 == 0, f"{where}: {expression}"
    # OTTL's boolean operators are lower case.
    assert not re.search(r"\b(AND|OR|NOT)\b", expression), f"{where}: {expression}"


def _signaltometrics(settings: dict[str, Any], where: str) -> None:
    assert settings.get("spans"), where
    for metric in settings["spans"]:
        kinds = {"sum", "gauge", "histogram", "exponential_histogram"} & set(metric)
        assert metric.get("name") and len(kinds) == 1, f"{where}: {metric}"
        assert metric[kinds.pop()].get("value"), f"{where}: {metric['name']} has no value expression"
        for condition in metric.get("conditions", []):
            _ottl(condition, where)
        keys = [a["key"] for a in metric.get("attributes", [])]
        assert len(keys) == len(set(keys)), f"{where}: duplicate attribute in {metric['name']}"
        for attr in metric.get("attributes", []):
            assert not ("default_value" in attr and attr.get("optional")), where


REQUIRED = {
    "otlp": _otlp_receiver,
    "otlp_grpc": _endpoint,
    "otlp_http": _endpoint,
    "prometheus": _endpoint,
    "clickhouse": _endpoint,
    "memory_limiter": _memory_limiter,
    "load_balancing": _load_balancing,
    "tail_sampling": _tail_sampling,
    "signaltometrics": _signaltometrics,
}


def test_endpoints_come_from_documented_environment_variables(config_file: Path) -> None:
    text = config_file.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    refs = ENV_REF.findall("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    assert refs, f"{config_file.name}: no endpoint is configurable"
    for ref in refs:
        match = ENV_REF_SYNTAX.fullmatch(ref)
        assert match, f"{config_file.name}: ${{{ref}}} is not ${{env:NAME}} or ${{env:NAME:-default}}"
        assert match.group(1) in comments, f"{config_file.name}: {match.group(1)} is not documented"


def test_span_attributes_read_are_ones_costspan_writes(config_file: Path) -> None:
    config = load(config_file)
    read = {key for s in strings(config) for key in OTTL_ATTRIBUTE.findall(s)}
    for connector in (config.get("connectors") or {}).values():
        for metric in connector.get("spans", []):
            read |= {a["key"] for a in metric.get("attributes", [])}
    ours = {key for key in read if key.startswith(("costspan.", "gen_ai."))}
    assert ours <= CONTRACT_KEYS, f"{config_file.name}: not in costspan.attributes: {ours - CONTRACT_KEYS}"


def test_costly_and_failed_traces_are_kept_from_the_rollup_on_the_task_span() -> None:
    sampler = load(CONFIG_DIR / "gateway-sampler.yaml")
    policies = sampler["processors"]["tail_sampling"]["policies"]
    conditions = [c for p in policies if p["type"] == "ottl_condition" for c in p["ottl_condition"]["span"]]
    assert f'attributes["{attributes.ROLLUP_COST_USD}"] > 0.50' in conditions
    assert f'attributes["{attributes.ROLLUP_FAILED_CALLS}"] > 0' in conditions
    assert {
        "type": "status_code",
        "name": "failed-span",
        "status_code": {"status_codes": ["ERROR"]},
    } in policies
    processors = pipelines(sampler)["traces"]["processors"]
    assert processors.index("tail_sampling") < processors.index("batch")
    balancer = load(CONFIG_DIR / "gateway-loadbalancer.yaml")
    assert balancer["exporters"]["load_balancing"]["routing_key"] == "traceID"


def test_cost_metrics_sum_call_costs_never_rollups() -> None:
    config = load(CONFIG_DIR / "cost-metrics.yaml")
    metrics = config["connectors"]["signaltometrics"]["spans"]
    cost = next(m for m in metrics if m["name"] == "costspan.llm.cost_usd")
    assert cost["sum"]["value"] == f'Double(attributes["{attributes.GEN_AI_USAGE_COST}"])'
    dimensions = {a["key"] for a in cost["attributes"]}
    assert {attributes.CUSTOMER_ID, attributes.TASK, attributes.FEATURE, attributes.AGENT} <= dimensions
    assert attributes.TASK_ID not in dimensions  # one series per task instance would explode
    assert not any("costspan.rollup" in s for s in strings(metrics))
    assert pipelines(config)["metrics/cost"]["processors"] == ["deltatocumulative"]


def test_rotel_env_names_only_settings_rotel_agent_has() -> None:
    help_text = subprocess.run(
        [str(agent_path()), "start", "--help"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    known = set(re.findall(r"\[env: (ROTEL_[A-Z0-9_]+)=", help_text))
    assert "ROTEL_OTLP_GRPC_ENDPOINT" in known  # the help format this test relies on
    settings = documented_settings()
    assert set(settings) <= known, set(settings) - known
    assert settings["ROTEL_EXPORTER"] == "otlp"
    assert settings["ROTEL_OTLP_EXPORTER_PROTOCOL"] == "http"
