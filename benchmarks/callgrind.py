"""Instructions per operation from callgrind: the difference of two counts, so fixed costs cancel.

`per_op` runs the workload in two processes (n_small, n_large operations) and takes the difference
of their totals: start-up, imports and set-up cancel out, and every thread is counted (e.g. the
batch export thread at exit).

`per_op_in_process` runs both counts in one process, with collection switched on only inside a
marker C function (`functools.reduce` wraps each measured block) and a dump after each: much faster
when imports dominate (provider SDKs under valgrind), but it counts only the calling thread.

Run one workload by hand: python benchmarks/callgrind.py span_workloads:plain_cost 2000 8000
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> bool:
    return shutil.which("valgrind") is not None


def _instructions(python: str, workload: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                python,
                __file__,
                "--worker",
                workload,
                str(n),
            ],
            capture_output=True,
            text=True,
            cwd=HERE,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = _COLLECTED.findall(proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"callgrind run of {workload} x{n} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return int(found[-1])


def per_op(workload: str, n_small: int, n_large: int, python: str = sys.executable) -> float:
    """Instructions per operation of `module:name` (see WORKLOADS in each workload module)."""
    small = _instructions(python, workload, n_small)
    large = _instructions(python, workload, n_large)
    return (large - small) / (n_large - n_small)


def per_op_in_process(
    workload: str, n_small: int, n_large: int, python: str = sys.executable, hash_seed: int = 0
) -> float:
    """Instructions per operation of the calling thread, both counts measured in one process.

    One process's figure depends on its heap layout: an instrumented call's count moves by up to
    ~20k between hash seeds (pymalloc's arena bookkeeping in `_PyObject_Free`), and by that much
    after unrelated code changes. Compare medians over several `hash_seed`s, not single runs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                "--dump-after=functools_reduce",
                f"--callgrind-out-file={out}",
                python,
                __file__,
                "--phases",
                workload,
                str(n_small),
                str(n_large),
            ],
            capture_output=True,
            text=True,
            cwd=HERE,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
        )
        totals = []
        for part in (1, 2):
            path = Path(f"{out}.{part}")
            found = re.search(r"^totals:\s*(\d+)", path.read_text(), re.M) if path.exists() else None
            if found:
                totals.append(int(found.group(1)))
    if proc.returncode != 0 or len(totals) != 2:
        raise RuntimeError(f"callgrind run of {workload} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return (totals[1] - totals[0]) / (n_large - n_small)


def _build(workload: str):  # type: ignore[no-untyped-def]
    module_name, name = workload.split(":", 1)
    sys.path.insert(0, str(HERE))
    return importlib.import_module(module_name).WORKLOADS[name]()


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        _build(sys.argv[2])(int(sys.argv[3]))
    elif sys.argv[1] == "--phases":
        run = _build(sys.argv[2])
        for count in (int(sys.argv[3]), int(sys.argv[4])):
            functools.reduce(lambda _, n: run(n), [count], None)
    else:
        small, large = int(sys.argv[2]), int(sys.argv[3])
        print(f"{sys.argv[1]}: {per_op(sys.argv[1], small, large):,.0f} instructions per op")
