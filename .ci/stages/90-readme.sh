#!/usr/bin/env bash
# A new user's first run: README.md's "Set up" commands, read from the README itself and run exactly
# as written, in a fresh virtualenv with the pip that `python3 -m venv` installs (never upgraded
# here: an old pip's resolver must install costspan as well as a new one), newest versions. Then
# lint, then the README's test command last, so that the pytest summary closes the log.
set -euo pipefail
python3 -m venv "$CI_WORK/readme"
# shellcheck disable=SC1091
. "$CI_WORK/readme/bin/activate"
pip --version

# The fenced bash lines of the "Set up" section: the demo command, then the test command.
mapfile -t commands < <(awk '
    /^## / { in_setup = ($0 == "## Set up"); next }
    in_setup && /^```bash$/ { in_block = 1; next }
    in_setup && /^```$/ { in_block = 0; next }
    in_setup && in_block && NF { print }
' README.md)
if [ "${#commands[@]}" -ne 2 ]; then
    echo "README.md \"Set up\": expected 2 commands (demo, tests), found ${#commands[@]}: ${commands[*]}" >&2
    exit 1
fi
demo="${commands[0]}"
tests="${commands[1]}"

run() {
    echo "+ $1"
    bash -c "$1"
}

run "$demo"
# ruff comes with the test extra; the test command below installs it again (a no-op) and runs pytest.
pip install -q -e ".[test]"
ruff check src tests tests_thirdparty tests_frameworks tests_prometheus tests_report tests_backends benchmarks examples
ruff format --check src tests tests_thirdparty tests_frameworks tests_prometheus tests_report tests_backends benchmarks examples
run "$tests"
