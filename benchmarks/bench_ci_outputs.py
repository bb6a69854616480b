"""What the CI outputs cost per test, and how big they are.

For two models (the complex division and a small conv net), bound at fp16 on the
emulator: ``assert_parity`` without and with the verdict log (alternating rounds,
medians), then the per-test work of the report hook (the record with its metrics and the
JUnit properties; the golden dump with its package copy), the dump's size, and the JSON
report and summary of a 200-test session made of these records. Writes the '## CI outputs'
section of docs/performance.md (``--no-write`` prints it instead).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _docs import set_threads, write_section  # noqa: E402

set_threads(sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pytest_coreml_parity import assert_parity  # noqa: E402
from pytest_coreml_parity.cache import ConversionCache  # noqa: E402
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime  # noqa: E402
from pytest_coreml_parity.report.dump import write_dump  # noqa: E402
from pytest_coreml_parity.report.record import call_record, junit_properties  # noqa: E402
from pytest_coreml_parity.report.session import Collector  # noqa: E402
from pytest_coreml_parity.report.summary import markdown  # noqa: E402
from pytest_coreml_parity.settings import Settings  # noqa: E402
from pytest_coreml_parity.verdict_log import VerdictLog  # noqa: E402

SECTION = "## CI outputs"


class ComplexDiv(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


def conv_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 1000),
    )  # fmt: skip


def zoo_resnet18() -> torch.nn.Module:
    """The zoo's resnet18 (tools/zoo: random weights, batch norm calibrated)."""
    sys.path.insert(0, str(ROOT))
    from tools.zoo.registry import get

    model: torch.nn.Module = get("resnet18").model()
    return model


#: label -> (model, input shape, assert_parity calls per round).
MODELS: dict[str, tuple[Callable[[], torch.nn.Module], tuple[int, ...], int]] = {
    "complex division (8, 4)": (ComplexDiv, (8, 4), 20),
    "conv net (1, 3, 32, 32) -> 1000": (conv_net, (1, 3, 32, 32), 20),
    "zoo resnet18 (1, 3, 224, 224)": (zoo_resnet18, (1, 3, 224, 224), 2),
}


