"""Instructions and OTLP bytes per call with a real export: OTLP/HTTP to rotel (blackhole).

    python benchmarks/bench_export.py [--python NAME=PATH ...] [--output FILE]

Each contender runs from its own virtualenv on the same openai and OpenTelemetry SDK versions
(`--python openai_v2=/path/to/venv/bin/python`; costspan and bare run in this interpreter). rotel
(PyPI `rotel`) is started on free 127.0.0.1 ports with its blackhole exporter: it receives and
decodes every request, then drops it. Instructions: callgrind, all threads (the batch export thread
included), difference of two processes (`callgrind.per_op`). Bytes: the uncompressed OTLP protobuf
bodies the exporter sent, counted in a separate run without valgrind. Writes a markdown table to
`--output` (default benchmarks/RESULTS-export.md).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import callgrind
from export_workloads import WARM_UP

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
from rotel_collector import agent_path, free_port  # noqa: E402

# (n_small, n_large) per call type: whole batches of 64 spans between the two counts.
COUNTS = {"chat": (64, 128), "stream": (64, 128), "agent_task": (4, 8)}
CALLS_PER_OP = {"chat": 1, "stream": 1, "agent_task": 12}
_BYTES = re.compile(r"otlp_bytes=(\d+) spans=(\d+)")


@contextmanager
def rotel_blackhole(workdir: Path) -> Iterator[str]:
    import sysconfig

    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
    env.update(
        ROTEL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{http_port}",
        ROTEL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
        ROTEL_EXPORTER="blackhole",
        ROTEL_PID_FILE=str(workdir / "rotel.pid"),
        ROTEL_LOG_FILE=str(workdir / "rotel.log"),
    )
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    out = (workdir / "rotel.out").open("wb")
    process = subprocess.Popen([str(agent_path()), "start"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("rotel did not start: " + (workdir / "rotel.out").read_text())
        yield f"http://127.0.0.1:{http_port}"
    finally:
        process.kill()
        process.wait()
        out.close()


def exported(python: str, workload: str, n: int) -> tuple[int, int]:
    """(OTLP body bytes, spans) the exporter sent for `n` measured calls plus the warm-up, every
    request answered by the collector."""
    env = {**os.environ, "BENCH_COUNT_BYTES": "1"}
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import export_workloads as w; "
        "w.WORKLOADS[sys.argv[2]]()(int(sys.argv[3]))"
    )
    proc = subprocess.run(
        [python, "-c", code, str(HERE), workload, str(n)], capture_output=True, text=True, env=env, cwd=HERE
    )
    found = _BYTES.search(proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{workload} byte count failed:\n{proc.stderr[-3000:]}")
    return int(found.group(1)), int(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", action="append", default=[], help="contender=path of its python")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS-export.md")
    parser.add_argument("--calls", default="chat,stream,agent_task")
    args = parser.parse_args()
    pythons = {"bare": sys.executable, "costspan": sys.executable}
    for item in args.python:
        name, _, path = item.partition("=")
        pythons[name] = path
    calls = args.calls.split(",")
    instructions: dict[tuple[str, str], float] = {}
    sizes: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp, rotel_blackhole(Path(tmp)) as endpoint:
        os.environ["BENCH_OTLP_ENDPOINT"] = endpoint
        for call in calls:
            for contender, python in pythons.items():
                workload = f"export_workloads:{call}:{contender}"
                small, large = COUNTS[call]
                instructions[call, contender] = callgrind.per_op(workload, small, large, python=python)
                if contender != "bare":
                    sent, _spans = exported(python, f"{call}:{contender}", large)
                    sizes[call, contender] = sent / (large + WARM_UP)
                print(f"{call} {contender}: {instructions[call, contender]:,.0f} instr/op", flush=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Export benchmark: OTLP/HTTP to rotel (blackhole), batches of 64",
        "",
        f"Written by `python benchmarks/bench_export.py` on {when}.",
        "Instructions: callgrind, all threads, difference of two processes; per call (`agent_task`: per",
        "task of 12 calls and 16 spans). Bytes: uncompressed OTLP protobuf request bodies per call (per",
        "task), resource and scope included, amortised over batches of 64 spans.",
        "",
        "| call | contender | instructions | over bare | OTLP bytes | bytes vs openai-v2 |",
        "|---|---|---|---|---|---|",
    ]
    for call in calls:
        bare = instructions.get((call, "bare"))
        ref = sizes.get((call, "openai_v2"))
        for contender in pythons:
            count = instructions[call, contender]
            over = f"+{count - bare:,.0f}" if bare is not None and contender != "bare" else ""
            size = sizes.get((call, contender))
            size_text = f"{size:,.0f}" if size is not None else ""
            ratio = f"{size / ref:.2f}x" if size is not None and ref else ""
            lines.append(f"| {call} | {contender} | {count:,.0f} | {over} | {size_text} | {ratio} |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
