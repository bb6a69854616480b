#!/usr/bin/env python
"""Run coremltools' own MIL op tests with predictions routed through the emulator.

Runs pytest once per precision and per target (an iOS directory or a single test
file of the installed ``coremltools/converters/mil/mil/ops/tests``; with
``--suite torch``, a test file of its torch frontend's tests,
``coremltools/converters/mil/frontend/torch/test``), with the
plugin ``tools.conformance.plugin`` (this repository's ``tools/``, not
installed), then prints a per-op table
(pass / fail / unsupported / skipped / no-compare / error) and optionally writes
it as markdown.

Examples::

    .venv/bin/python scripts/conformance.py --precision fp32 --markdown /tmp/conf.md
    .venv/bin/python scripts/conformance.py --precision fp16 iOS17 -k "softmax"
    .venv/bin/python scripts/conformance.py --precision fp32 \\
        iOS14/test_elementwise_binary.py -k add --perturb sign   # must show failures
    .venv/bin/python scripts/conformance.py --suite torch --precision both --sample 20

Exit status: 0 when no test is in the ``fail`` category, 1 otherwise, 2 on
harness errors (a pytest run that crashed or timed out).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The repository root: ``tools/`` (the harness) is importable from here only.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.conformance.results import (  # noqa: E402  (needs REPO on sys.path)
    CATEGORIES,
    TestResult,
    read_jsonl,
    render_failure_groups,
    render_fp16_typed_summary,
    render_markdown,
    render_text,
    totals,
    write_jsonl,
)

#: Categories a --rerun repeats: the ones a newly landed kernel can change.
RERUN = ("fail", "unsupported", "error")
PLUGIN = "tools.conformance.plugin"
#: Each suite: its directory inside the installed coremltools, and the targets a run
#: covers by default (one pytest process each).
SUITES = {
    "ops": "converters/mil/mil/ops/tests",
    "torch": "converters/mil/frontend/torch/test",
}
DEFAULT_TARGETS = {
    "ops": ("iOS14", "iOS15", "iOS16", "iOS17", "iOS18"),
    # The torch frontend's test files (test_internal_graph.py and test_passes.py test
    # the frontend's graph passes without predicting: deselected, no mlprogram backend).
    "torch": (
        "test_torch_ops.py",
        "test_torch_conversion_api.py",
        "test_torch_export_conversion_api.py",
        "test_torch_quantization_ops.py",
        "test_torch_export_quantization.py",
        "test_torch_stateful_model.py",
        "test_custom_ops.py",
        "test_examples.py",
    ),
}


@dataclass(frozen=True)
class Run:
    precision: str
    target: str
    seconds: float
    returncode: int
    log: Path


def tests_dir(suite: str = "ops") -> Path:
    spec = importlib.util.find_spec("coremltools")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("coremltools is not installed in this interpreter")
    path = Path(next(iter(spec.submodule_search_locations))) / SUITES[suite]
    if not path.is_dir():
        raise SystemExit(f"coremltools' {suite} tests are not shipped in this wheel: {path} is missing")
    return path


def target_of(nodeid: str) -> str:
    """The run target a test id belongs to: its iOS directory, or its test file."""
    return nodeid.split("::", 1)[0].split("/", 1)[0]


def pytest_command(
    root: Path, target: str, precision: str, report: Path, args: argparse.Namespace
) -> list[str]:
    cmd = [
        sys.executable, "-m", "pytest", str(root / target),
        "-c", os.devnull, "--rootdir", str(root),
        "-p", "no:cacheprovider", "-p", "no:coreml_parity", "-p", PLUGIN,
        "--conformance-precision", precision, "--conformance-report", str(report),
        "-q", "--disable-warnings", "--tb=line", "-o", "console_output_style=classic",
    ]
    if args.k:
        cmd += ["-k", args.k]
    if args.perturb:
        cmd += ["--conformance-perturb", args.perturb]
    if args.fp16_tolerance:
        cmd += ["--conformance-fp16-tolerance", args.fp16_tolerance]
    if args.fp16_typed_tolerance:
        cmd += ["--conformance-fp16-typed-tolerance", args.fp16_typed_tolerance]
    if args.fp16_execution:
        cmd += ["--conformance-fp16-execution", args.fp16_execution]
    if args.only_ids:
        cmd += ["--conformance-only-ids", str(args.only_ids)]
    if args.sample != 1:
        cmd += ["--conformance-sample", str(args.sample)]
    cmd += args.pytest_args
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    return cmd


def run_one(root: Path, target: str, precision: str, report: Path, logs: Path, args: argparse.Namespace) -> Run:
    log = logs / f"{precision}-{target.replace('/', '_')}.log"
    cmd = pytest_command(root, target, precision, report, args)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": pythonpath}
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        try:
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=args.timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
            fh.write(f"\nTIMEOUT after {args.timeout} s\n")
    return Run(precision, target, time.perf_counter() - start, code, log)


def merge(previous: list[TestResult], rerun: list[TestResult], precision: str) -> list[TestResult]:
    """``previous`` (of ``precision``) with the rerun tests' results replacing theirs."""
    fresh = {r.nodeid: r for r in rerun}
    wanted = ("fp32", "fp16") if precision == "all" else (precision,)
    return [fresh.get(r.nodeid, r) for r in previous if r.precision in wanted]


