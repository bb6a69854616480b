"""Session start-up: whole pytest processes, cold and warm, serial and ``-n 2``.

Run: ``.venv/bin/python benchmarks/bench_startup.py`` (from the repo root;
``--baseline-src DIR`` also times another checkout's ``src`` in the same run, e.g. the
main branch, for a before/after on the same host; ``--quick`` writes nothing).
Writes the '## Start-up' section of docs/performance.md.

What it times, each a fresh ``python -m pytest`` process (wall clock, median of
``--repeats``):

* a 2-test file (one ``assert_parity`` test at fp32 and fp16) on an empty disk cache
  (cold: it converts) and on a filled one (warm: every model from the cache);
* the floor: the same conftest (torch imported) and 2 tests without ``coreml_model``;
* the warm 2-test file again with ``PYTHONDONTWRITEBYTECODE=1`` (no ``.pyc`` written:
  every module compiled, and pytest's assertion rewriting redone, in every process);
* a 40-test suite (5 models x 4 tests x 2 precisions), warm, serially and with ``-n 2``
  (alternating, and their ratio per repeat);
* the imports alone, each in a fresh process: ``import torch``, then ``import
  coremltools`` after torch, and the plugin's warm path (``pytest_coreml_parity.emulator``
  and the proto schema) after torch.

It also records whether the warm processes imported coremltools, torchao, scikit-learn
or hypothesis (a conftest hook writes ``sys.modules`` when the session ends). Other
variables of the environment are kept; ``PYTHONDONTWRITEBYTECODE`` is dropped except
for its own row (Python's default is to write bytecode).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Start-up"

from _docs import write_section  # noqa: E402

CONFTEST = '''
import json, os, sys
import pytest
import torch

WIDTHS = {"a": 8, "b": 12, "c": 16, "d": 20, "e": 24}


class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        torch.manual_seed(width)
        self.up = torch.nn.Linear(width, 2 * width)
        self.down = torch.nn.Linear(2 * width, width)

    def forward(self, x):
        return torch.softmax(self.down(torch.relu(self.up(x))), dim=-1)


@pytest.fixture
def width(request):
    return WIDTHS[request.module.__name__.rsplit("_", 1)[-1]]


@pytest.fixture
def torch_model(width):
    return Net(width).eval()


@pytest.fixture
def example_inputs(width):
    return (torch.linspace(-1.0, 1.0, 2 * width).reshape(2, width),)


def pytest_sessionfinish(session):
    target = os.environ.get("BENCH_MODULES_FILE")
    if target and not hasattr(session.config, "workerinput"):
        with open(target, "w") as handle:
            json.dump(sorted(sys.modules), handle)
'''

#: The same fixtures with torch imported inside them: the xdist controller, which runs no
#: fixture, then never imports torch (workers do, in parallel).
LAZY_CONFTEST = '''
import json, os, sys
import pytest

WIDTHS = {"a": 8, "b": 12, "c": 16, "d": 20, "e": 24}


def _net(width):
    import torch

    class Net(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            torch.manual_seed(width)
            self.up = torch.nn.Linear(width, 2 * width)
            self.down = torch.nn.Linear(2 * width, width)

        def forward(self, x):
            return torch.softmax(self.down(torch.relu(self.up(x))), dim=-1)

    return Net(width)


@pytest.fixture
def width(request):
    return WIDTHS[request.module.__name__.rsplit("_", 1)[-1]]


@pytest.fixture
def torch_model(width):
    return _net(width).eval()


@pytest.fixture
def example_inputs(width):
    import torch

    return (torch.linspace(-1.0, 1.0, 2 * width).reshape(2, width),)


def pytest_sessionfinish(session):
    target = os.environ.get("BENCH_MODULES_FILE")
    if target and not hasattr(session.config, "workerinput"):
        with open(target, "w") as handle:
            json.dump(sorted(sys.modules), handle)
'''

ONE_TEST = """
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
"""

FOUR_TESTS = """
import numpy as np
from pytest_coreml_parity import assert_finite, assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


