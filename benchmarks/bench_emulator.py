#!/usr/bin/env python
"""Emulator speed, as a ratio to torch eager on the same inputs in the same run.

For each model family the torch model is converted at iOS16 in fp32 and fp16;
then torch eager and ``Emulator.run`` are timed alternately (warm-up, then
``--repeats`` rounds of ``number`` calls each, torch and emulator interleaved so
machine noise hits both), and the medians are compared. Both sides run
single-threaded by default (``--threads``), because benchmark machines are shared
and a BLAS thread pool fighting for two cores measures the machine, not the code.

Targets (issue 22, "fast on real models"): median ratio <= 1.2 at fp32 and
<= 1.5 at fp16, no family above 2, recurrent families (lstm, gru) <= 3; complex
division under 200 us per call. The real-model families (torchvision
``efficientnet_b0``, ``mobilenet_v3_small``, ``convnext_tiny``, random weights,
one 224x224 image) are built in code, never downloaded. A family whose ops have
no kernel yet is reported as ``unsupported (op X)`` rather than stopping the run.

    .venv/bin/python benchmarks/bench_emulator.py                  # full table
    .venv/bin/python benchmarks/bench_emulator.py --quick --family elementwise
    .venv/bin/python benchmarks/bench_emulator.py --family efficientnet_b0 --family gru
    .venv/bin/python benchmarks/bench_emulator.py --write-docs docs/performance.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from _docs import set_threads

ROOT = Path(__file__).resolve().parents[1]


THREADS = set_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(ROOT))  # the shared conversion helper lives with the tests
from tests.emulator.support import convert  # noqa: E402

from pytest_coreml_parity._coremltools import import_coremltools  # noqa: E402
from pytest_coreml_parity.emulator import (  # noqa: E402
    Emulator,
    EmulatorError,
    UnsupportedFeatureError,
    UnsupportedOpError,
)

ct = import_coremltools()
# Conversion chatter ("output renamed to var_24") is not what this script reports on.
warnings.filterwarnings("ignore", category=UserWarning, module=r"coremltools\..*")

TARGET_RATIO = {"fp32": 1.2, "fp16": 1.5}
#: No family above this ratio; recurrent families within their own bound.
MAX_RATIO = 2.0
RECURRENT_RATIO = 3.0
RECURRENT = ("lstm", "gru")
COMPLEX_DIV_TARGET_US = 200.0
SECTION = "## Emulator speed"


# ----------------------------------------------------------------------------- families


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm attention + MLP, written out so tracing sees plain ops."""

    def __init__(self, d: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = 2, 16, 64
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(32, 64, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class GRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(32, 64, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class Embedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 64)
        self.register_buffer("cols", torch.tensor([0, 5, 9, 17, 31]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.emb(ids)  # (4, 32, 64)
        return e[:, self.cols, :] * 2.0


class Reductions(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values, indices = torch.topk(x, 5, dim=-1)
        return x.sum(-1), x.amax(0), values, indices, torch.cumsum(x, dim=-1)


class Einsum(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        s = torch.einsum("bhqd,bhkd->bhqk", a, b)
        return torch.einsum("bhqk,bhkd->bhqd", s, b)


class Shaping(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (8, 16, 32)
        y = x.permute(0, 2, 1).reshape(8, 32, 4, 4).flatten(2)
        a, b = y.split(8, dim=-1)
        z = torch.cat([b, a], dim=1).transpose(1, 2)
        return torch.stack([z, -z], dim=0).reshape(2, 8, -1)


class Elementwise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(-x * x) * torch.sin(x) + torch.sqrt(torch.abs(x) + 1.0)
        return torch.clamp(torch.tanh(y) * torch.sigmoid(x) - 0.25 * y, -1.0, 1.0)


class ComplexDiv(nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class Loop(nn.Module):
    """A scripted loop: converted to a while_loop, not unrolled."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for _ in range(4):
            y = y * 0.5 + torch.tanh(y)
        return y


class Int8Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _quantize_int8(mlmodel: Any) -> Any:
    import coremltools.optimize.coreml as cto

    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=0)
    )
    return cto.linear_quantize_weights(mlmodel, config)


def _torchvision(name: str) -> Callable[[], nn.Module]:
    """A torchvision classifier with random weights (imported on use: its import is slow)."""

    def make() -> nn.Module:
        models = _import_torchvision().models
        return cast(nn.Module, getattr(models, name)(weights=None))

    return make


def _import_torchvision() -> Any:
    """torchvision, also where its C++ ops are missing next to a CPU-only torch.

    torchvision 0.28 registers fake kernels for ``torchvision::nms`` / ``qnms`` at
    import and fails with "operator torchvision::nms does not exist" when its
    compiled ops did not load. Declaring the two schemas first lets the import
    finish; the classifiers used here never call them.
    """
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for module in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[module]
        library = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(library)
        import torchvision
    return torchvision


_KEEP: list[Any] = []  # the schema library must outlive the import


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[], nn.Module]
    inputs: Callable[[], tuple[torch.Tensor, ...]]
    script: bool = False
    post: Callable[[Any], Any] | None = None
    #: A real architecture (slow to convert; ``--no-real`` skips them).
    real: bool = False


def _randn(*shape: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.randn(*shape),)


FAMILIES = (
    Family("mlp", MLP, _randn(32, 64)),
    Family("cnn", CNN, _randn(4, 3, 32, 32)),
    Family("transformer", TransformerBlock, _randn(2, 16, 64)),
    Family("lstm", LSTM, _randn(4, 16, 32)),
    Family("gru", GRU, _randn(4, 16, 32)),
    Family("embedding", Embedding, lambda: (torch.randint(0, 1000, (4, 32), dtype=torch.int32),)),
    Family("reductions", Reductions, _randn(32, 128)),
    Family("einsum", Einsum, lambda: (torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16))),
    Family("shaping", Shaping, _randn(8, 16, 32)),
    Family("elementwise", Elementwise, _randn(64, 256)),
    Family("complex_div", ComplexDiv, _randn(8, 4)),
    Family("control_flow", Loop, _randn(16, 64), script=True),
    Family("int8_linear", Int8Linear, _randn(32, 256), post=_quantize_int8),
    Family("efficientnet_b0", _torchvision("efficientnet_b0"), _randn(1, 3, 224, 224), real=True),
    Family("mobilenet_v3_small", _torchvision("mobilenet_v3_small"), _randn(1, 3, 224, 224), real=True),
    Family("convnext_tiny", _torchvision("convnext_tiny"), _randn(1, 3, 224, 224), real=True),
)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Row:
    family: str
    precision: str
    torch_us: float | None = None
    emulator_us: float | None = None
    status: str = "ok"

    @property
    def ratio(self) -> float | None:
        if self.torch_us and self.emulator_us is not None:
            return self.emulator_us / self.torch_us
        return None


#: The clock timings read: ``process_time`` (CPU seconds of this process) by default.
#: With one thread on each side it measures the same work as wall time on an idle
#: machine, and it stays meaningful on a shared one, where wall time also counts the
#: time other processes held the cores. ``--clock wall`` switches to ``perf_counter``.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


def _per_call(fn: Callable[[], Any], number: int) -> float:
    start = _clock()
    for _ in range(number):
        fn()
    return (_clock() - start) / number


def _calibrate(fn: Callable[[], Any], budget: float) -> int:
    """Calls per measurement so that one measurement takes about ``budget`` seconds."""
    number = 1
    while True:
        elapsed = _per_call(fn, number) * number
        if elapsed >= budget / 4 or number >= 100_000:
            return max(1, int(number * budget / max(elapsed, 1e-9)))
        number *= 4


def measure(
    torch_fn: Callable[[], Any], emu_fn: Callable[[], Any], *, repeats: int, budget: float
) -> tuple[float, float]:
    """Median seconds per call of each, measured alternately after a warm-up."""
    for _ in range(3):
        torch_fn()
        emu_fn()
    n_torch, n_emu = _calibrate(torch_fn, budget), _calibrate(emu_fn, budget)
    torch_times: list[float] = []
    emu_times: list[float] = []
    for i in range(repeats):
        order = ((torch_fn, n_torch, torch_times), (emu_fn, n_emu, emu_times))
        for fn, number, out in order if i % 2 == 0 else order[::-1]:
            out.append(_per_call(fn, number))
    return statistics.median(torch_times), statistics.median(emu_times)


def bench_family(family: Family, precision: str, *, repeats: int, budget: float) -> Row:
    row = Row(family.name, precision)
    torch.manual_seed(0)
    model = family.make().eval()
    inputs = family.inputs()
    try:
        mlmodel = convert(model, inputs, target="iOS16", precision=precision, script=family.script)
        if family.post is not None:
            mlmodel = family.post(mlmodel)
    except Exception as exc:  # the converter raises all sorts
        row.status = f"conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        return row
    try:
        emulator = Emulator(mlmodel)
        feed = {spec.name: x.numpy() for spec, x in zip(emulator.inputs, inputs, strict=True)}
        emulator.run(feed)
    except UnsupportedOpError as exc:
        row.status = f"unsupported (op {exc.op_type})"
    except UnsupportedFeatureError as exc:
        row.status = f"unsupported ({exc.feature})"
        return row
    except EmulatorError as exc:
        row.status = f"emulator error: {str(exc).splitlines()[0][:100]}"
        return row

    def torch_call() -> Any:
        with torch.no_grad():
            return model(*inputs)

    def emu_call() -> Any:
        return emulator.run(feed)

    t_torch, t_emu = measure(torch_call, emu_call, repeats=repeats, budget=budget)
    row.torch_us, row.emulator_us = t_torch * 1e6, t_emu * 1e6
    return row


# ----------------------------------------------------------------------------- reporting


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_lines(rows: list[Row]) -> list[str]:
    lines = [
        "| family | precision | torch µs/call | emulator µs/call | ratio | status |",
        "|---|---|--:|--:|--:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.family} | {r.precision} | {_fmt(r.torch_us, '.1f')} | {_fmt(r.emulator_us, '.1f')} "
            f"| {_fmt(r.ratio, '.2f')} | {r.status} |"
        )
    return lines


def summary_lines(rows: list[Row]) -> list[str]:
    lines = []
    for precision in ("fp32", "fp16"):
        ratios = [r.ratio for r in rows if r.precision == precision and r.ratio is not None]
        if not ratios:
            continue
        median = statistics.median(ratios)
        verdict = "meets" if median <= TARGET_RATIO[precision] else "MISSES"
        missing = sum(1 for r in rows if r.precision == precision and r.ratio is None)
        lines.append(
            f"- median ratio {precision}: {median:.2f} over {len(ratios)} families "
            f"({verdict} target <= {TARGET_RATIO[precision]:g}"
            + (f"; {missing} families not measured" if missing else "")
            + ")"
        )
        worst = max((r for r in rows if r.precision == precision and r.ratio is not None), key=lambda r: r.ratio or 0.0)
        lines.append(f"- max ratio {precision}: {worst.ratio:.2f} ({worst.family}; target <= {MAX_RATIO:g})")
    for r in rows:
        if r.family in RECURRENT and r.ratio is not None and r.ratio > RECURRENT_RATIO:
            lines.append(f"- {r.family} {r.precision}: {r.ratio:.2f} MISSES the recurrent target <= {RECURRENT_RATIO:g}")
    for r in rows:
        if r.family == "complex_div" and r.emulator_us is not None:
            verdict = "meets" if r.emulator_us < COMPLEX_DIV_TARGET_US else "MISSES"
            lines.append(
                f"- complex division {r.precision}: {r.emulator_us:.1f} µs/call "
                f"({verdict} target < {COMPLEX_DIV_TARGET_US:g} µs)"
            )
    return lines


def machine_lines(command: str) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return [
        f"- date: {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} {platform.release()}",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"coremltools {ct.__version__}, numpy {np.__version__}",
        f"- threads: {THREADS} (torch.set_num_threads and BLAS/OpenMP env), both sides; "
        f"clock: {'process CPU time' if _clock is time.process_time else 'wall time'}",
        f"- command: `{command}`",
    ]


def section_text(rows: list[Row], command: str, note: str = "") -> str:
    parts = [
        SECTION,
        "",
        "Emulator time per call against torch eager time per call on the same inputs, in the "
        "same process (warm-up, then alternating timed rounds; medians). Targets: median ratio "
        f"<= {TARGET_RATIO['fp32']:g} at fp32, <= {TARGET_RATIO['fp16']:g} at fp16, no family above "
        f"{MAX_RATIO:g}, lstm/gru <= {RECURRENT_RATIO:g}; complex division < 200 µs per call. Produced by "
        "`benchmarks/bench_emulator.py`.",
        "",
        *machine_lines(command),
        "",
        *table_lines(rows),
        "",
        *summary_lines(rows),
    ]
    if note:
        parts += ["", note]
    return "\n".join(parts) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace (or append) only the ``## Emulator speed`` section of ``path``."""
    from _docs import write_section as write

    write(path, SECTION, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", default=None, help="Only these families (repeatable). Default: all.")
    parser.add_argument("--precision", choices=("fp32", "fp16", "both"), default="both", help="Default: both.")
    parser.add_argument("--quick", action="store_true", help="Smoke mode: 3 short rounds per measurement.")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="cpu: process CPU time (robust on a shared machine, one thread per side); wall: perf_counter. Default: cpu.")
    parser.add_argument("--no-real", action="store_true", help="Skip the real torchvision models (slow to convert).")
    parser.add_argument("--repeats", type=int, default=7, help="Timed rounds per side. Default: 7.")
    parser.add_argument("--budget", type=float, default=0.1, help="Seconds per timed round. Default: 0.1.")
    parser.add_argument("--threads", type=int, default=THREADS, help="Threads for torch and BLAS. Default: 1.")
    parser.add_argument("--write-docs", type=Path, default=None, help="Write the '## Emulator speed' section of this markdown file.")
    parser.add_argument("--note", default="", help="A sentence appended to the docs section.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu adds up every thread's CPU time: use it with --threads 1")
    known = {f.name for f in FAMILIES}
    unknown = set(args.family or ()) - known
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {sorted(known)}")
    repeats, budget = (3, 0.02) if args.quick else (args.repeats, args.budget)
    precisions = ("fp32", "fp16") if args.precision == "both" else (args.precision,)
    rows = []
    print("| family | precision | torch µs/call | emulator µs/call | ratio | status |", flush=True)
    for family in FAMILIES:
        if args.family and family.name not in args.family:
            continue
        if args.no_real and family.real and not args.family:
            continue
        for precision in precisions:
            row = bench_family(family, precision, repeats=repeats, budget=budget)
            rows.append(row)
            print(table_lines([row])[-1], flush=True)
    print()
    for line in summary_lines(rows):
        print(line)
    if args.write_docs:
        given = list(argv if argv is not None else sys.argv[1:])
        shown = []
        for i, arg in enumerate(given):  # the note is prose: keep it out of the command
            if arg == "--note" or (i > 0 and given[i - 1] == "--note"):
                continue
            shown.append(arg if not arg.startswith("--note=") else "")
        niceness = os.nice(0)  # the command as run, including whether it was niced
        prefix = f"nice -n {niceness} " if niceness else ""
        command = prefix + ".venv/bin/python benchmarks/bench_emulator.py " + " ".join(
            a for a in shown if a
        )
        write_section(args.write_docs, section_text(rows, command.strip(), args.note))
        print(f"\nwrote the '{SECTION}' section of {args.write_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
