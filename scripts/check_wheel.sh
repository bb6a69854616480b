#!/usr/bin/env bash
# The package as users get it: build the sdist, build the wheel from that sdist,
# install the wheel (not editable) with no constraints into a fresh venv that already
# holds a user project's own pins (README "Use it in your project"), and run the
# shipped example and the README tutorial from folders outside this checkout, so
# nothing in src/ can be imported by accident. Exit 0 only if:
#   * the build logs show no setuptools deprecation (e.g. of the license metadata);
#   * the sdist holds the package sources, README.md and pyproject.toml;
#   * the wheel holds the package and py.typed, and not the conformance harness (tools/);
#   * pytest_coreml_parity is imported from the fresh venv's site-packages, and its
#     pytest11 entry point is registered (the "coreml-parity:" header line);
#   * installing the wheel moved none of the project's pins (pytest, numpy, hypothesis,
#     torch at the package's lower bounds);
#   * every extra resolves next to those pins (a dry run) and brings its feature's packages
#     ([compress] scikit-learn, [images] pillow, [plots] matplotlib, [xdist] pytest-xdist;
#     [all] also coreai-*, with numpy at 2.3.5, coreai-core's lower bound);
#   * the example behaves as scripts/demo.sh expects: fp32 passes, fp16 fails with
#     the nan/inf message; the README tutorial's two files behave as the README says.
# Needs the dev .venv (scripts/test.sh makes it) for its setuptools. Set
# KEEP_WHEEL_CHECK=1 to keep the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

python=${PYTHON:-python3}
work="$(mktemp -d "${TMPDIR:-/tmp}/wheel-check.XXXXXX")"
if [ "${KEEP_WHEEL_CHECK:-}" = 1 ]; then
    echo "check_wheel: keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
fail() { echo "check_wheel: FAILED: $1" >&2; exit 1; }
step() { printf 'check_wheel: %-44s (%3d s)\n' "$1" "$SECONDS"; }

# 1. sdist, from the files git knows (tracked or new, not ignored) in a copy of the tree.
mkdir "$work/src-tree" "$work/dist"
git ls-files -z --cached --others --exclude-standard \
    | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
    | tar -cf - --null -T - | tar -xf - -C "$work/src-tree"
(cd "$work/src-tree" && "$repo/.venv/bin/python" -W always -c \
    "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))" \
    "$work/dist") >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; fail "sdist build"; }
sdist=$(ls "$work"/dist/*.tar.gz)
step "sdist $(basename "$sdist")"

# 2. The wheel, built from the sdist in pip's isolated build environment.
"$repo/.venv/bin/python" -m pip wheel --no-deps --no-cache-dir -v -w "$work/dist" "$sdist" \
    >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log"; fail "wheel build"; }
wheel=$(ls "$work"/dist/*.whl)
step "wheel $(basename "$wheel")"
if grep -iE "deprecat|license classifiers|license-file" "$work/sdist.log" "$work/wheel.log"; then
    fail "the build printed a deprecation warning (above)"
fi

"$repo/.venv/bin/python" - "$sdist" "$wheel" <<'PY' || fail "archive contents"
import sys, tarfile, zipfile

sdist, wheel = sys.argv[1:]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
need = [
    "pyproject.toml", "README.md",
    "src/pytest_coreml_parity/__init__.py", "src/pytest_coreml_parity/plugin.py",
    "src/pytest_coreml_parity/py.typed", "src/pytest_coreml_parity/emulator/__init__.py",
]
missing = [n for n in need if n not in names]
assert not missing, f"sdist lacks {missing}"
with zipfile.ZipFile(wheel) as whl:
    files = whl.namelist()
assert "pytest_coreml_parity/py.typed" in files, "wheel lacks py.typed"
assert "pytest_coreml_parity/emulator/__init__.py" in files, "wheel lacks the emulator"
stray = [f for f in files if not f.startswith(("pytest_coreml_parity/", "pytest_coreml_parity-"))]
assert not stray, f"wheel holds files outside the package: {stray[:5]}"
harness = [f for f in files if "conformance" in f]
assert not harness, f"the conformance harness is in the wheel: {harness[:5]}"
print(f"check_wheel: sdist {len(names)} files, wheel {len(files)} files: contents ok")
PY

# 3. A user's project: a fresh venv holding the project's own pins (at the package's lower
#    bounds, torch==2.13.0: the local CPU build), then the wheel with NO constraints, as the
#    README's "Use it in your project" says. Installing must leave every pin where it was.
user_pins=(pytest==8.4.2 numpy==2.2.6 hypothesis==6.135.0 torch==2.13.0)
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --disable-pip-version-check --no-compile "${user_pins[@]}" \
    >"$work/pins.log" 2>&1 || { cat "$work/pins.log"; fail "pip install of the project's own pins"; }
"$work/venv/bin/python" -m pip install --disable-pip-version-check --no-compile "$wheel" \
    >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "pip install of the wheel"; }
if grep -iE "deprecat" "$work/install.log"; then
    fail "installing printed a deprecation warning (above)"
fi
"$work/venv/bin/python" - "${user_pins[@]}" <<'PY' || fail "installing the wheel moved the project's pins"
import sys
from importlib.metadata import version

moved = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    have = version(name).split("+")[0]
    if have != want:
        moved.append(f"{name} {want} -> {have}")
assert not moved, f"the project's pins moved: {moved}"
print(f"check_wheel: the project's pins are kept: {' '.join(sys.argv[1:])}")
PY
step "installed into a project with its own pins"

# 3b. The extras resolve next to the project's pins and bring what each feature imports
#     (a dry run: nothing is installed). coreai-core needs numpy >= 2.3, so [coreai] and
#     [all] are resolved with the project's numpy at 2.3.5, as the README says.
extras_ok() {  # extras, then "numpy==X", then the distributions the report must hold
    local extras=$1 numpy=$2; shift 2
    printf '%s\n' "${user_pins[@]}" | sed "s/^numpy==.*/$numpy/" >"$work/extra-pins.txt"
    "$work/venv/bin/python" -m pip install --disable-pip-version-check --dry-run --quiet \
        --report "$work/extras.json" -c "$work/extra-pins.txt" "$wheel[$extras]" \
        >"$work/extras.log" 2>&1 || { cat "$work/extras.log"; fail "pip could not resolve [$extras] next to the project's pins"; }
    "$work/venv/bin/python" - "$work/extras.json" "$@" <<'PY' || fail "[$extras] does not install what its features need"
import json, sys

report = json.load(open(sys.argv[1]))
names = {i["metadata"]["name"].lower().replace("_", "-") for i in report["install"]}
missing = [n for n in sys.argv[2:] if n not in names]
assert not missing, f"missing {missing}; would install {sorted(names)}"
PY
}
extras_ok compress,images,plots,xdist numpy==2.2.6 scikit-learn pillow matplotlib pytest-xdist
if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
    extras_ok all numpy==2.3.5 scikit-learn pillow matplotlib pytest-xdist coreai-core coreai-torch coreai-opt
