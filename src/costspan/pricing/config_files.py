"""Reading a user's YAML/TOML configuration file defensively (price overrides, budgets).

A hostile or broken file must fail fast with a short message, never exhaust time or memory:
files over `MAX_FILE_BYTES` are refused before parsing, YAML aliases may not expand the document by
more than `MAX_ALIAS_EXPANSION` values ("billion laughs"), a key repeated in one YAML mapping is
refused (YAML keeps the last silently; TOML already refuses it), and `excerpt()` quotes at most a
short piece of any value in a message. libyaml's C parser is used when PyYAML has it.
"""

from __future__ import annotations

import gc
import reprlib
import tomllib
from pathlib import Path
from typing import Any

import yaml

# Override and budget files are hand-written tables: a few thousand entries fit in well under 1 MiB.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Values YAML aliases may add to a document beyond the values written in it.
MAX_ALIAS_EXPANSION = 100_000
EXCERPT_CHARS = 80

_Base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigFileError(ValueError):
    """The file cannot be used; the message says why (without the file's name: callers add it)."""


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`repr(value)`, cut to about `limit` characters (nested and shared values included)."""
    short = _REPR.repr(value)
    return short if len(short) <= limit else short[: limit - 3] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = EXCERPT_CHARS
_REPR.maxother = EXCERPT_CHARS
_REPR.maxlong = 40
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4


class _ConfigYamlLoader(_Base):  # type: ignore[misc,valid-type]
    """Safe loader: dates stay strings (the callers validate them), repeated keys are refused."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: the constructor below reports it
                    continue
                if repeated:
                    line = key_node.start_mark.line + 1
                    raise ConfigFileError(
                        f"line {line}: key {excerpt(key)} appears twice in one mapping "
                        "(YAML would keep the last silently)"
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_ConfigYamlLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),
)


def _check_alias_expansion(root: Any) -> None:
    """Refuse a node graph whose expansion (aliases followed) exceeds its distinct nodes by more
    than MAX_ALIAS_EXPANSION. Linear in the distinct nodes: each node's expanded size is memoised."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if key in entered:  # reached again while its children are still being sized: `&a [*a]`
            raise ConfigFileError("a YAML alias (*name) refers to a value that contains it")
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    if sizes.get(id(root), 0) - len(sizes) > MAX_ALIAS_EXPANSION:
        raise ConfigFileError(
            f"YAML aliases (*name) expand it to {sizes[id(root)]:,} values from {len(sizes):,} written "
            f"(more than {MAX_ALIAS_EXPANSION:,} added is refused: an alias-expansion 'billion laughs')"
        )


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _parse_yaml(text: str) -> Any:
    loader = _ConfigYamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" in text:  # no anchor, no alias
            _check_alias_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_config_file(path: Path) -> Any:
    """Parse a .yaml/.yml/.toml file (the caller checked the suffix). Raises OSError,
    UnicodeDecodeError, ConfigFileError (too large, aliases, a repeated key), tomllib.TOMLDecodeError
    or yaml.YAMLError."""
    with path.open("rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigFileError(
            f"the file is larger than {MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES // (1024 * 1024)} MiB), "
            "the limit for a configuration file"
        )
    text = raw.decode("utf-8")
    # The parsers build many small objects: the cyclic collector would rescan them all repeatedly.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return _parse_yaml(text)
    finally:
        if was_enabled:
            gc.enable()
