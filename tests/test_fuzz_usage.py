"""Fuzz the usage normaliser and call pricing: any attribute mapping yields Usage, None or
InvalidUsage from `usage_of`, and a tally (never an exception) from the pricer."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costspan import attributes as A
from costspan.pricing import RateCard
from costspan.rollup.call_pricing import COST, INPUT, LLM_CALLS, TALLY_SIZE, UNPRICED, CallPricer
from costspan.rollup.usage import (
    MAX_TOKENS,
    InvalidUsage,
    Usage,
    is_llm_call,
    model_of,
    provider_of,
    usage_of,
)

TOKEN_KEYS = [
    A.GEN_AI_USAGE_INPUT_TOKENS,
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    A.GEN_AI_USAGE_PROMPT_TOKENS,
    A.GEN_AI_USAGE_COMPLETION_TOKENS,
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.prompt_details.cache_write",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.reasoning_tokens",
]
OTHER_KEYS = [
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_PROVIDER_NAME,
    A.GEN_AI_SYSTEM,
    A.GEN_AI_REQUEST_MODEL,
    A.GEN_AI_RESPONSE_MODEL,
    A.GEN_AI_USAGE_COST,
    A.COST_STATUS,
    "llm.model_name",
    "llm.provider",
]

# What span attributes can hold (OTel allows str, bool, int, float and homogeneous sequences of them),
# plus what a careless mapping might: None, huge ints, NaN.
token_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["12", "", "1e3", "-1", " 7 "]),
    st.none(),
    st.tuples(st.integers(0, 10)),
)
names = st.one_of(
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6", "models/gemini-2.5-flash", "o3"]),
    st.sampled_from(["openai", "anthropic", "gcp.gemini", "aws.bedrock", "", "OPENAI"]),
    st.text(max_size=30),
    st.integers(),
    st.none(),
    st.floats(),
)
attribute_maps = st.dictionaries(
    st.one_of(st.sampled_from(TOKEN_KEYS), st.sampled_from(OTHER_KEYS), st.text(max_size=10)),
    st.one_of(token_values, names),
    max_size=12,
)


@given(attribute_maps, st.one_of(st.none(), st.text(max_size=30), st.just("com.anthropic.sdk.python")))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_usage_of_yields_usage_none_or_invalid_usage(attributes: dict[str, Any], scope: str | None) -> None:
    assert isinstance(is_llm_call(attributes, scope), bool)
    assert model_of(attributes) is None or isinstance(model_of(attributes), str)
    assert provider_of(attributes) is None or isinstance(provider_of(attributes), str)
    try:
        usage = usage_of(attributes, scope)
    except InvalidUsage:
        return
    if usage is not None:
        assert isinstance(usage, Usage)
        assert all(type(n) is int and 0 <= n <= MAX_TOKENS for n in usage)


PRICER = CallPricer(RateCard.default())


@given(attribute_maps, st.booleans(), st.integers(min_value=0, max_value=2**62))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pricing_any_attributes_yields_a_tally(
    attributes: dict[str, Any], failed: bool, start_ns: int
) -> None:
    out: dict[str, Any] = {}
    tally = PRICER.price_llm(attributes, failed, start_ns, out)
    assert len(tally) == TALLY_SIZE and tally[LLM_CALLS] == 1
    assert all(type(n) is int for n in tally)
    assert tally[COST] >= 0 and tally[INPUT] >= 0
    if out.get(A.COST_STATUS) in ("invalid_usage", "unknown_model"):
        assert tally[UNPRICED] == 1 and A.GEN_AI_USAGE_COST not in out
    if A.GEN_AI_USAGE_COST in out:
        assert out[A.COST_STATUS] == "priced"