fi
step "extras resolve beside the project's pins"

# 4. The shipped example, run from a copy outside the checkout.
cp -r examples/complex_division "$work/example"
cd "$work/example"
export PYTHONPATH="" TQDM_DISABLE=1
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$work/venv/bin/python" - "$site" <<'PY' || fail "installed package"
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest_coreml_parity as p

site = Path(sys.argv[1]).resolve()
where = Path(p.__file__).resolve()
assert where.is_relative_to(site), f"imported from {where}, not from {site}"
assert (where.parent / "py.typed").is_file(), "py.typed is not installed"
assert not (where.parent / "conformance").exists(), "the conformance harness is installed"
eps = [e.value for e in entry_points(group="pytest11") if e.name == "coreml_parity"]
assert eps == ["pytest_coreml_parity.plugin"], f"pytest11 entry points: {eps}"
print(f"check_wheel: imported from {where}")
PY

log="$work/example.log"
set +e
"$work/venv/bin/python" -m pytest -v -p no:cacheprovider -W "ignore::DeprecationWarning" \
    --coreml-cache-dir="$work/coreml-cache" >"$log" 2>&1
status=$?
set -e
step "example run (exit $status)"
expect() { grep -Eq "$1" "$log" || { cat "$log"; fail "$2"; }; }
[ "$status" -eq 1 ] || { cat "$log"; fail "pytest exited with $status (expected 1: the fp16 tests fail)"; }
expect "^coreml-parity: " "no coreml-parity header line: the pytest11 entry point is not loaded"
expect "test_parity\[fp32\] PASSED" "test_parity[fp32] did not pass"
expect "test_fuzz\[fp32\] PASSED" "test_fuzz[fp32] did not pass"
if grep -Eq "\[fp32\] FAILED" "$log"; then cat "$log"; fail "an fp32 test failed"; fi
expect "test_large_denominators\[fp16\] FAILED" "test_large_denominators[fp16] did not fail"
expect "test_fuzz\[fp16\] FAILED" "hypothesis did not find the fp16 overflow"
expect "Core ML produced nan/inf where PyTorch is finite" "no nan/inf message"
step "shipped example ok"

# 5. The README's tutorial, its two files extracted from README.md into an empty folder.
mkdir "$work/tutorial"
"$work/venv/bin/python" - "$repo/README.md" "$work/tutorial" <<'PY' || fail "README tutorial files"
import re, sys
from pathlib import Path

readme, folder = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
blocks = re.findall(r"```python\n# (conftest\.py|test_complex_div\.py)\n(.*?)```", readme, re.S)
names = [name for name, _ in blocks]
assert names == ["conftest.py", "test_complex_div.py"], f"README tutorial blocks: {names}"
for name, code in blocks:
    (folder / name).write_text(code)
PY
cd "$work/tutorial"
log="$work/tutorial.log"
set +e
"$work/venv/bin/python" -m pytest -v -p no:cacheprovider --coreml-cache-dir="$work/coreml-cache" >"$log" 2>&1
status=$?
set -e
step "README tutorial run (exit $status)"
[ "$status" -eq 1 ] || { cat "$log"; fail "pytest exited with $status (expected 1: test_fuzz[fp16] fails)"; }
expect "test_parity\[fp32\] PASSED" "README tutorial: test_parity[fp32] did not pass"
expect "test_parity\[fp16\] PASSED" "README tutorial: test_parity[fp16] did not pass"
expect "test_fuzz\[fp32\] PASSED" "README tutorial: test_fuzz[fp32] did not pass"
expect "FAILED test_complex_div.py::test_fuzz\[fp16\]" "README tutorial: test_fuzz[fp16] did not fail"
echo "check_wheel: ok: the wheel installs into a pinned project; the example and the README tutorial behave as documented (${SECONDS} s)"
