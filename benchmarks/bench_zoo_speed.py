#!/usr/bin/env python
"""Emulator against torch eager on the zoo's real models, in one process.

The zoo (``python -m tools.zoo run``) times each model in its own pytest subprocess,
by wall time, next to everything else the machine runs. This benchmark times the same
models the same way a test calls them (``coreml_model(*inputs)``, through the plugin's
default conversion; a causal LM as a fresh prefill, its state reset and its inputs
prepared untimed, as the zoo does) but in one process: for each model and precision,
after a warm-up, the emulator and torch eager calls alternate (the order flips every
round, so a busy neighbour slows both alike) until ``--budget`` seconds are spent, and
each side's median is taken. Both sides run on one thread, and the clock is the
process's CPU time by default (``--clock wall`` for ``perf_counter``), so the ratio
stays meaningful on a loaded machine.

Targets (issue 22): median ratio <= 1.2 at fp32 and <= 1.5 at fp16, no model above 2.

    .venv/bin/python benchmarks/bench_zoo_speed.py                          # every zoo model
    .venv/bin/python benchmarks/bench_zoo_speed.py --models hf/gpt2 mobilenet_v3_small --precisions fp16
    .venv/bin/python benchmarks/bench_zoo_speed.py --cache-dir /tmp/zoo-cache --write-docs docs/performance.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))  # tools.zoo lives beside the package

from _docs import set_threads  # noqa: E402

THREADS = set_threads(sys.argv[1:])

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

TARGET_RATIO = {"fp32": 1.2, "fp16": 1.5}
MAX_RATIO = 2.0
PRECISIONS = ("fp32", "fp16")
#: The docs table sits between these two lines of docs/performance.md.
BEGIN = "<!-- bench_zoo_speed: begin -->"
END = "<!-- bench_zoo_speed: end -->"
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
#: Timed rounds per model and precision: at least, at most.
MIN_ROUNDS, MAX_ROUNDS = 5, 400


@dataclass
class Row:
    model: str
    precision: str
    torch_ms: float | None = None
    emulator_ms: float | None = None
    rounds: int = 0
    status: str = "ok"

    @property
    def ratio(self) -> float | None:
        if self.torch_ms and self.emulator_ms is not None:
            return self.emulator_ms / self.torch_ms
        return None


def alternate(
    emulator: Callable[[], Any],
    eager: Callable[[], Any],
    *,
    budget: float,
    clock: Callable[[], float],
    setup: Callable[[], Any] | None = None,
) -> tuple[float, float, int]:
    """Median seconds per call of ``emulator`` and of ``eager``, timed alternately.

    ``setup`` (untimed) runs before every emulator call. Two untimed warm-up calls per
    side; then rounds until ``budget`` seconds of timed calls (``MIN_ROUNDS`` to ``MAX_ROUNDS``).
    """

    def timed(fn: Callable[[], Any], prepare: Callable[[], Any] | None) -> float:
        if prepare is not None:
            prepare()
        start = clock()
        fn()
        return clock() - start

    for _ in range(2):
        timed(emulator, setup), timed(eager, None)
    emu: list[float] = []
    ref: list[float] = []
    spent = 0.0
    while len(emu) < MAX_ROUNDS and (len(emu) < MIN_ROUNDS or spent < budget):
        if len(emu) % 2:
            ref.append(timed(eager, None))
            emu.append(timed(emulator, setup))
        else:
            emu.append(timed(emulator, setup))
            ref.append(timed(eager, None))
        spent += emu[-1] + ref[-1]
    return statistics.median(emu), statistics.median(ref), len(emu)


def bench(name: str, precision: str, *, budget: float, clock: Callable[[], float], cache_dir: Path | None) -> Row:
    """One zoo model at one precision: bound as a test binds it, then timed against torch."""
    import torch
    from tools.zoo.registry import get

    from pytest_coreml_parity.cache import ConversionCache
    from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime

    row = Row(name, precision)
    entry = get(name)
    torch_model = entry.model()
    inputs = entry.example_inputs()
    model = CoreMLModel(ModelSettings(precision=precision), Runtime(ConversionCache(cache_dir), "emulator"))
    try:
        model.bind(torch_model, inputs)
        model(*inputs)
    except Exception as exc:  # conversion and the emulator raise all sorts; report, go on
        row.status = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90] if str(exc) else ''}"
        return row
    setup: Callable[[], Any] | None = None
    if model.torch_state_model is not None:  # a causal LM: a fresh prefill, as the zoo times it
        prepared: list[tuple[Any, ...]] = []

        def setup() -> None:
            model.reset_state()
            prepared[:] = [model.prepare(inputs)]

        def emulator() -> Any:
            return model.run_prepared(prepared[0])

    else:

        def emulator() -> Any:
            return model(*inputs)

    def eager() -> Any:
        with torch.no_grad():
            return torch_model(*inputs)

    emu, ref, rounds = alternate(emulator, eager, budget=budget, clock=clock, setup=setup)
    row.emulator_ms, row.torch_ms, row.rounds = emu * 1e3, ref * 1e3, rounds
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEADER = [
    "| model | precision | torch ms | emulator ms | ratio | rounds | status |",
    "|---|---|--:|--:|--:|--:|---|",
]


def row_line(r: Row) -> str:
    return (
        f"| {r.model} | {r.precision} | {_fmt(r.torch_ms, '.3f')} | {_fmt(r.emulator_ms, '.3f')} "
        f"| {_fmt(r.ratio, '.2f')} | {r.rounds} | {r.status} |"
    )


def summary_lines(rows: Sequence[Row]) -> list[str]:
    lines = []
    for precision in PRECISIONS:
        timed = [r for r in rows if r.precision == precision and r.ratio is not None]
        if not timed:
            continue
        ratios = [r.ratio for r in timed if r.ratio is not None]
        median = statistics.median(ratios)
        slowest = sorted(timed, key=lambda r: -(r.ratio or 0.0))[:3]
        above = sum(1 for x in ratios if x > MAX_RATIO)
        verdict = "meets" if median <= TARGET_RATIO[precision] else "misses"
        lines.append(
            f"- {precision}: median {median:.2f} over {len(ratios)} models ({verdict} <= "
            f"{TARGET_RATIO[precision]:g}); {above} above {MAX_RATIO:g}; slowest "
            + ", ".join(f"{r.model} {r.ratio:.2f}" for r in slowest)
        )
    return lines


def machine_lines(command: str, clock: str) -> list[str]:
    import numpy as np
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"- date: {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu}, {platform.system()}",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
        f"- one thread each side; clock: {'process CPU time' if clock == 'cpu' else 'wall time'}",
        f"- command: `{command}`",
    ]


def docs_text(rows: Sequence[Row], command: str, clock: str) -> str:
    return "\n".join(
        [BEGIN, *machine_lines(command, clock), "", *HEADER, *map(row_line, rows), "", *summary_lines(rows), END]
    )


def write_docs(path: Path, text: str) -> None:
    """Replace what lies between :data:`BEGIN` and :data:`END` in ``path`` (append both when absent)."""
    old = path.read_text(encoding="utf-8")
    start, end = old.find(BEGIN), old.find(END)
    if start < 0 or end < start:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    else:
        new = old[:start] + text + old[end + len(END) :]
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from tools.zoo.registry import MODELS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME", help="Zoo models by name. Default: all.")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS), help="Default: fp32 fp16.")
    parser.add_argument("--budget", type=float, default=2.0, help="Seconds of timed calls per model and precision. Default: 2.")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="cpu: process CPU time; wall: perf_counter. Default: cpu.")
    parser.add_argument("--cache-dir", type=Path, default=None, help="The plugin's conversion cache directory (reruns skip conversion). Default: none.")
    parser.add_argument("--threads", type=int, default=THREADS, help="Must be 1: one thread each side.")
    parser.add_argument("--write-docs", type=Path, default=None, metavar="MD", help=f"Write the table between {BEGIN} and {END} of this file.")
    args = parser.parse_args(argv)
    if args.threads != 1:
        parser.error("--threads: the zoo's ratios are one thread each side")
    unknown = sorted(set(args.models or ()) - set(MODELS))
    if unknown:
        parser.error(f"unknown zoo models {unknown}; known: {', '.join(MODELS)}")

    import torch
    from tools.zoo.torchvision_guard import ensure_torchvision_importable

    ensure_torchvision_importable()
    warnings.filterwarnings("ignore")  # conversion chatter is not what this reports on
    torch.set_num_threads(1)
    rows = []
    print("\n".join(HEADER), flush=True)
    for name in args.models or list(MODELS):
        for precision in args.precisions:
            row = bench(name, precision, budget=args.budget, clock=CLOCKS[args.clock], cache_dir=args.cache_dir)
            rows.append(row)
            print(row_line(row), flush=True)
    print()
    print("\n".join(summary_lines(rows)))
    if args.write_docs is not None:
        shown = " ".join(argv if argv is not None else sys.argv[1:])
        write_docs(args.write_docs, docs_text(rows, f"benchmarks/bench_zoo_speed.py {shown}", args.clock))
        print(f"wrote {args.write_docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
