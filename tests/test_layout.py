"""The packages follow the data flow: a module imports only from its own stage and the stages below.

Every import is counted, those under `if TYPE_CHECKING:` and inside functions included, so a lazy
import cannot hide a cycle. The stages and what each may import are in each package's docstring
and in README.md ("How it is built").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "costspan"

# Bottom to top. A module may import from its own stage and any stage before it.
STAGES: list[tuple[str, ...]] = [
    ("costspan.attributes", "costspan._version", "costspan.otel_internals"),
    ("costspan.telemetry", "costspan.pricing"),
    ("costspan.attribution",),
    ("costspan.budget",),
    ("costspan.rollup",),
    ("costspan.instrumentation",),
    ("costspan.exporters",),
    ("costspan.analysis",),
    ("costspan.setup",),
    ("costspan", "costspan.demo", "costspan.__main__", "costspan.cli", "costspan.testing"),
]


def _stage_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "costspan":  # `from costspan import attributes`: the named module
                found += [(node.lineno, f"costspan.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "costspan" or name.startswith("costspan.")]


MODULES = sorted(p for p in SRC.rglob("*.py"))


def test_every_module_has_a_stage() -> None:
    assert [str(p) for p in MODULES if _stage_of(_module_name(p)) < 0] == []


def test_each_package_says_its_job() -> None:
    for package in (p for p in SRC.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{package.name}/__init__.py has no docstring"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_flow(path: Path) -> None:
    module = _module_name(path)
    own = _stage_of(module)
    upward = [
        f"{path.relative_to(SRC)}:{line} imports {name} (stage {_stage_of(name)} > {own})"
        for line, name in _imports(path)
        if _stage_of(name) > own
    ]
    assert upward == []


# --- provider packages: one shape, imports down the package, never another provider's -----------

INSTRUMENTATION = SRC / "instrumentation"
PROVIDERS = sorted(p.name for p in INSTRUMENTATION.iterdir() if (p / "__init__.py").exists())
# A provider package's modules, bottom to top: each imports only the ones before it.
PROVIDER_MODULES = ("patches", "request", "response", "stream", "wrappers", "instrumentor", "__init__")
PROVIDER_FILES = sorted(p for provider in PROVIDERS for p in (INSTRUMENTATION / provider).glob("*.py"))


def test_every_provider_package_has_the_same_modules() -> None:
    """No module a provider package names its own way; a reading module (`request`, `response`,
    `stream`) may be left out by a provider with nothing of that kind to read."""
    assert PROVIDERS == ["anthropic", "google_genai", "litellm", "openai"]
    for provider in PROVIDERS:
        found = {p.stem for p in (INSTRUMENTATION / provider).glob("*.py")}
        assert found <= set(PROVIDER_MODULES), provider
        assert {"__init__", "patches", "wrappers", "instrumentor"} <= found, provider


def test_each_provider_package_says_its_job() -> None:
    for provider in PROVIDERS:
        doc = ast.get_docstring(
            ast.parse((INSTRUMENTATION / provider / "__init__.py").read_text(encoding="utf-8"))
        )
        assert doc, f"instrumentation/{provider}/__init__.py has no docstring"


@pytest.mark.parametrize("path", PROVIDER_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_provider_modules_import_down_their_package(path: Path) -> None:
    provider, own = path.parent.name, PROVIDER_MODULES.index(path.stem)
    wrong = []
    for line, name in _imports(path):
        parts = name.split(".")
        if parts[:2] != ["costspan", "instrumentation"] or len(parts) < 3 or parts[2] not in PROVIDERS:
            continue  # shared helpers (`_call`, `_stream`, ...) and the stages below
        where = f"{path.relative_to(SRC)}:{line} imports {name}"
        if parts[2] != provider:
            wrong.append(f"{where} (another provider's package)")
        elif PROVIDER_MODULES.index(parts[3] if len(parts) > 3 else "__init__") >= own:
            wrong.append(f"{where} (not before {path.stem} in {PROVIDER_MODULES})")
    assert wrong == []
