#!/usr/bin/env python
"""Core AI interpreter speed and conversion time, as ratios to torch / coremltools.

Per model (complex division, a transformer block, a small CNN) and precision (fp32, fp16):

* **call time**: torch eager vs the Core AI program run on coreai-core's interpreter
  through the isolated worker (what the plugin will pay: pickling over a pipe included;
  the interpreter alone, timed inside the worker, is a separate column),
  timed alternately in the same run (``--repeats`` rounds of ``--number`` calls each),
  medians compared. torch runs single-threaded (``--threads``), like the interpreter.
* **conversion time**: ``convert_for_coreai`` (torch.export + decompositions [+ fp16
  casting] + coreai-torch + save) vs ``ct.convert`` of the traced model to an ML Program
  (iOS16, same precision), each once after a warm-up conversion that pays the imports.

    .venv/bin/python benchmarks/bench_coreai.py
    .venv/bin/python benchmarks/bench_coreai.py --quick --model complex_div
    .venv/bin/python benchmarks/bench_coreai.py --write-docs docs/performance.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _docs import set_threads

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Core AI interpreter speed"


THREADS = set_threads(sys.argv[1:])

import torch  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.coreai.models import ComplexDiv, SmallCNN, TransformerBlock, seeded  # noqa: E402

from pytest_coreml_parity.coreai import convert_for_coreai, default_worker  # noqa: E402


@dataclass
class Case:
    name: str
    label: str
    make: Callable[[], torch.nn.Module]
    inputs: Callable[[], tuple[torch.Tensor, ...]]


CASES = [
    Case("complex_div", "complex division (64x4)", ComplexDiv, lambda: (torch.randn(64, 4),)),
    Case(
        "transformer",
        "transformer block (2x16x64)",
        lambda: seeded(TransformerBlock()),
        lambda: (torch.randn(2, 16, 64),),
    ),
    Case(
        "cnn",
        "small CNN (2x3x32x32)",
        lambda: seeded(SmallCNN()),
        lambda: (torch.randn(2, 3, 32, 32),),
    ),
]


@dataclass
class Row:
    case: Case
    precision: str
    torch_us: float
    coreai_us: float
    interpreter_us: float
    coreai_convert_s: float
    ct_convert_s: float | None
    emulator_us: float | None = None
    sequential_us: float | None = None

    @property
    def ratio(self) -> float:
        return self.coreai_us / self.torch_us


def _time(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def _ct_convert(
    model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], precision: str
) -> tuple[float, Any] | None:
    """(seconds, the MLModel) of ``ct.convert`` of the traced model, or None without coremltools."""
    try:
        import coremltools as ct
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        traced = torch.jit.trace(model, inputs)  # type: ignore[no-untyped-call]
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(shape=x.shape) for x in inputs],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS16,
            skip_model_load=True,
        )
        return time.perf_counter() - start, mlmodel


def bench(case: Case, precision: str, *, repeats: int, number: int) -> Row:
    torch.manual_seed(0)
    model = case.make().eval()
    inputs = case.inputs()
    start = time.perf_counter()
    program = convert_for_coreai(model, inputs, precision)
    coreai_convert = time.perf_counter() - start
    converted = _ct_convert(model, inputs, precision)
    ct_convert = converted[0] if converted is not None else None
    emulators: dict[str, Any] = {}
    if converted is not None:  # the same model through our emulator, under both profiles
        from pytest_coreml_parity.emulator import Emulator

        for profile in ("typed", "fp16-sequential"):
            emulator = Emulator(converted[1], fp16_execution=profile)
            names = [spec.name for spec in emulator.inputs]
            emulator_feed = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
            emulators[profile] = (emulator, emulator_feed)
    worker = default_worker()
    feed = program.feed(*inputs)

    def run_torch() -> None:
        with torch.no_grad():
            model(*inputs)  # the parity reference: torch fp32 at every precision

    def run_coreai() -> None:
        worker.run(program, feed)

    for _ in range(3):  # warm-up: loads and compiles the program in the worker
        run_torch()
        run_coreai()
    torch_times, coreai_times, interpreter_times = [], [], []
    emulator_times: dict[str, list[float]] = {profile: [] for profile in emulators}
    for _ in range(repeats):
        torch_times.append(_time(run_torch, number))
        coreai_times.append(_time(run_coreai, number))
        for profile, (emulator, emulator_feed) in emulators.items():
            emulator_times[profile].append(
                _time(lambda e=emulator, f=emulator_feed: e.run(f), number)
            )
        inside = worker.request(("time", str(program.directory), feed, number), model=program.name)
        interpreter_times.append(statistics.mean(inside) * 1e6)
    return Row(
        case,
        precision,
        statistics.median(torch_times),
        statistics.median(coreai_times),
        statistics.median(interpreter_times),
        coreai_convert,
        ct_convert,
        statistics.median(emulator_times["typed"]) if "typed" in emulator_times else None,
        statistics.median(emulator_times["fp16-sequential"])
        if "fp16-sequential" in emulator_times
        else None,
    )


HEADER = [
    "| model | precision | torch µs/call | Core AI µs/call (worker call) | interpreter only µs | ratio | emulator µs (typed) | emulator µs (fp16-sequential) | coreai convert s | ct.convert s |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def row_line(row: Row) -> str:
    ct_s = "n/a" if row.ct_convert_s is None else f"{row.ct_convert_s:.2f}"
    emulator = "n/a" if row.emulator_us is None else f"{row.emulator_us:.1f}"
    sequential = "n/a" if row.sequential_us is None else f"{row.sequential_us:.1f}"
    return (
        f"| {row.case.label} | {row.precision} | {row.torch_us:.1f} | {row.coreai_us:.1f} | "
        f"{row.interpreter_us:.1f} | "
        f"{row.ratio:.1f} | {emulator} | {sequential} | {row.coreai_convert_s:.2f} | {ct_s} |"
    )


def section_text(rows: list[Row], command: str, note: str) -> str:
    from importlib.metadata import version

    lines = [
        SECTION,
        "",
        f"Measured with `{command}` on {platform.machine()} ({os.cpu_count()} CPUs), Python "
        f"{platform.python_version()}, torch {torch.__version__} ({THREADS} thread), coreai-core "
        f"{version('coreai-core')}, coreai-torch {version('coreai-torch')}. The Core AI column is a "
        "call through the isolated worker (pipe + pickle included), 'interpreter only' the same call "
        "timed inside the worker; ratio = worker call / torch. torch is eager fp32 at both "
        "precisions (the parity reference). The emulator columns run the coremltools conversion "
        "of the same model (iOS16, same precision) in this process, under the default `typed` "
        "profile and under `fp16-sequential` (the interpreter's fp16 matmul accumulation). "
        "Conversion times are one conversion after a warm-up.",
        "",
        *HEADER,
        *(row_line(row) for row in rows),
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", action="append", default=None, help="Only these models (repeatable)."
    )
    parser.add_argument("--precision", choices=("fp32", "fp16", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="Smoke mode: 3 rounds of 3 calls.")
    parser.add_argument("--repeats", type=int, default=7, help="Timed rounds per side. Default: 7.")
    parser.add_argument("--number", type=int, default=20, help="Calls per round. Default: 20.")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads. Default: 1.")
    parser.add_argument(
        "--write-docs", type=Path, default=None, help=f"Write the '{SECTION}' section."
    )
    parser.add_argument("--note", default="", help="A sentence appended to the docs section.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    known = {case.name for case in CASES}
    if set(args.model or ()) - known:
        parser.error(f"unknown models {sorted(set(args.model) - known)}; known: {sorted(known)}")
    repeats, number = (3, 3) if args.quick else (args.repeats, args.number)
    precisions = ("fp32", "fp16") if args.precision == "both" else (args.precision,)
    convert_for_coreai(ComplexDiv(), (torch.randn(2, 4),), "fp16")  # warm-up: imports
    _ct_convert(ComplexDiv(), (torch.randn(2, 4),), "fp32")
    rows = []
    print("\n".join(HEADER), flush=True)
    for case in CASES:
        if args.model and case.name not in args.model:
            continue
        for precision in precisions:
            rows.append(bench(case, precision, repeats=repeats, number=number))
            print(row_line(rows[-1]), flush=True)
    if args.write_docs:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _docs import write_section

        command = ".venv/bin/python benchmarks/bench_coreai.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--note")
        )
        write_section(args.write_docs, SECTION, section_text(rows, command.strip(), args.note))
        print(f"\nwrote the '{SECTION}' section of {args.write_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
