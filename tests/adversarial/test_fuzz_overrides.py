"""Fuzz the override loader: any input gives a RateCard or one RateCardError naming file and entry.

Never another exception (a KeyError, a re.error, a decimal signal) and never a silently wrong card.
Bounded example counts keep CI fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from costspan.pricing import RateCard, RateCardError
from costspan.pricing.overrides import parse_overrides

FIELDS = [
    "model",
    "provider",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
]
FIELDS += ["effective_from"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "1.5",
            " 2 ",
            "-1",
            "1e999999999",
            "1e-999999999",
            "0.0000000000000000001",
            "NaN",
            "inf",
            "2026-02-30",
            "2026-01-01",
            "gpt-4o*",
            "[z-a]",
            "[!]",
            "[",
            "**",
            "acme-[0-9]?",
            "\\",
            "(",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
model_entries = st.dictionaries(st.sampled_from([*FIELDS, "price", "Model", ""]), values, max_size=8)
tool_tables = st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), values, max_size=4)
documents = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "models": st.one_of(st.lists(st.one_of(model_entries, values), max_size=4), values),
            "tools": st.one_of(tool_tables, values),
            "extra": values,
        },
    ),
)

PLACES = ("<top level>", "<file>", "models", "tools")


def assert_loads_or_names_the_place(source: Any, label: str) -> RateCard | None:
    try:
        if isinstance(source, Mapping | Path):
            card = RateCard.default().with_overrides(source)
        else:  # what a file whose top level is not a mapping parses into
            card = RateCard(_layers=(parse_overrides(source, label, "override:fuzz"),))
    except RateCardError as exc:
        message = str(exc)
        assert message.startswith(f"{label}: "), message  # the file
        assert message[len(label) + 2 :].startswith(PLACES), message  # the entry (and field)
        return None
    assert isinstance(card, RateCard)
    return card


def price_everything(card: RateCard, document: Any) -> None:
    """A card that loaded prices its own entries without raising anything but the documented ValueError."""
    for entry in (document.get("models") or []) if isinstance(document, dict) else []:
        model = entry.get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.strip():
            name = model.strip().replace("*", "x").replace("?", "x")
            card.price(None, name, input_tokens=1000, output_tokens=10, cache_read_tokens=10, start_time_ns=0)


@given(documents)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example({"models": [{"model": "[z-a]", "input_per_mtok": 1, "output_per_mtok": 1}]})
@example({"models": [{"model": "m", "input_per_mtok": "1e999999999", "output_per_mtok": 1}]})
@example({"models": [{"model": "m", "input_per_mtok": Decimal("1e-999999999"), "output_per_mtok": 1}]})
@example({"models": [{"model": "m", "input_per_mtok": 1, "output_per_mtok": 1, "effective_from": date.max}]})
@example({"tools": {"t": "1e999999999"}})
@example({"models": [{"model": "m", "input_per_mtok": 10**30, "output_per_mtok": 1}]})
def test_any_mapping_loads_or_fails_naming_entry_and_field(document: Any) -> None:
    card = assert_loads_or_names_the_place(document, "<mapping>")
    if card is not None:
        price_everything(card, document)


yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "models:",
                "  - model: gpt-4o",
                "  - model: '[z-a]'",
                "    input_per_mtok: 1.0",
                "    output_per_mtok: 1e999999999",
                "    effective_from: 2026-13-01",
                "    effective_from: 2026-01-01T00:00:00Z",
                "    cache_read_per_mtok: .nan",
                "    provider: [a, b]",
                "tools:",
                "  search: 0.1",
                "  ? [a, b]",
                "  : 1",
                "- a",
                "&a [*a]",
                "!!python/object:os.system {}",
                "!!binary aGk=",
                "\t bad indent",
                "models: *undefined",
                "x: !!timestamp 2001-12-14",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)
toml_text = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "[[models]]",
                'model = "gpt-4o"',
                "input_per_mtok = 1.0",
                "output_per_mtok = inf",
                "output_per_mtok = nan",
                "effective_from = 2026-01-01",
                "effective_from = 2026-01-01T10:00:00Z",
                "effective_from = 10:00:00",
                "[tools]",
                '"a.b" = 0.1',
                "x = [1, {a = 2}]",
                "models = 3",
                "= 1",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)


@given(st.one_of(yaml_text.map(lambda t: (".yaml", t)), toml_text.map(lambda t: (".toml", t))))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_file_loads_or_fails_naming_the_file(suffix_and_text: tuple[str, str]) -> None:
    suffix, text = suffix_and_text
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"prices{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        assert_loads_or_names_the_place(path, str(path))


@given(st.binary(max_size=100))
@settings(max_examples=100, deadline=None)
def test_undecodable_bytes_fail_naming_the_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prices.yml"
        path.write_bytes(data)
        assert_loads_or_names_the_place(path, str(path))
