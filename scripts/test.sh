#!/usr/bin/env bash
# The project's test command (README "Run the test suite").
# Sets itself up on a fresh machine: a .venv with every dependency pinned by
# constraints.txt (torch==2.13.0 exactly, so the local CPU wheel is used and no
# CUDA build is pulled), then lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt -e ".[test,coreai]" -r tools/zoo/requirements.txt \
    2> >(grep -v "is neither a file nor a directory" >&2)

.venv/bin/ruff check src tests benchmarks examples tools scripts conftest.py
.venv/bin/mypy
[ $# -gt 0 ] || bash scripts/check_wheel.sh  # the built wheel, installed fresh (1-4 min)
# Two workers (CI has 2 cores); PYTEST_WORKERS=0 runs in one process.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