def test_scaled(coreml_model, example_inputs):
    assert_parity(coreml_model, *(x * 0.5 for x in example_inputs))


def test_finite(coreml_model, example_inputs):
    assert_finite(coreml_model(*example_inputs))


def test_rows_sum_to_one(coreml_model, example_inputs):
    out = np.asarray(coreml_model(*example_inputs), dtype=np.float32)
    assert np.allclose(out.sum(-1), 1.0, atol=1e-2)
"""


FLOOR_TEST = """
def test_nothing(torch_model, example_inputs):
    assert torch_model(*example_inputs).shape == example_inputs[0].shape


def test_nothing_again(torch_model):
    assert torch_model is not None
"""


#: The same four tests, two of them hypothesis searches of ``BENCH_EXAMPLES`` examples:
#: tests that take time, where ``-n 2`` has work to share.
FUZZ_TESTS = """
import os

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from pytest_coreml_parity import assert_finite, assert_parity

EXAMPLES = int(os.environ.get("BENCH_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _arrays(example_inputs):
    shape = tuple(example_inputs[0].shape)
    return hnp.arrays(np.float32, shape, elements=st.floats(-4, 4, width=32))


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@FUZZ
@given(data=st.data())
def test_fuzz_parity(coreml_model, example_inputs, data):
    assert_parity(coreml_model, data.draw(_arrays(example_inputs)))


@FUZZ
@given(data=st.data())
def test_fuzz_finite(coreml_model, example_inputs, data):
    assert_finite(coreml_model(data.draw(_arrays(example_inputs))))


def test_rows_sum_to_one(coreml_model, example_inputs):
    out = np.asarray(coreml_model(*example_inputs), dtype=np.float32)
    assert np.allclose(out.sum(-1), 1.0, atol=1e-2)
"""


def _project(directory: Path, files: dict[str, str], conftest: str = CONFTEST) -> None:
    directory.mkdir(parents=True)
    (directory / "conftest.py").write_text(conftest)
    for name, text in files.items():
        (directory / name).write_text(text)


#: What a warm run must not import (coremltools, and what its ``_deps`` pulls in), and
#: hypothesis, which a file without ``@given`` tests does not need.
HEAVY = ("coremltools", "torchao", "sklearn", "hypothesis")


Run = tuple[float, dict[str, bool], str, float]


def _pytest(src: Path, project: Path, cache: Path, *args: str, bytecode: bool = True) -> Run:
    """(wall seconds, which of :data:`HEAVY` were imported, the summary line, CPU seconds:
    user + system of the process and its children, e.g. xdist workers) of one run.
    ``bytecode``: Python writes ``.pyc`` files (its default; the environment's
    ``PYTHONDONTWRITEBYTECODE`` is dropped), else ``PYTHONDONTWRITEBYTECODE=1``, which
    makes every process compile (and pytest assertion-rewrite) every plugin module again."""
    modules = project / "modules.json"
    env = dict(os.environ, PYTHONPATH=str(src), BENCH_MODULES_FILE=str(modules), TQDM_DISABLE="1")
    env.setdefault("BENCH_EXAMPLES", "100")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--coreml-cache-dir={cache}", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"pytest failed in {project}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    names = json.loads(modules.read_text()) if modules.exists() else []
    summary = next((line for line in done.stdout.splitlines() if "coreml-parity: backend" in line), "")
    return wall, {name: name in names for name in HEAVY}, summary, cpu


def _import_time(before: str, code: str) -> float:
    """Seconds ``code`` takes in a fresh process, after ``before`` ran there (median of 3)."""
    source = f"import time\n{before}\nstart = time.perf_counter()\n{code}\nprint(time.perf_counter() - start)"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TQDM_DISABLE="1")
    runs = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", source], check=True, capture_output=True, text=True, env=env)
        runs.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def measure(src: Path, work: Path, repeats: int) -> dict[str, object]:
    """Every timing of the module docstring for the checkout whose package is in ``src``.
    Runs alternate between the variants compared (warm 2-test file and the floor;
    serial and ``-n 2``), so a change of the host's load hits both alike."""
    small = work / "small"
    suite = work / "suite"
    floor = work / "floor"
    _project(small, {"test_model_a.py": ONE_TEST})
    _project(suite, {f"test_model_{m}.py": FOUR_TESTS for m in "abcde"})
    _project(floor, {"test_model_a.py": FLOOR_TEST})
    fuzz = work / "fuzz"
    _project(fuzz, {f"test_model_{m}.py": FUZZ_TESTS for m in "abcde"})
    lazy = work / "lazy"
    _project(lazy, {f"test_model_{m}.py": FUZZ_TESTS for m in "abcde"}, LAZY_CONFTEST)
    cold_runs = [_pytest(src, small, work / f"cold-cache-{i}", "-n", "0") for i in range(repeats)]
    _pytest(src, floor, work / "floor-cache", "-n", "0")  # writes the floor's bytecode
    warm_runs: list[Run] = []
    floor_runs: list[Run] = []
    nobytecode: list[Run] = []
    for _ in range(repeats):
        warm_runs.append(_pytest(src, small, work / "cold-cache-0", "-n", "0"))
        floor_runs.append(_pytest(src, floor, work / "floor-cache", "-n", "0"))
        nobytecode.append(_pytest(src, small, work / "cold-cache-0", "-n", "0", bytecode=False))
    pairs: dict[str, tuple[list[Run], list[Run]]] = {}
    for name, project in (("serial", suite), ("fuzz_serial", fuzz), ("lazy_serial", lazy)):
        cache = work / f"{name}-cache"
        _pytest(src, project, cache, "-n", "0")  # fill
        _pytest(src, project, cache, "-n", "2")  # xdist's own bytecode
        serial: list[Run] = []
        parallel: list[Run] = []
        for _ in range(repeats):
            serial.append(_pytest(src, project, cache, "-n", "0"))
            parallel.append(_pytest(src, project, cache, "-n", "2"))
        pairs[name] = serial, parallel
    serial, parallel = pairs["serial"]
    fuzz_serial, fuzz_parallel = pairs["fuzz_serial"]
    lazy_serial, lazy_parallel = pairs["lazy_serial"]
    numbers: dict[str, object] = {
        "warm_imports": sorted({n for run in warm_runs + serial for n, hit in run[1].items() if hit}),
        "warm_summary": warm_runs[-1][2],
        "parallel_ratio": statistics.median(p[0] / s[0] for p, s in zip(parallel, serial, strict=True)),
        "fuzz_parallel_ratio": statistics.median(
            p[0] / s[0] for p, s in zip(fuzz_parallel, fuzz_serial, strict=True)
        ),
        "lazy_parallel_ratio": statistics.median(
            p[0] / s[0] for p, s in zip(lazy_parallel, lazy_serial, strict=True)
        ),
    }
    runs_by_key = (
        ("cold", cold_runs), ("warm", warm_runs), ("floor", floor_runs), ("nobytecode", nobytecode),
        ("serial", serial), ("parallel", parallel),
        ("fuzz_serial", fuzz_serial), ("fuzz_parallel", fuzz_parallel),
        ("lazy_serial", lazy_serial), ("lazy_parallel", lazy_parallel),
    )  # fmt: skip
    for key, runs in runs_by_key:
        numbers[key] = statistics.median(run[0] for run in runs)
        numbers[f"{key}_cpu"] = statistics.median(run[3] for run in runs)
    return numbers


def _row(name: str, numbers: dict[str, object], baseline: dict[str, object] | None, key: str) -> str:
    value = float(numbers[key])  # type: ignore[arg-type]
    cpu = float(numbers[f"{key}_cpu"])  # type: ignore[arg-type]
    if baseline is None:
        return f"| {name} | {value:.1f} s | {cpu:.1f} s |"
    before = float(baseline[key])  # type: ignore[arg-type]
    before_cpu = float(baseline[f"{key}_cpu"])  # type: ignore[arg-type]
    return (
        f"| {name} | {before:.1f} s | {value:.1f} s | {before / value:.1f}x "
        f"| {before_cpu:.1f} s | {cpu:.1f} s |"
    )


def report(
    numbers: dict[str, object],
    baseline: dict[str, object] | None,
    imports: dict[str, float],
    repeats: int,
    examples: int,
) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (
        f"| whole pytest process (median of {repeats}) | wall before | wall now | speed-up "
        "| CPU before | CPU now |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    if baseline is None:
        head = f"| whole pytest process (median of {repeats}) | wall | CPU |\n| --- | ---: | ---: |"
    rows = [
        _row("2-test file, cold (converts fp32 and fp16)", numbers, baseline, "cold"),
        _row("2-test file, warm (both from the disk cache)", numbers, baseline, "warm"),
        _row("the floor: 2 tests of the same fixtures without `coreml_model` (python, pytest, torch)", numbers, baseline, "floor"),
        _row("2-test file, warm, `PYTHONDONTWRITEBYTECODE=1`", numbers, baseline, "nobytecode"),
        _row("40-test suite, warm, serial (`-n 0`)", numbers, baseline, "serial"),
        _row("40-test suite, warm, `-n 2`", numbers, baseline, "parallel"),
        _row("40-test suite with searches, warm, serial (`-n 0`)", numbers, baseline, "fuzz_serial"),
        _row("40-test suite with searches, warm, `-n 2`", numbers, baseline, "fuzz_parallel"),
        _row("the same, torch imported in the fixtures, serial (`-n 0`)", numbers, baseline, "lazy_serial"),
        _row("the same, torch imported in the fixtures, `-n 2`", numbers, baseline, "lazy_parallel"),
    ]
    heavy = [str(name) for name in numbers["warm_imports"]]  # type: ignore[attr-defined]
    imported = ", ".join(f"`{n}`" for n in heavy) if heavy else "none of them"
    plugin_cost = float(numbers["warm"]) - float(numbers["floor"])  # type: ignore[arg-type]
    ratio = float(numbers["parallel_ratio"])  # type: ignore[arg-type]
    fuzz_ratio = float(numbers["fuzz_parallel_ratio"])  # type: ignore[arg-type]
    lazy_ratio = float(numbers["lazy_parallel_ratio"])  # type: ignore[arg-type]
    uptime = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines = [
        SECTION,
        "",
        f"Measured with `benchmarks/bench_startup.py` on {platform.machine()} {platform.system()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(load average {load:.2f} at the end; 1, 5, 15 minutes: {uptime[0]:.2f}, {uptime[1]:.2f}, {uptime[2]:.2f}). Each figure is a fresh `python -m pytest` process, "
        "wall clock and CPU time (user + system, workers included: steadier than wall on a loaded host), emulator backend; the 2-test file is one `assert_parity` test at fp32 and fp16, "
        "the suite 5 small MLPs x 4 tests x 2 precisions: one `assert_parity` call, or (the suite "
        f"with searches) two of the four tests a `@given` search of {examples} examples."
        + (
            " Before/after columns come from the same run (`--baseline-src`: the main branch's package)."
            if baseline is not None
            else ""
        ),
        "",
        head,
        *rows,
        "",
        f"Of coremltools, torchao, scikit-learn and hypothesis, the warm runs imported: **{imported}** "
        "(a conftest hook reads `sys.modules` at session end). "
        f"Warm summary line: `{numbers['warm_summary']}`.",
        "",
        f"- warm 2-test file: **{float(numbers['warm']):.1f} s** wall (target: under 5 s); "  # type: ignore[arg-type]
        f"the plugin's share over the floor: {plugin_cost:.1f} s.",
        f"- 40-test suite, warm: `-n 2` / serial = **{ratio:.2f}** with tests of a few milliseconds, "
        f"**{fuzz_ratio:.2f}** with the searches, **{lazy_ratio:.2f}** with the searches and a conftest "
        "that imports torch inside its fixtures (medians of the per-repeat ratios; target: below 1). "
        "`-n 2` runs three processes: the controller loads the conftest (and so torch, when the "
        "conftest imports it at the top) before it starts the workers, and each worker pays the "
        "floor and the plugin's share again; it wins once the tests' own time exceeds about two "
        "floors, or one floor when the conftest imports torch lazily.",
        "- hypothesis' own pytest plugin imports hypothesis in its terminal summary "
        "(`hypothesis.internal.observability`) in every run where hypothesis is installed, after "
        "the session's tests: part of the floor (`-p no:hypothesispytest` skips it in a run "
        "without `@given` tests).",
        "- Python writes bytecode by default; with `PYTHONDONTWRITEBYTECODE=1` (as in this "
        "project's sandbox) every process compiles the plugin's modules again and pytest "
        "assertion-rewrites them (the plugin, hypothesis and anyio are `pytest11` plugins), "
        "which the row above measures.",
        "",
        "Reading these numbers: the issue's targets are a warm 2-test file under 5 s wall and `-n 2` "
        "faster than serial on a 40-test suite, on this host when it is quiet. Wall time scales with the "
        "host's load (other jobs share the 2 cores), so compare rows of one run, and "
        "the CPU columns, which a loaded host inflates far less. `-n 2` can beat serial only with a core "
        "free for each worker, and each worker pays the warm start again (torch's import).",
        "",
        "### Where a warm start's time goes",
        "",
        "| import, in a fresh process (wall, median of 3) | seconds |",
        "| --- | ---: |",
        *(f"| {name} | {seconds:.2f} |" for name, seconds in imports.items()),
        "",
        "What remains in a warm start is the floor: Python, pytest and its plugins, and torch's own "
        "import (a `torch_model` fixture needs it), then the plugin's share: its modules and the "
        "emulator's kernels, the cached programs parsed and planned, the lint. coremltools is imported "
        "only when a model is missing from the cache (a conversion), by diagnosis of a failure, or when "
        "a test reads something of `coreml_model.mlmodel` other than its spec (the `SavedModel` builds "
        "coremltools' `MLModel` then; `coreml_model.to_mlmodel()` asks for it). hypothesis is imported "
        "by a test file that uses it, not by `assert_parity`. With `-n 2` each worker pays the floor "
        "once.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="one repeat, print only")
    parser.add_argument("--examples", type=int, default=100, help="examples per search of the suite with searches")
    args = parser.parse_args()
    os.environ["BENCH_EXAMPLES"] = str(args.examples)
    repeats = 1 if args.quick else args.repeats
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        quiet = "from pytest_coreml_parity._coremltools import import_coremltools"
        imports = {
            "`import torch`": _import_time("", "import torch"),
            "`import coremltools`, torch already imported (all of `_deps`)": _import_time(
                "import torch", "import coremltools"
            ),
            "the plugin's `import_coremltools()` on a miss, torch already imported": _import_time(
                f"import torch; {quiet}", "import_coremltools()"
            ),
            "`import hypothesis` (a file with `@given` tests), torch already imported": _import_time(
                "import torch", "import hypothesis, hypothesis.extra.numpy"
            ),
            "the warm path: `pytest_coreml_parity.emulator` and the Core ML schema, torch already imported": _import_time(
                "import torch",
                "import pytest_coreml_parity.emulator, pytest_coreml_parity.emulator.proto as p; "
                "p.model_pb2(); p.mil_pb2()",
            ),
        }
        baseline = measure(args.baseline_src, work / "baseline", repeats) if args.baseline_src else None
        numbers = measure(ROOT / "src", work / "now", repeats)
        text = report(numbers, baseline, imports, repeats, args.examples)
        print(text)
        if not args.quick:
            write_section(ROOT / "docs" / "performance.md", SECTION, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
