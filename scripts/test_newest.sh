#!/usr/bin/env bash
# CI's second leg: the newest releases a user may run, on a smoke subset.
# A separate venv (.venv-newest) with the newest torch this machine offers (2.14.1: pip's
# machine-wide constraint caps it; PyPI's 2.15 is a CUDA build of several GB), numpy >= 2.4,
# the coremltools 9.1.dev1 pre-release (numpy >= 2.4 fix #2632, LLM mask ops #2668) and the
# newest transformers. No coreai extra: coreai-torch 0.4.3 needs numpy < 2.5 and is tested
# on torch 2.13 in the first leg. No constraints file: the package's own metadata ranges.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=.venv-newest
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --pre \
    -e ".[test]" "coremltools==9.1.dev1" "torch==2.14.1" "numpy>=2.4" \
    "torchvision" "transformers" "timm" \
    2> >(grep -v "is neither a file nor a directory" >&2)
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
names = ["torch", "numpy", "coremltools", "transformers", "torchvision", "timm", "pytest", "hypothesis"]
print("newest leg:", ", ".join(f"{n} {version(n)}" for n in names))
PY
# The smoke subset: the plugin end to end, the emulator's core, the verdict, the converter
# shims and outputs by key on raw transformers models, the zoo's CI models. Extra arguments
# replace it.
smoke=(
    tests/plugin/test_example.py
    tests/plugin/test_behaviour.py
    tests/emulator/test_core.py
    tests/test_verdict.py
    tests/test_shims.py
    tests/plugin/test_outputs_by_key.py
    tests/plugin/test_attention_capture.py
    tests/zoo
)
[ $# -gt 0 ] && smoke=("$@")
"$venv/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" -p no:cacheprovider "${smoke[@]}"
