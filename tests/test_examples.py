"""Every example in examples/, run as a user runs it: `python examples/x.py`, in a child process, with
no provider API keys and no OTEL_* / COSTSPAN_* settings, so each starts costspan's fake providers
itself. The dollars expected below are worked out by hand from the models' published prices per
million tokens and the fake providers' token counts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.testing.all_providers import DEFAULT_USAGE, AllProvidersServer
from zero_code import HTTP_CLIENT_INSTRUMENTATIONS

pytest.importorskip("openai")
pytest.importorskip("anthropic")
pytest.importorskip("google.genai")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIN = Path(sys.executable).parent
TIMEOUT_S = 60

# genai-prices 0.2.3 (bundled), USD per million tokens: (input, output).
MTOK = Decimal(1_000_000)
GPT_4O = (Decimal("2.50"), Decimal("10"))
GPT_4O_MINI = (Decimal("0.15"), Decimal("0.60"))
CLAUDE_HAIKU_4_5 = (Decimal("1"), Decimal("5"))
CLAUDE_SONNET_4_6 = (Decimal("3"), Decimal("15"))
GEMINI_2_5_FLASH = (Decimal("0.30"), Decimal("2.50"))

# What the fake providers report on every reply (costspan.testing.all_providers.DEFAULT_USAGE).
OPENAI_TOKENS = (1200, 300)
ANTHROPIC_TOKENS = (1500, 400)  # Anthropic's input_tokens: no cache here, so all of it is input
GEMINI_TOKENS = (2000, 250)


def cost(prices: tuple[Decimal, Decimal], tokens: tuple[int, int]) -> Decimal:
    return (tokens[0] * prices[0] + tokens[1] * prices[1]) / MTOK


def usd6(value: Decimal) -> str:
    """How the examples print exact dollars."""
    return f"${value:.6f}"


def tree_usd(value: Decimal) -> str:
    """How the console cost tree prints dollars: 4 decimals; below a cent, more where needed to keep
    up to 4 significant digits ($0.00036, not $0.0004)."""
    if value == 0 or value >= Decimal("0.01"):
        return f"${value:.4f}"
    significant = value.quantize(Decimal(1).scaleb(value.adjusted() - 3)).normalize()
    return f"${significant:f}" if -significant.as_tuple().exponent > 4 else f"${value:.4f}"


GPT_4O_CALL = cost(GPT_4O, OPENAI_TOKENS)  # $0.006
GPT_4O_MINI_CALL = cost(GPT_4O_MINI, OPENAI_TOKENS)  # $0.00036
HAIKU_CALL = cost(CLAUDE_HAIKU_4_5, ANTHROPIC_TOKENS)  # $0.0035
SONNET_CALL = cost(CLAUDE_SONNET_4_6, ANTHROPIC_TOKENS)  # $0.0105
FLASH_CALL = cost(GEMINI_2_5_FLASH, GEMINI_TOKENS)  # $0.001225
OPENAI_USAGE_TEXT = "1,200 in / 300 out"
ANTHROPIC_USAGE_TEXT = "1,500 in / 400 out"
GEMINI_USAGE_TEXT = "2,000 in / 250 out"

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
BASE_URL_VARIABLES = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL")


def offline_env(**extra: str) -> dict[str, str]:
    """The test run's environment without provider keys, base URLs, OTEL_* or COSTSPAN_*."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in KEY_VARIABLES + BASE_URL_VARIABLES
        and not key.startswith(("OTEL_", "COSTSPAN_", "ANTHROPIC_", "OPENAI_", "GOOGLE_"))
        and key != "PYTHONPATH"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = HTTP_CLIENT_INSTRUMENTATIONS  # no HTTP spans in the trees
    env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    instrument: tuple[str, ...] | None = None  # opentelemetry-instrument options, None: plain python


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def execute(run: Run) -> Result:
    command = [sys.executable, str(EXAMPLES / run.name), *run.argv]
    if run.instrument is not None:
        command = [str(BIN / "opentelemetry-instrument"), *run.instrument, *command]
    done = subprocess.run(
        command, env=run.env, cwd=EXAMPLES.parent, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def real_api() -> Iterator[AllProvidersServer]:
    """Stands in for the providers' real APIs: where an example goes when a key is set."""
    with AllProvidersServer() as server:
        yield server


ALL_KEYS = {
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "gm-test",
}


@pytest.fixture(scope="module")
def results(real_api: AllProvidersServer) -> dict[str, Result]:
    """Every run, started together (each is mostly interpreter start-up)."""
    runs = {
        "lead_enrichment": Run("lead_enrichment.py", (), offline_env()),
        "lead_enrichment_instrumented": Run(
            "lead_enrichment.py",
            (),
            offline_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none"),
            instrument=(),
        ),
        "react_loop": Run("react_loop.py", (), offline_env()),
        "react_loop_budget": Run("react_loop.py", ("--budget", "0.003"), offline_env()),
        "document_pipeline": Run("document_pipeline.py", (), offline_env()),
        "multi_provider": Run("multi_provider.py", (), offline_env()),
        "multi_provider_openai_key": Run(
            "multi_provider.py",
            (),
            offline_env(OPENAI_API_KEY="sk-test-openai", OPENAI_BASE_URL=real_api.openai_base_url),
        ),
        "web_service": Run("web_service.py", (), offline_env()),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(runs, pool.map(execute, runs.values()), strict=True))
    # Run alone, after the others: it counts what reaches the stand-in for the real APIs.
    real_api.requests.clear()
    done["multi_provider_all_keys"] = execute(
        Run("multi_provider.py", (), offline_env(**{**real_api.environment(), **ALL_KEYS}))
    )
    return done


def succeeded(result: Result, allowed_stderr: Sequence[str] = ()) -> str:
    """The run's stdout, once it exited 0 with nothing on stderr but the `allowed_stderr` lines."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == list(allowed_stderr), result.stderr
    return result.stdout


# --------------------------------------------------------------------------------------------------
# Reading the console cost tree
# --------------------------------------------------------------------------------------------------

Node = tuple[str, tuple["Node", ...]]
_BRANCH = re.compile(r"^((?:│  |   )*)(├─ |└─ )(.*)$")


def node(label: str, *children: Node) -> Node:
    return (label, children)


def trees(stdout: str, root_name: str) -> list[tuple[str, tuple[Node, ...]]]:
    """Every printed tree whose root span is `root_name`: (root line, children)."""
    lines = stdout.splitlines()
    found = []
    for start, line in enumerate(lines):
        if not line.startswith(root_name + "  $"):
            continue
        top: list[list[object]] = []
        stack: list[list[list[object]]] = [top]
        for branch in lines[start + 1 :]:
            match = _BRANCH.match(branch)
            if match is None:
                break
            depth = len(match.group(1)) // 3
            entry: list[object] = [match.group(3), []]
            stack[depth].append(entry)
            del stack[depth + 1 :]
            stack.append(entry[1])  # type: ignore[arg-type]
        found.append((line, freeze(top)))
    return found


def freeze(entries: list[list[object]]) -> tuple[Node, ...]:
    return tuple((str(label), freeze(children)) for label, children in entries)  # type: ignore[arg-type]


def one_tree(stdout: str, root_name: str) -> tuple[str, tuple[Node, ...]]:
    found = trees(stdout, root_name)
    assert len(found) == 1, stdout
    return found[0]


def unordered(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    return tuple(sorted((label, unordered(children)) for label, children in nodes))


def root_line(name: str, total: Decimal, calls: str, attribution: str) -> re.Pattern[str]:
    return re.compile(
        re.escape(f"{name}  {tree_usd(total)} total  {calls}  {attribution} task_id=") + r"[0-9a-f]{32}$"
    )


def test_fake_usage_is_what_the_hand_arithmetic_uses() -> None:
    assert (DEFAULT_USAGE.openai.prompt_tokens, DEFAULT_USAGE.openai.completion_tokens) == OPENAI_TOKENS
    assert (DEFAULT_USAGE.anthropic.input_tokens, DEFAULT_USAGE.anthropic.output_tokens) == ANTHROPIC_TOKENS
    assert (DEFAULT_USAGE.gemini.prompt_tokens, DEFAULT_USAGE.gemini.candidates_tokens) == GEMINI_TOKENS
    assert (
        DEFAULT_USAGE.anthropic.cache_read_input_tokens
        == DEFAULT_USAGE.anthropic.cache_creation_input_tokens
        == 0
    )
    assert DEFAULT_USAGE.openai.cached_tokens == DEFAULT_USAGE.gemini.cached_tokens == 0


def test_every_example_is_tested() -> None:
    examples = {path.stem for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
    assert examples == {"lead_enrichment", "react_loop", "document_pipeline", "multi_provider", "web_service"}


# --------------------------------------------------------------------------------------------------
# lead_enrichment.py
# --------------------------------------------------------------------------------------------------

CLEARBIT = Decimal("0.10")
COMPANY_RESEARCH = GPT_4O_MINI_CALL + CLEARBIT + GPT_4O_CALL
PERSON_RESEARCH = GPT_4O_MINI_CALL + HAIKU_CALL
WRITER = SONNET_CALL
LEAD_TOTAL = COMPANY_RESEARCH + PERSON_RESEARCH + WRITER  # $0.12072


def lead_tree() -> tuple[Node, ...]:
    mini = f"chat gpt-4o-mini  {tree_usd(GPT_4O_MINI_CALL)}  {OPENAI_USAGE_TEXT}"
    return (
        node(
            f"invoke_agent company-research  {tree_usd(COMPANY_RESEARCH)}",
            node(f"search  {tree_usd(GPT_4O_MINI_CALL)}", node(mini)),
            node(f"execute_tool clearbit.enrich  {tree_usd(CLEARBIT)}"),
            node(
                f"extract  {tree_usd(GPT_4O_CALL)}",
                node(f"chat gpt-4o  {tree_usd(GPT_4O_CALL)}  {OPENAI_USAGE_TEXT}"),
            ),
        ),
        node(
            f"invoke_agent person-research  {tree_usd(PERSON_RESEARCH)}",
            node(f"find-contacts  {tree_usd(GPT_4O_MINI_CALL)}", node(mini)),
            node(
                f"score  {tree_usd(HAIKU_CALL)}",
                node(f"chat claude-haiku-4-5  {tree_usd(HAIKU_CALL)}  {ANTHROPIC_USAGE_TEXT}"),
            ),
        ),
        node(
            f"invoke_agent writer  {tree_usd(WRITER)}",
            node(
                f"draft-email  {tree_usd(WRITER)}",
                node(f"chat claude-sonnet-4-6  {tree_usd(SONNET_CALL)}  {ANTHROPIC_USAGE_TEXT}"),
            ),
        ),
    )


def lead_summary() -> list[str]:
    return [
        f"lead-enrichment for cus_8821: {usd6(LEAD_TOTAL)} in 5 LLM calls and 1 tool call",
        f"  company-research  {usd6(COMPANY_RESEARCH)}  (2 LLM calls)",
        f"  person-research   {usd6(PERSON_RESEARCH)}  (2 LLM calls)",
        f"  writer            {usd6(WRITER)}  (1 LLM call)",
    ]


def test_lead_enrichment(results: dict[str, Result]) -> None:
    stdout = succeeded(results["lead_enrichment"])
    assert Decimal("0.12072") == LEAD_TOTAL
    root, children = one_tree(stdout, "lead-enrichment")
    assert root_line(
        "lead-enrichment", LEAD_TOTAL, "5 calls  1 tool call", "customer=cus_8821 feature=lead-gen"
    ).match(root), root
    assert children == lead_tree()
    assert stdout.splitlines()[-4:] == lead_summary()
    assert stdout.splitlines()[:2] == [
        line.format(port=_port(stdout))
        for line in (
            "[openai] fake provider at http://127.0.0.1:{port}/v1 (set OPENAI_API_KEY for the real API)",
            "[anthropic] fake provider at http://127.0.0.1:{port} (set ANTHROPIC_API_KEY for the real API)",
        )
    ]


def _port(stdout: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:(\d+)", stdout)
    assert match is not None, stdout
    return match.group(1)


def test_lead_enrichment_under_opentelemetry_instrument(results: dict[str, Result]) -> None:
    """Zero-code and configure() together: one processor, one console tree, the same dollars."""
    stdout = succeeded(results["lead_enrichment_instrumented"])
    _, children = one_tree(stdout, "lead-enrichment")
    assert children == lead_tree()
    assert stdout.splitlines()[-4:] == lead_summary()


# --------------------------------------------------------------------------------------------------
# react_loop.py
# --------------------------------------------------------------------------------------------------

# The fake model's turns (examples/react_loop.py FAKE_TURNS): prompt grows as the conversation does.
REACT_TURNS = [(400, 30), (520, 30), (640, 40), (760, 60)]
REACT_CALLS = [cost(GPT_4O, tokens) for tokens in REACT_TURNS]  # $0.0013, $0.0016, $0.002, $0.0025
REACT_TOOLS = ["lookup_population", "lookup_population", "divide"]


def react_think(turn: int) -> Node:
    tokens_in, tokens_out = REACT_TURNS[turn - 1]
    price = tree_usd(REACT_CALLS[turn - 1])
    return node(f"think {turn}  {price}", node(f"chat gpt-4o  {price}  {tokens_in} in / {tokens_out} out"))


def react_act(turn: int) -> Node:
    return node(f"act {turn}", node(f"execute_tool {REACT_TOOLS[turn - 1]}"))


def test_react_loop_until_the_model_answers(results: dict[str, Result]) -> None:
    stdout = succeeded(results["react_loop"])
    total = sum(REACT_CALLS, Decimal(0))
    assert total == Decimal("0.0074")
    root, children = one_tree(stdout, "react-research")
    assert root_line("react-research", total, "4 calls", "customer=cus_4410 feature=assistant").match(root)
    turns = (react_think(1), react_act(1), react_think(2), react_act(2), react_think(3), react_act(3))
    assert children == (node(f"invoke_agent react  {tree_usd(total)}", *turns, react_think(4)),)
    assert stdout.splitlines()[-3:] == [
        "answer: About 6.45 times: France has 68.4 million people, Portugal 10.6 million.",
        f"react-research for cus_4410: {usd6(total)} in 4 LLM calls",
        f"budget: spent {usd6(total)} of $0.050000",
    ]


def test_react_loop_budget_refuses_the_call_past_the_limit(results: dict[str, Result]) -> None:
    """$0.003: turns 1-2 spend $0.0029 (under), turn 3 takes it to $0.0049, turn 4 is refused."""
    result = results["react_loop_budget"]
    spent = sum(REACT_CALLS[:3], Decimal(0))
    assert spent == Decimal("0.0049")
    pattern = (
        r"costspan: task budget \(task [0-9a-f]{32}\) exceeded: "
        r"limit \$0\.003, spent \$0\.0049; calls are refused"
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and re.fullmatch(pattern, result.stderr.strip()), (
        result.stderr
    )
    stdout = result.stdout
    assert re.search(
        r"^stopped by the budget: task budget \(task [0-9a-f]{32}\) exceeded: limit \$0\.003, spent "
        r"\$0\.0049; the gpt-4o call was refused before sending$",
        stdout,
        re.MULTILINE,
    ), stdout
    root, children = one_tree(stdout, "react-research")
    assert root_line(
        "react-research", spent, "4 calls  1 failed", "customer=cus_4410 feature=assistant"
    ).match(root), root
    refused = node(
        "think 4  $0.0000",
        node("chat gpt-4o  FAILED BudgetExceeded  [budget task: refused, spent $0.0049 of $0.003]"),
    )
    turns = (react_think(1), react_act(1), react_think(2), react_act(2), react_think(3), react_act(3))
    assert children == (node(f"invoke_agent react  {tree_usd(spent)}", *turns, refused),)
    assert stdout.splitlines()[-3:] == [
        "no answer",
        f"react-research for cus_4410: {usd6(spent)} in 4 LLM calls (1 refused or failed)",
        f"budget: spent {usd6(spent)} of $0.003000",
    ]


# --------------------------------------------------------------------------------------------------
# document_pipeline.py
# --------------------------------------------------------------------------------------------------


def test_document_pipeline_rolls_up_across_threads(results: dict[str, Result]) -> None:
    stdout = succeeded(results["document_pipeline"])
    chunks = 6  # paragraphs of the sample report
    map_total = chunks * HAIKU_CALL
    total = map_total + SONNET_CALL
    assert total == Decimal("0.0315")
    root, children = one_tree(stdout, "summarise-document")
    assert root_line("summarise-document", total, "7 calls", "customer=cus_2207 feature=doc-summary").match(
        root
    )
    # The chunk steps ran in worker threads: each is still a child of `map` and its cost reached it.
    chunk_steps = [
        node(
            f"summarise chunk {i}  {tree_usd(HAIKU_CALL)}",
            node(f"chat claude-haiku-4-5  {tree_usd(HAIKU_CALL)}  {ANTHROPIC_USAGE_TEXT}"),
        )
        for i in range(1, chunks + 1)
    ]
    expected = (
        node(f"map  {tree_usd(map_total)}", *chunk_steps),
        node(
            f"synthesise  {tree_usd(SONNET_CALL)}",
            node(f"chat claude-sonnet-4-6  {tree_usd(SONNET_CALL)}  {ANTHROPIC_USAGE_TEXT}"),
        ),
    )
    assert unordered(children) == unordered(expected)
    assert [label for label, _ in children] == [
        f"map  {tree_usd(map_total)}",
        f"synthesise  {tree_usd(SONNET_CALL)}",
    ]
    assert stdout.splitlines()[-3:] == [
        f"summarise-document for cus_2207: {usd6(total)} in 7 LLM calls",
        f"  map         {usd6(map_total)}  (6 LLM calls)",
        f"  synthesise  {usd6(SONNET_CALL)}  (1 LLM call)",
    ]


# --------------------------------------------------------------------------------------------------
# multi_provider.py
# --------------------------------------------------------------------------------------------------

MULTI_TOTAL = GPT_4O_CALL + 2 * SONNET_CALL + FLASH_CALL  # $0.028225


def multi_summary() -> list[str]:
    return [
        f"market-brief for cus_7731: {usd6(MULTI_TOTAL)} in 4 LLM calls",
        f"  planner   {usd6(GPT_4O_CALL)}  (1 LLM call, OpenAI gpt-4o)",
        f"  executor  {usd6(2 * SONNET_CALL)}  (2 LLM calls, Anthropic claude-sonnet-4-6)",
        f"  verifier  {usd6(FLASH_CALL)}  (1 LLM call, Gemini gemini-2.5-flash)",
    ]


def test_multi_provider(results: dict[str, Result]) -> None:
    stdout = succeeded(results["multi_provider"])
    assert Decimal("0.028225") == MULTI_TOTAL
    root, children = one_tree(stdout, "market-brief")
    assert root_line("market-brief", MULTI_TOTAL, "4 calls", "customer=cus_7731 feature=briefs").match(root)
    sonnet = node(f"chat claude-sonnet-4-6  {tree_usd(SONNET_CALL)}  {ANTHROPIC_USAGE_TEXT}")
    assert children == (
        node(
            f"invoke_agent planner  {tree_usd(GPT_4O_CALL)}",
            node(f"chat gpt-4o  {tree_usd(GPT_4O_CALL)}  {OPENAI_USAGE_TEXT}"),
        ),
        node(
            f"invoke_agent executor  {tree_usd(2 * SONNET_CALL)}",
            node(f"research  {tree_usd(SONNET_CALL)}", sonnet),
            node(f"write  {tree_usd(SONNET_CALL)}", sonnet),
        ),
        node(
            f"invoke_agent verifier  {tree_usd(FLASH_CALL)}",
            node(f"generate_content gemini-2.5-flash  {tree_usd(FLASH_CALL)}  {GEMINI_USAGE_TEXT}"),
        ),
    )
    assert stdout.splitlines()[-4:] == multi_summary()
    assert stdout.count("fake provider at") == 3


def test_a_provider_with_a_key_goes_to_its_api_the_others_stay_fake(
    results: dict[str, Result], real_api: AllProvidersServer
) -> None:
    """OPENAI_API_KEY set (and OPENAI_BASE_URL pointing at a stand-in for the real API): OpenAI is
    called there with that key; Anthropic and Gemini are still faked inside the example."""
    stdout = succeeded(results["multi_provider_openai_key"])
    lines = stdout.splitlines()
    assert lines[0] == "[openai] real API"
    assert lines[1].startswith("[anthropic] fake provider at http://127.0.0.1:")
    assert lines[2].startswith("[gemini] fake provider at http://127.0.0.1:")
    assert real_api.base_url not in stdout
    assert lines[-4:] == multi_summary()


def test_with_every_key_set_nothing_is_faked(
    results: dict[str, Result], real_api: AllProvidersServer
) -> None:
    stdout = succeeded(results["multi_provider_all_keys"])
    assert stdout.splitlines()[:3] == ["[openai] real API", "[anthropic] real API", "[gemini] real API"]
    assert "fake provider" not in stdout
    assert stdout.splitlines()[-4:] == multi_summary()
    sent = [(request.path.split("?")[0], request.headers) for request in real_api.requests]
    paths = [path for path, _ in sent]
    assert paths[:3] == ["/v1/chat/completions", "/v1/messages", "/v1/messages"]
    assert len(paths) == 4 and paths[3].endswith("/models/gemini-2.5-flash:generateContent"), paths
    assert sent[0][1]["authorization"] == "Bearer sk-test-openai"
    # anthropic 2.x sends the key as a bearer token (1.x sent x-api-key).
    anthropic_keys = [headers.get("x-api-key") or headers["authorization"] for _, headers in sent[1:3]]
    assert anthropic_keys in (["sk-ant-test"] * 2, ["Bearer sk-ant-test"] * 2)
    assert sent[3][1]["x-goog-api-key"] == "gm-test"


# --------------------------------------------------------------------------------------------------
# web_service.py
# --------------------------------------------------------------------------------------------------


def test_web_service_bills_each_customer_from_the_auth_header(results: dict[str, Result]) -> None:
    result = results["web_service"]
    cap = Decimal("0.02")
    # cus_acme: 4 answered ($0.006 each: $0.018 after three is under the cap, so the fourth goes
    # out), the fifth refused; cus_globex: 2 answered, then a request without a question (400, no
    # call); the unknown key: 401, no call.
    acme, globex = 4 * GPT_4O_CALL, 2 * GPT_4O_CALL
    stdout = succeeded(
        result,
        allowed_stderr=[
            f"costspan: customer budget (customer cus_acme) exceeded: limit $0.0200, spent "
            f"{tree_usd(acme)}; calls are refused"
        ],
    )
    responses = [line for line in stdout.splitlines() if re.match(r"^\d{3} sk-", line)]
    answer = '"answer": "Hello from the fake OpenAI."'

    def ok(customer: str, spent: Decimal) -> str:
        return f'{{{answer}, "customer": "{customer}", "cost_usd": "{GPT_4O_CALL}", "spent_usd": "{spent}"}}'

    assert responses == [
        *(f"200 sk-acme-1a... -> {ok('cus_acme', n * GPT_4O_CALL)}" for n in range(1, 5)),
        '402 sk-acme-1a... -> {"error": "spending cap reached", "customer": "cus_acme", '
        f'"spent_usd": "{acme}"}}',
        *(f"200 sk-globex-... -> {ok('cus_globex', n * GPT_4O_CALL)}" for n in range(1, 3)),
        '400 sk-globex-... -> {"error": "send {\\"question\\": \\"...\\"}"}',
        '401 sk-stolen-... -> {"error": "unknown API key"}',
    ]
    assert stdout.splitlines()[-3:] == [
        f"per customer (cap {usd6(cap)} each):",
        f"  cus_acme    {usd6(acme)}  4 answered, 1 refused",
        f"  cus_globex  {usd6(globex)}  2 answered, 0 refused",
    ]
    # One tree per authorised request, attributed to the key's customer; the refused one sent nothing.
    found = trees(stdout, "answer-question")
    assert len(found) == 7
    call = node(f"chat gpt-4o  {tree_usd(GPT_4O_CALL)}  {OPENAI_USAGE_TEXT}")
    customers = []
    for root, children in found:
        match = re.search(r"customer=(\S+) feature=support-chat", root)
        assert match is not None, root
        customers.append(match.group(1))
        if "1 failed" in root:
            assert children == (
                node(
                    "chat gpt-4o  FAILED BudgetExceeded  "
                    f"[budget customer: refused, spent {tree_usd(acme)} of $0.0200]"
                ),
            )
        else:
            assert root.startswith(f"answer-question  {tree_usd(GPT_4O_CALL)} total  1 call  customer=")
            assert children == (call,)
    assert customers == ["cus_acme"] * 5 + ["cus_globex"] * 2


# --------------------------------------------------------------------------------------------------
# python -m costspan.testing.all_providers
# --------------------------------------------------------------------------------------------------


# What a shell runs after eval-ing the fake's output: the SDK clients built with no arguments.
SDK_CALLS = """
import json
from anthropic import Anthropic
from google import genai
from openai import OpenAI

hi = [{"role": "user", "content": "hi"}]
chat = OpenAI(max_retries=0).chat.completions.create(model="gpt-4o", messages=hi)
message = Anthropic(max_retries=0).messages.create(
    model="claude-haiku-4-5", max_tokens=64, messages=hi
)
client = genai.Client()  # kept: a Client closes its connection when collected
gemini = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
print(json.dumps({
    "openai": [chat.usage.prompt_tokens, chat.usage.completion_tokens],
    "anthropic": [message.usage.input_tokens, message.usage.output_tokens],
    "gemini": [gemini.usage_metadata.prompt_token_count, gemini.usage_metadata.candidates_token_count],
}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_fake_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """The CLI started as a user would; its lines up to the closing `#` comment."""
    process = subprocess.Popen(
        [sys.executable, "-m", "costspan.testing.all_providers", *args],
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("#"):
            break
    return process, lines


def test_fake_providers_cli_prints_what_a_shell_needs() -> None:
    """`eval` of the CLI's output is all a shell needs: OpenAI(), Anthropic() and genai.Client()
    then reach the fake with no argument and no key of the user's."""
    port = _free_port()
    process, lines = _start_fake_cli("--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        assert lines[:-1] == [
            f"export OPENAI_BASE_URL={base}/v1",
            f"export ANTHROPIC_BASE_URL={base}",
            f"export GOOGLE_GEMINI_BASE_URL={base}",
            "export OPENAI_API_KEY=costspan-fake-key",
            "export ANTHROPIC_API_KEY=costspan-fake-key",
            "export GEMINI_API_KEY=costspan-fake-key",
        ]
        assert lines[-1].startswith("# ")
        shell = subprocess.run(
            ["bash", "-c", 'eval "$FAKE_EXPORTS" && exec "$PYTHON" -c "$SDK_CALLS"'],
            env=offline_env(FAKE_EXPORTS="\n".join(lines), PYTHON=sys.executable, SDK_CALLS=SDK_CALLS),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0, shell.stderr
        assert json.loads(shell.stdout) == {
            "openai": list(OPENAI_TOKENS),
            "anthropic": list(ANTHROPIC_TOKENS),
            "gemini": list(GEMINI_TOKENS),
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_fake_providers_cli_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "costspan.testing.all_providers", "--port", str(port)],
            env=offline_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
