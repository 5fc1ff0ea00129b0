"""Model-name normalisation: turn what instrumentations report into names the price data knows.

``candidates()`` returns progressively more aggressive rewrites, so a dated snapshot that has its own
price (``gpt-4o-2024-05-13``) is found before the undated alias is tried.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Prefixes before "/" that name a vendor (``openai/gpt-4o``); they also hint the provider.
_SLASH_PROVIDERS = frozenset(
    {
        "openai",
        "anthropic",
        "google",
        "gemini",
        "vertex_ai",
        "vertex",
        "mistral",
        "mistralai",
        "deepseek",
        "groq",
        "cohere",
        "xai",
        "x-ai",
        "x_ai",
        "perplexity",
        "bedrock",
        "azure",
        "together",
        "together_ai",
        "fireworks",
        "openrouter",
    }
)
# Prefixes before "/" that carry no meaning for pricing.
_SLASH_NOISE = frozenset({"models", "publishers", "model"})

# Bedrock ids: optional cross-region inference prefix, then the vendor: ``us.anthropic.claude-...``.
_BEDROCK_RE = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov|jp|au|ca|regional)\.)?"
    r"(anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs)\.(?=[a-z0-9])"
)
_BEDROCK_VENDOR_PROVIDER = {
    "anthropic": "anthropic",
    "mistral": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "openai": "openai",
    "amazon": "aws",
    "meta": "aws",
}

_VERSION_SUFFIX_RE = re.compile(r"(?:-v\d+(?::\d+)?|:\d+)$")  # -v1:0, -v2, :0
_LATEST_RE = re.compile(r"-latest$")
_DATE_SUFFIX_RE = re.compile(r"-(?:20\d\d-\d\d-\d\d|20\d{6})$")  # -2024-08-06, -20240806
_NUMBER_SUFFIX_RE = re.compile(r"-\d{3}$")  # gemini-2.5-flash-001


class SplitName(NamedTuple):
    provider_hint: str | None
    name: str


def split_prefix(model: str) -> SplitName:
    """Strip vendor/noise prefixes; return the provider they name (if any) and the rest."""
    name = model.strip().lower()
    hint: str | None = None
    while "/" in name:
        head, rest = name.split("/", 1)
        if head in _SLASH_NOISE:
            name = rest
        elif head in _SLASH_PROVIDERS:
            hint = hint or head
            name = rest
        else:
            break
    if match := _BEDROCK_RE.match(name):
        hint = hint or _BEDROCK_VENDOR_PROVIDER.get(match.group(1))
        name = name[match.end() :]
    return SplitName(hint, name)


def _strip_suffixes(name: str, *, drop_dates: bool) -> str:
    previous = None
    while previous != name:
        previous = name
        name = _VERSION_SUFFIX_RE.sub("", name)
        name = _LATEST_RE.sub("", name)
        if drop_dates:
            name = _DATE_SUFFIX_RE.sub("", name)
            name = _NUMBER_SUFFIX_RE.sub("", name)
    return name


def candidates(model: str) -> tuple[str, ...]:
    """Names to try in order: raw (lower-cased), prefix-free, then without version and date suffixes."""
    raw = model.strip().lower()
    _, bare = split_prefix(raw)
    # Vertex writes the snapshot date after "@": claude-3-5-sonnet@20240620.
    dated = bare.replace("@", "-")
    steps = (
        raw,
        bare,
        dated,
        _strip_suffixes(dated, drop_dates=False),
        _strip_suffixes(dated, drop_dates=True),
    )
    out: list[str] = []
    for step in steps:
        if step and step not in out:
            out.append(step)
    return tuple(out)


def normalise(model: str) -> str:
    """The most aggressive normal form of a model name (lower case, no prefix, no date/version)."""
    return candidates(model)[-1]


def provider_hint(model: str) -> str | None:
    """The provider named by a model-name prefix (``openai/gpt-4o`` -> ``openai``), if any."""
    return split_prefix(model).provider_hint