def markdown(results: dict[str, list[TestResult]], runs: list[Run], args: argparse.Namespace) -> str:
    lines = [
        f"Generated {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC by "
        f"`scripts/conformance.py {' '.join(sys.argv[1:])}`.",
        "",
    ]
    for precision, rows in results.items():
        total = totals(rows)
        seconds = sum(r.seconds for r in runs if r.precision in (precision, "all"))
        lines += [
            f"### {precision}",
            "",
            f"{len(rows)} tests in {seconds:.0f} s: "
            + ", ".join(f"{total[c]} {c}" for c in CATEGORIES),
            "",
            "Run times: " + ", ".join(f"{r.target} {r.seconds:.0f} s" for r in runs if r.precision in (precision, "all")),
            "",
            render_markdown(rows),
            "",
            f"Failures ({precision}), grouped by op and cause, with example test ids "
            "(every id is in the --jsonl file):",
            "",
            render_failure_groups(rows, "fail"),
            "",
            f"fp16-typed programs judged at fp16 resolution ({precision}), by op: how far the "
            "emulator was from coremltools' reference, in fp16 ulps:",
            "",
            render_fp16_typed_summary(rows),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=None, help="iOS directories or files under coremltools' ops/tests (--suite ops), or test files of its torch frontend tests (--suite torch). Default: all of the suite.")
    parser.add_argument("--suite", choices=tuple(SUITES), default="ops", help="ops: the MIL op tests (mil/ops/tests); torch: the torch frontend's tests (frontend/torch/test). Default: ops.")
    parser.add_argument("--sample", type=int, default=1, metavar="K", help="Run a deterministic 1-in-K sample of the tests (by a CRC32 of the test id). Default: 1 (all).")
    parser.add_argument("--precision", choices=("fp32", "fp16", "both", "all"), default="both", help="both: one pytest run per precision (separate run times); all: one run for both precisions (faster start-up). Default: both.")
    parser.add_argument("-k", default=None, help="pytest -k expression (op or test names).")
    parser.add_argument("--perturb", default=None, help="Corrupt emulator outputs: sign | rel=X | abs=X (proves comparisons).")
    parser.add_argument(
        "--fp16-execution",
        choices=("typed", "float32"),
        default=None,
        help="How fp16-typed ops execute in the emulator (typed: binary16 storage; float32: as Core ML's CPU may). Default: typed.",
    )
    parser.add_argument("--fp16-tolerance", metavar="RTOL,ATOL", default=None, help="Compare fp16 at this tolerance instead of coremltools' atol>=0.5/rtol>=0.05.")
    parser.add_argument(
        "--fp16-typed-tolerance",
        metavar="RTOL,ATOL|off",
        default=None,
        help="fp32 suite: judge fp16-typed programs that fail the fp32 tolerance again at this tolerance (category pass-fp16-typed); 'off' to disable. Default: the plugin's 1e-2,1e-2.",
    )
    parser.add_argument("--rerun", type=Path, default=None, help="A previous --jsonl: rerun only its fail/unsupported/error tests and merge (kernels landed since).")
    parser.add_argument("--only-ids", type=Path, default=None, metavar="FILE", help="Run only the test ids listed in FILE, one per line, as pytest names them from the suite's directory (e.g. test_torch_ops.py::TestFoo::test_bar[...]).")
    parser.add_argument("--markdown", type=Path, default=None, help="Write the tables as markdown to this file.")
    parser.add_argument("--jsonl", type=Path, default=None, help="Keep per-test results here. Default: a temporary file.")
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds per pytest run. Default: 3600.")
    parser.add_argument("--nice", type=int, default=10, help="Run pytest under nice -n N (0: off). Default: 10.")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    args.pytest_args = extra  # everything after -- goes to pytest unchanged

    root = tests_dir(args.suite)
    if not args.targets:
        args.targets = list(DEFAULT_TARGETS[args.suite])
    precisions = ("fp32", "fp16") if args.precision == "both" else (args.precision,)
    workdir = Path(tempfile.mkdtemp(prefix="coreml-conformance-"))
    previous = read_jsonl(args.rerun) if args.rerun else []
    if args.rerun and args.only_ids:
        raise SystemExit("--rerun and --only-ids both select tests; give one of them")
    if args.rerun:
        args.only_ids = workdir / "only-ids.txt"
        args.only_ids.write_text("\n".join(r.nodeid for r in previous if r.category in RERUN) + "\n", encoding="utf-8")
        targets = sorted({target_of(r.nodeid) for r in previous if r.category in RERUN})
        args.targets = [t for t in args.targets if target_of(t) in targets]
    jsonl = args.jsonl or workdir / "results.jsonl"
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.unlink(missing_ok=True)
    runs: list[Run] = []
    results: dict[str, list[TestResult]] = {}
    for precision in precisions:
        report = workdir / f"{precision}.jsonl"
        for target in args.targets:
            run = run_one(root, target, precision, report, workdir, args)
            runs.append(run)
            print(f"[{precision}] {target}: exit {run.returncode} in {run.seconds:.1f} s (log {run.log})", flush=True)
        rows = read_jsonl(report) if report.exists() else []
        if args.rerun:
            rows = merge(previous, rows, precision)
        for wanted in ("fp32", "fp16") if precision == "all" else (precision,):
            results[wanted] = [r for r in rows if r.precision == wanted]
        write_jsonl(rows, jsonl)

    for precision, rows in results.items():
        seconds = sum(r.seconds for r in runs if r.precision in (precision, "all"))
        print(f"\n== {precision}: {len(rows)} tests, {seconds:.0f} s ==")
        print(render_text(rows))
    if args.markdown:
        args.markdown.write_text(markdown(results, runs, args), encoding="utf-8")
        print(f"\nmarkdown written to {args.markdown}")
    # pytest exit codes: 0 ok, 1 tests failed (expected: unsupported ops fail), 5 none collected.
    if any(r.returncode not in (0, 1, 5) for r in runs):
        return 2
    return 1 if any(r.category == "fail" for rows in results.values() for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
