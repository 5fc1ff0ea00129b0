"""Price overrides: load a YAML/TOML file (or a mapping), validate it, match entries to calls.

File shape::

    models:
      - model: "acme-llm-*"        # exact id or fnmatch glob, case-insensitive
        provider: acme             # optional
        input_per_mtok: 1.0        # USD per million tokens, required
        output_per_mtok: 2.0       # required (reasoning tokens are output tokens)
        cache_read_per_mtok: 0.1   # optional; absent: cache reads cost the input price
        cache_write_per_mtok: 1.25 # optional; absent: cache writes cost the input price
        effective_from: 2026-01-01 # optional, UTC date
    tools:
      clearbit.enrich: 0.10        # USD per call

Prices may be numbers or numeric strings; they are read with ``Decimal(str(value))`` and may have at
most 18 decimal places.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import translate
from pathlib import Path
from typing import Any

import yaml

from .config_files import EXCERPT_CHARS, ConfigFileError, excerpt, read_config_file
from .errors import RateCardError
from .money import PriceBreakdown, UsdCost, units_from_usd, usd_cost
from .providers import map_provider

MAPPING_LABEL = "<mapping>"
_TOP_LEVEL = frozenset({"models", "tools"})
_PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")
_FIELDS = frozenset({"model", "provider", "effective_from", *_PRICE_FIELDS})
_MAX_DECIMALS = 18
_MAX_PRICE = Decimal(1_000_000)  # USD per million tokens or per tool call
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NS_PER_DAY = 86_400 * 10**9
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class OverrideEntry:
    """One ``models:`` entry with prices as units per token."""

    pattern: str
    regex: re.Pattern[str] | None  # None for an exact name (compiled only for globs)
    is_glob: bool
    provider: str | None
    provider_ids: frozenset[str]
    from_ns: int | None
    input_rate: int
    output_rate: int
    cache_read_rate: int | None
    cache_write_rate: int | None
    index: int
    source: str

    def matches(self, names: tuple[str, ...], providers: frozenset[str]) -> bool:
        if self.provider is not None and not (self.provider_ids & providers):
            return False
        if self.regex is None:
            return self.pattern in names
        return any(self.regex.match(name) for name in names)

    def cost(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> PriceBreakdown:
        uncached = inp
        cache_read = cache_write = 0
        if self.cache_read_rate is not None:
            uncached -= cr
            cache_read = cr * self.cache_read_rate
        if self.cache_write_rate is not None:
            uncached -= cw
            cache_write = cw * self.cache_write_rate
        return PriceBreakdown(
            input=uncached * self.input_rate,
            output=out * self.output_rate,
            cache_read=cache_read,
            cache_write=cache_write,
            source=self.source,
        )

    def cost_usd(self, inp: int, out: int, cr: int, cw: int, rs: int, ts_ns: int) -> UsdCost:
        return usd_cost(self.cost(inp, out, cr, cw, rs, ts_ns))

    def sort_key(self) -> tuple[int, int, int, int]:
        # Latest effective_from first; on a tie exact names beat globs, provider-specific beats
        # generic, and earlier entries beat later ones.
        from_ns = self.from_ns if self.from_ns is not None else -(2**63)
        return (-from_ns, int(self.is_glob), int(self.provider is None), self.index)


@dataclass(frozen=True, slots=True)
class OverrideTable:
    entries: tuple[OverrideEntry, ...]
    tools: Mapping[str, int]  # units per call
    source: str
    # Exact names looked up by name, so a large table costs one dict probe per candidate name;
    # only globs are tried one by one.
    exact: Mapping[str, tuple[OverrideEntry, ...]]
    globs: tuple[OverrideEntry, ...]

    @classmethod
    def of(cls, entries: tuple[OverrideEntry, ...], tools: Mapping[str, int], source: str) -> OverrideTable:
        exact: dict[str, list[OverrideEntry]] = {}
        for entry in entries:
            if not entry.is_glob:
                exact.setdefault(entry.pattern, []).append(entry)
        globs = tuple(entry for entry in entries if entry.is_glob)
        return cls(entries, tools, source, {name: tuple(found) for name, found in exact.items()}, globs)

    def matching(self, names: tuple[str, ...], providers: frozenset[str]) -> tuple[OverrideEntry, ...]:
        found = [
            entry
            for name in names
            for entry in self.exact.get(name, ())
            if entry.provider is None or entry.provider_ids & providers
        ]
        found += [entry for entry in self.globs if entry.matches(names, providers)]
        return tuple(sorted(found, key=OverrideEntry.sort_key))


class _Where:
    """Builds the one-line error message: file, entry, field, value."""

    def __init__(self, label: str) -> None:
        self.label = label

    def error(self, entry: str, field: str | None, problem: str, value: object = ...) -> RateCardError:
        place = f"{entry}.{field}" if field is not None else entry
        if len(place) > EXCERPT_CHARS:  # a hostile key or tool name
            place = place[: EXCERPT_CHARS - 3] + "..."
        got = "" if value is ... else f" (got {excerpt(value)})"
        return RateCardError(f"{self.label}: {place}: {problem}{got}")


def _price(where: _Where, entry: str, field: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise where.error(entry, field, "must be a number", value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise where.error(entry, field, "must be a number", value) from None
    if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise where.error(entry, field, "must be finite", value)
    if number < 0:
        raise where.error(entry, field, "must not be negative", value)
    if number > _MAX_PRICE:  # also keeps "1e999999999" from building a billion-digit integer
        raise where.error(entry, field, f"must be at most {_MAX_PRICE} USD", value)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > _MAX_DECIMALS:
        raise where.error(entry, field, f"has more than {_MAX_DECIMALS} decimal places", value)
    return number


def _exact_units(number: Decimal, per: int) -> int:
    units = units_from_usd(number, per=per)
    assert units is not None  # at most 18 decimals, so always a whole number of units
    return units


def _rate(number: Decimal) -> int:
    return _exact_units(number, 1_000_000)


def _effective_from(where: _Where, entry: str, value: object) -> int:
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise where.error(entry, "effective_from", "must be a date written yyyy-mm-dd", value)
    if isinstance(value, str):
        if not _ISO_DATE.match(value.strip()):
            raise where.error(entry, "effective_from", "must be a date written yyyy-mm-dd", value)
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise where.error(entry, "effective_from", "is not a valid date", value) from None
    return (value - date(1970, 1, 1)).days * _NS_PER_DAY


def _glob(where: _Where, entry: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(entry, "model", "must be a non-empty string", value)
    pattern = value.strip().lower()
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                raise where.error(entry, "model", "has an unbalanced '['", value)
            i = close
        i += 1
    return pattern


def _model_entry(where: _Where, index: int, raw: object, source: str) -> OverrideEntry:
    entry = f"models[{index}]"
    if not isinstance(raw, Mapping):
        raise where.error(entry, None, "must be a mapping", raw)
    for key in raw:
        if key not in _FIELDS:
            raise where.error(entry, str(key), "unknown field", raw[key])
    for required in ("model", "input_per_mtok", "output_per_mtok"):
        if required not in raw:
            raise where.error(entry, required, "is required")
    pattern = _glob(where, entry, raw["model"])
    provider: str | None = None
    if (raw_provider := raw.get("provider")) is not None:
        if not isinstance(raw_provider, str) or not raw_provider.strip():
            raise where.error(entry, "provider", "must be a non-empty string", raw_provider)
        provider = raw_provider.strip().lower()
    prices = {field: _price(where, entry, field, raw[field]) for field in _PRICE_FIELDS if field in raw}
    from_ns = _effective_from(where, entry, raw["effective_from"]) if "effective_from" in raw else None
    provider_ids = frozenset({provider, map_provider(provider)} - {None}) if provider else frozenset()
    is_glob = any(char in _GLOB_CHARS for char in pattern)
    return OverrideEntry(
        pattern=pattern,
        regex=re.compile(translate(pattern)) if is_glob else None,
        is_glob=is_glob,
        provider=provider,
        provider_ids=provider_ids,  # type: ignore[arg-type]
        from_ns=from_ns,
        input_rate=_rate(prices["input_per_mtok"]),
        output_rate=_rate(prices["output_per_mtok"]),
        cache_read_rate=_rate(prices["cache_read_per_mtok"]) if "cache_read_per_mtok" in prices else None,
        cache_write_rate=_rate(prices["cache_write_per_mtok"]) if "cache_write_per_mtok" in prices else None,
        index=index,
        source=source,
    )


def parse_overrides(data: object, label: str, source: str) -> OverrideTable:
    """Validate an already-parsed override document."""
    where = _Where(label)
    if not isinstance(data, Mapping):
        raise where.error("<top level>", None, "must be a mapping", type(data).__name__)
    for key in data:
        if key not in _TOP_LEVEL:
            raise where.error("<top level>", str(key), "unknown key (expected 'models' and/or 'tools')")
    raw_models = data.get("models") or []
    if not isinstance(raw_models, list | tuple):
        raise where.error("models", None, "must be a list", raw_models)
    entries: list[OverrideEntry] = []
    seen: dict[tuple[str, str | None, int | None], int] = {}
    for index, raw in enumerate(raw_models):
        entry = _model_entry(where, index, raw, source)
        key = (entry.pattern, entry.provider, entry.from_ns)
        if key in seen:
            raise where.error(
                f"models[{index}]",
                "model",
                f"duplicates models[{seen[key]}] (same model, provider, effective_from)",
                entry.pattern,
            )
        seen[key] = index
        entries.append(entry)
    raw_tools = data.get("tools") or {}
    if not isinstance(raw_tools, Mapping):
        raise where.error("tools", None, "must be a mapping of tool name to USD per call", raw_tools)
    tools: dict[str, int] = {}
    for name, value in raw_tools.items():
        if not isinstance(name, str) or not name.strip():
            raise where.error(f"tools.{name}", "name", "tool name must be a non-empty string", name)
        price = _price(where, f"tools.{name}", "price", value)
        tools[name.strip()] = _exact_units(price, 1)
    return OverrideTable.of(tuple(entries), tools, source)


def load_overrides(source: str | os.PathLike[str] | Mapping[str, Any]) -> OverrideTable:
    """Load and validate overrides from a .yaml/.yml/.toml file or a mapping."""
    if isinstance(source, Mapping):
        return parse_overrides(source, MAPPING_LABEL, f"override:{MAPPING_LABEL}")
    path = Path(source)
    label = str(source)
    where = _Where(label)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise where.error("<file>", None, "must end in .yaml, .yml or .toml", path.suffix)
    try:
        data = read_config_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error("<file>", None, f"cannot read file: {exc}") from None
    except ConfigFileError as exc:
        raise where.error("<file>", None, str(exc)) from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise where.error("<file>", None, f"cannot parse {suffix[1:].upper()}: {problem}") from None
    if data is None:
        data = {}
    return parse_overrides(data, label, f"override:{path.name}")