def _median_us(fn: Callable[[], Any], rounds: int, calls: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def measure(label: str, rounds: int, out: Path) -> dict[str, Any]:
    make, shape, calls = MODELS[label]
    torch.manual_seed(0)
    model = CoreMLModel(
        ModelSettings(precision="fp16"), Runtime(ConversionCache(out / "cache"), "emulator")
    )
    model.bind(make().eval(), (torch.randn(shape),), "bench")
    x = torch.randn(shape)
    setup = {"precision": "fp16", "backend": "emulator", "stack": "coreml", "profile": "typed",
             "event": "converted", "seconds": 1.0, "model": label}  # fmt: skip

    def plain() -> None:
        model.verdicts = None
        assert_parity(model, x)

    def logged() -> None:
        model.verdicts = VerdictLog(keep_arrays=True)
        assert_parity(model, x)

    base, with_log = [], []
    for _ in range(rounds):  # alternating rounds
        base.append(_median_us(plain, 1, calls))
        with_log.append(_median_us(logged, 1, calls))
    model.verdicts = VerdictLog(keep_arrays=True)
    assert_parity(model, x)
    kept = next(iter(model.verdicts.kept.values()))
    spare = VerdictLog(keep_arrays=True)

    def add() -> None:  # the log's own work in one call, without the emulator's noise
        spare.start_call()
        spare.add(kept.output, kept.judgement, kept.inputs, kept.actual, kept.expected)

    add_us = _median_us(add, rounds, 200)
    record_us = _median_us(lambda: junit_properties(setup, call_record(model, headroom=None, diagnosis=None, dump=None)), rounds, 20)
    sizes, shared_sizes = [], []
    count = iter(range(10**6))

    def dump() -> None:  # the first test of this package: a new folder, the package copied
        sizes.append(write_dump(out / f"dumps{next(count)}", model, f"bench::{label}", setup, 1e6)["bytes"])

    def shared() -> None:  # another test of the same package: arrays and manifest only
        node = f"bench::{label}[{next(count)}]"
        shared_sizes.append(write_dump(out / "dumps-shared", model, node, setup, 1e6)["bytes"])

    dump_us = _median_us(dump, rounds, 1)
    shared()  # the package's first copy into the shared folder
    shared_us = _median_us(shared, rounds, 1)
    record = call_record(model, headroom=None, diagnosis=None, dump={"path": "x", "bytes": sizes[-1], "package": "copy", "note": None})
    package = sum(p.stat().st_size for p in Path(model.package_path).rglob("*") if p.is_file())
    return {"label": label, "plain": statistics.median(base), "logged": statistics.median(with_log),
            "add": add_us, "record": record_us, "dump": dump_us, "dump_bytes": sizes[-1], "package_bytes": package,
            "shared": shared_us, "shared_bytes": shared_sizes[-1],
            "record_obj": record, "setup": setup}  # fmt: skip


def session(records: list[dict[str, Any]], tests: int, rounds: int, out: Path) -> tuple[float, int, float, int]:
    """(ms, bytes) of the JSON report and of the summary for ``tests`` tests."""
    collector = Collector(Settings(report=out / "r.json"), "coreml_parity", controller=True)
    for i in range(tests):
        r = records[i % len(records)]
        setup = SimpleNamespace(nodeid=f"t.py::test_{i}", when="setup", outcome="passed", duration=0.1,
                                failed=False, skipped=False, coreml_parity=r["setup"])  # fmt: skip
        call = SimpleNamespace(nodeid=f"t.py::test_{i}", when="call", outcome="passed", duration=0.1,
                               failed=False, skipped=False, coreml_parity_record=r["record_obj"])  # fmt: skip
        collector.pytest_runtest_logreport(setup)
        collector.pytest_runtest_logreport(call)
    text = ""

    def write() -> None:
        nonlocal text
        text = json.dumps(collector.document(), indent=1, allow_nan=False)
        (out / "r.json").write_text(text)

    report_us = _median_us(write, rounds, 1)
    summary = ""

    def summarize() -> None:
        nonlocal summary
        summary = markdown(collector.document())

    summary_us = _median_us(summarize, rounds, 1)
    return report_us / 1e3, len(text), summary_us / 1e3, len(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-ci-"))
    try:
        rows = [measure(label, args.rounds, out) for label in MODELS]
        tests = 200
        report_ms, report_bytes, summary_ms, summary_bytes = session(rows, tests, args.rounds, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    table = []
    for r in rows:
        table.append(
            f"| {r['label']} | {r['plain']:.0f} | {r['logged']:.0f} | {r['logged'] / r['plain']:.2f} | {r['add']:.0f} | "
            f"{r['record']:.0f} | {r['dump'] / 1e3:.1f} | {r['dump_bytes'] / 1024:.1f} | {r['package_bytes'] / 1024:.1f} | "
            f"{r['shared'] / 1e3:.1f} | {r['shared_bytes'] / 1024:.1f} |"
        )
        print(table[-1], flush=True)
    lines = [
        SECTION,
        "",
        "What `--junitxml`, `--coreml-report`, `--coreml-summary` and `--coreml-dump` add per test "
        "(docs/ci.md), fp16 on the emulator, same run, medians. *assert_parity* is one call without "
        "and with the verdict log (alternating rounds); *record* is the test's record with its "
        "metrics and JUnit properties (once per test); *dump* writes the golden dump of a package's first "
        "test (arrays, package copy into `packages/<sha256>/`, manifest with sha256s); *shared dump* is "
        "another test of the same package (its arrays and manifest; the package is hashed, not copied). *log.add* times the log's own work in one call "
        "directly: the difference between the two assert_parity columns beyond it is run-to-run noise "
        "of the emulator on shared cores. Produced by `benchmarks/bench_ci_outputs.py`.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.machine()} Linux, Python {platform.python_version()}, numpy "
        f"{np.__version__}, torch {torch.__version__}, 2 CPU cores shared with other jobs",
        f"- command: `.venv/bin/python benchmarks/bench_ci_outputs.py --rounds {args.rounds}`",
        "",
        "| model | assert_parity µs | with log µs | ratio | log.add µs | record µs | dump ms | dump KiB | of which package KiB | shared dump ms | shared dump KiB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        *table,
        "",
        f"A session of {tests} such tests: the JSON report is {report_bytes / 1024:.0f} KiB "
        f"({report_bytes / tests:.0f} bytes per test) and takes {report_ms:.1f} ms to write; the "
        f"summary is {summary_bytes} bytes and takes {summary_ms:.1f} ms.",
        "",
    ]
    text = "\n".join(lines)
    if args.no_write:
        print(text)
    else:
        write_section(ROOT / "docs/performance.md", SECTION, text)
        print(f"wrote the '{SECTION}' section of docs/performance.md")


if __name__ == "__main__":
    main()
