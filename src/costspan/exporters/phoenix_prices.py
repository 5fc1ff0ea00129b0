"""`costspan push-prices --phoenix URL`: make Phoenix price models as costspan's override file does.

Phoenix does not read a span's own cost (`llm.cost.*`, Arize-ai/phoenix#15240): it prices each
LLM span's tokens from its model table, where custom models win over built-in ones. This command
writes one custom model per `models:` entry of the override file (COSTSPAN_PRICES or `--prices`)
through Phoenix's GraphQL API, named `costspan <model> [provider] [from date]`, so re-running it
changes nothing unless the file changed; custom models with that prefix that the file no longer
has are deleted. It says what it created, updated, deleted or left alone.

Only the standard library is used (urllib), so it needs no extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fnmatch import translate
from typing import Any

from costspan.pricing import RateCardError
from costspan.pricing.overrides import OverrideEntry, load_overrides

NAME_PREFIX = "costspan "
PRICES_ENV = "COSTSPAN_PRICES"
API_KEY_ENV = "PHOENIX_API_KEY"
# Suffixes costspan's model-name normalisation drops (costspan.pricing.normalise): a dated snapshot
# (`gpt-4o-2024-08-06`), a version (`-v1:0`, `:0`, `-001`) or `-latest`.
_SUFFIXES = r"(?:-(?:20\d\d-\d\d-\d\d|20\d{6})|-v\d+(?::\d+)?|:\d+|-\d{3}|-latest)*"
_UNITS_PER_USD_PER_MTOK = Decimal(10) ** 18  # an entry's rate is 1e-24 USD per token
_TIMEOUT_S = 30.0

_MODELS_QUERY = """
query {
  generativeModels(first: 100000) {
    edges { node { id name provider namePattern kind startTime
                   tokenPrices { tokenType kind costPerMillionTokens } } }
  }
}"""
_CREATE = """
mutation($input: CreateModelMutationInput!) { createModel(input: $input) { model { id } } }"""
_UPDATE = """
mutation($input: UpdateModelMutationInput!) { updateModel(input: $input) { model { id } } }"""
_DELETE = """
mutation($input: DeleteModelMutationInput!) { deleteModel(input: $input) { model { id } } }"""


class PhoenixError(Exception):
    """Phoenix refused or could not be reached: the message says which request and why."""


@dataclass(frozen=True)
class PhoenixModel:
    """A custom model as Phoenix stores it (prices per million tokens, by token type)."""

    name: str
    provider: str
    name_pattern: str
    prompt_prices: tuple[tuple[str, float], ...]
    completion_prices: tuple[tuple[str, float], ...]
    start_time: datetime | None

    def mutation_input(self) -> dict[str, Any]:
        costs = [
            {"tokenType": token_type, "costPerMillionTokens": price, "kind": "PROMPT"}
            for token_type, price in self.prompt_prices
        ] + [
            {"tokenType": token_type, "costPerMillionTokens": price, "kind": "COMPLETION"}
            for token_type, price in self.completion_prices
        ]
        return {
            "name": self.name,
            "provider": self.provider or None,
            "namePattern": self.name_pattern,
            "costs": costs,
            "startTime": self.start_time.isoformat() if self.start_time else None,
        }


def name_pattern(glob: str) -> str:
    """The regular expression Phoenix searches the span's model name with, for an override's
    model glob: case-insensitive, whole name, with the provider prefix and the date or version
    suffixes that costspan's normalisation ignores."""
    body = translate(glob).removesuffix(r"\Z")  # `(?s:...)`
    return rf"(?i)^(?:[^/]+/)?{body}{_SUFFIXES}$"


def _per_mtok(rate: int) -> float:
    return float(Decimal(rate) / _UNITS_PER_USD_PER_MTOK)


def phoenix_model(entry: OverrideEntry) -> PhoenixModel:
    """The Phoenix custom model that prices calls as this override entry does."""
    name = NAME_PREFIX + entry.pattern
    if entry.provider:
        name += f" [{entry.provider}]"
    start = None
    if entry.from_ns is not None:
        start = datetime.fromtimestamp(entry.from_ns / 1e9, tz=UTC)
        name += f" from {start.date().isoformat()}"
    prompt = [("input", _per_mtok(entry.input_rate))]
    # Absent: Phoenix prices these token types at the input price, as costspan does.
    if entry.cache_read_rate is not None:
        prompt.append(("cache_read", _per_mtok(entry.cache_read_rate)))
    if entry.cache_write_rate is not None:
        prompt.append(("cache_write", _per_mtok(entry.cache_write_rate)))
    return PhoenixModel(
        name=name,
        provider=entry.provider or "",
        name_pattern=name_pattern(entry.pattern),
        prompt_prices=tuple(prompt),
        # Reasoning tokens are output tokens: Phoenix prices them at the output price.
        completion_prices=(("output", _per_mtok(entry.output_rate)),),
        start_time=start,
    )


class PhoenixModels:
    """Phoenix's GraphQL model table at `base_url`."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.url = base_url.rstrip("/") + "/graphql"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"

    def _call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            raise PhoenixError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PhoenixError(f"{self.url}: {exc}") from None
        if answer.get("errors"):
            messages = "; ".join(str(error.get("message")) for error in answer["errors"])
            raise PhoenixError(f"{self.url}: {messages}")
        data: dict[str, Any] = answer.get("data") or {}
        return data

    def custom(self) -> dict[str, tuple[str, PhoenixModel]]:
        """Custom models by name: (Phoenix id, model)."""
        data = self._call(_MODELS_QUERY)
        found: dict[str, tuple[str, PhoenixModel]] = {}
        for edge in data["generativeModels"]["edges"]:
            node = edge["node"]
            if node["kind"] != "CUSTOM":
                continue
            prices = node["tokenPrices"]
            start = node["startTime"]
            found[node["name"]] = (
                node["id"],
                PhoenixModel(
                    name=node["name"],
                    provider=node["provider"] or "",
                    name_pattern=node["namePattern"],
                    prompt_prices=tuple(
                        (p["tokenType"], p["costPerMillionTokens"]) for p in prices if p["kind"] == "PROMPT"
                    ),
                    completion_prices=tuple(
                        (p["tokenType"], p["costPerMillionTokens"])
                        for p in prices
                        if p["kind"] == "COMPLETION"
                    ),
                    start_time=datetime.fromisoformat(start) if start else None,
                ),
            )
        return found

    def create(self, model: PhoenixModel) -> None:
        self._call(_CREATE, {"input": model.mutation_input()})

    def update(self, model_id: str, model: PhoenixModel) -> None:
        self._call(_UPDATE, {"input": {"id": model_id, **model.mutation_input()}})

    def delete(self, model_id: str) -> None:
        self._call(_DELETE, {"input": {"id": model_id}})


def _same(stored: PhoenixModel, wanted: PhoenixModel) -> bool:
    return (
        stored.provider == wanted.provider
        and stored.name_pattern == wanted.name_pattern
        and sorted(stored.prompt_prices) == sorted(wanted.prompt_prices)
        and sorted(stored.completion_prices) == sorted(wanted.completion_prices)
        and stored.start_time == wanted.start_time
    )


def push_prices(
    phoenix: PhoenixModels, entries: Sequence[OverrideEntry], *, dry_run: bool = False
) -> list[str]:
    """Make Phoenix's custom models match `entries`; one line per model saying what was done."""
    wanted = {model.name: model for model in map(phoenix_model, entries)}
    stored = phoenix.custom()
    lines: list[str] = []
    for name, model in wanted.items():
        prices = ", ".join(f"{t} ${p:g}/Mtok" for t, p in (*model.prompt_prices, *model.completion_prices))
        if name not in stored:
            if not dry_run:
                phoenix.create(model)
            lines.append(f"created   {name}: {prices}")
        elif _same(stored[name][1], model):
            lines.append(f"unchanged {name}")
        else:
            if not dry_run:
                phoenix.update(stored[name][0], model)
            lines.append(f"updated   {name}: {prices}")
    for name, (model_id, _) in sorted(stored.items()):
        if name.startswith(NAME_PREFIX) and name not in wanted:
            if not dry_run:
                phoenix.delete(model_id)
            lines.append(f"deleted   {name} (no longer in the price file)")
    return lines


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="costspan push-prices",
        description="Make Phoenix's model table price every model of your override file as costspan does.",
    )
    parser.add_argument(
        "--phoenix", required=True, metavar="URL", help="Phoenix base URL, e.g. http://localhost:6006"
    )
    parser.add_argument(
        "--prices", metavar="FILE", help=f"override file (.yaml, .yml, .toml); default ${PRICES_ENV}"
    )
    parser.add_argument("--api-key", help=f"Phoenix API key when auth is on; default ${API_KEY_ENV}")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(list(argv))
    path = args.prices or os.environ.get(PRICES_ENV)
    if not path:
        print(f"costspan push-prices: no price file: pass --prices FILE or set {PRICES_ENV}", file=sys.stderr)
        return 2
    try:
        table = load_overrides(path)
    except RateCardError as exc:
        print(f"costspan push-prices: {exc}", file=sys.stderr)
        return 2
    if not table.entries:
        print(f"costspan push-prices: {path} has no models: entries; nothing to push", file=sys.stderr)
    phoenix = PhoenixModels(args.phoenix, args.api_key or os.environ.get(API_KEY_ENV))
    try:
        lines = push_prices(phoenix, table.entries, dry_run=args.dry_run)
    except PhoenixError as exc:
        print(f"costspan push-prices: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(("(dry run) " if args.dry_run else "") + line)
    if table.tools:
        print(f"note: {len(table.tools)} tool price(s) not pushed: Phoenix prices LLM spans only")
    return 0


__all__ = [
    "PhoenixError",
    "PhoenixModel",
    "PhoenixModels",
    "main",
    "name_pattern",
    "phoenix_model",
    "push_prices",
]
