"""What a flexible-shape model costs per allowed shape: emulator vs torch, same run.

One two-layer MLP (256 -> 256 -> GELU -> 16), converted at fp16 three ways: a fixed
(8, 256) input, ``ct.EnumeratedShapes`` (1, 8, 32) x 256, and ``ct.RangeDim(1, 64)``
batch. For every shape the test loop visits (``CoreMLModel.declared_shapes``: every
enumerated shape; a range's endpoints and an interior value) it times the emulator's
``run`` and the torch forward, alternating, and reports medians and their ratio; the
fixed program at (8, 256) shows what symbolic dims cost. Writes the
'## Flexible shapes cost' section of docs/performance.md (``--no-write`` prints it).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One thread everywhere (BLAS too): on a shared, loaded host a second thread's wake-ups
# are what gets measured otherwise (set before numpy and torch load).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _docs import write_section  # noqa: E402

SECTION = "## Flexible shapes cost"


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def measure(rounds: int) -> list[tuple[str, tuple[int, ...], float, float]]:
    """(program, shape, emulator µs, torch µs) per shape: the best of ``rounds`` rounds
    (timeit's rule: on a shared host, slower rounds measure the neighbours)."""
    import coremltools as ct
    import numpy as np
    import torch

    from pytest_coreml_parity.emulator import Emulator
    from pytest_coreml_parity.shapes import combined, read_allowed

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 16)
    ).eval()
    traced = torch.jit.trace(model, torch.randn(8, 256))
    programs: dict[str, Any] = {
        "fixed (8, 256)": (8, 256),
        "enumerated 1/8/32": ct.EnumeratedShapes(shapes=[[1, 256], [8, 256], [32, 256]], default=[8, 256]),
        "range 1..64": (ct.RangeDim(1, 64, default=8), 256),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, shape in programs.items():
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name="x", shape=shape)],
                compute_precision=ct.precision.FLOAT16,
                minimum_deployment_target=ct.target.iOS16,
            )
            path = Path(tmp) / f"{len(rows)}.mlpackage"
            mlmodel.save(str(path))
            emulator = Emulator(path)
            allowed = read_allowed(mlmodel.get_spec().description)
            for (size,) in combined(allowed):
                x = torch.randn(size)
                feed = {"x": x.numpy().astype(np.float32)}
                emu, ref = [], []
                run_emulator = functools.partial(emulator.run, feed)
                run_torch = functools.partial(model, x)
                for _ in range(rounds):  # alternating: both see the same load
                    emu.append(_per_call_us(run_emulator, 20))
                    with torch.no_grad():
                        ref.append(_per_call_us(run_torch, 20))
                rows.append((label, size, min(emu), min(ref)))
    return rows


def render(rows: list[tuple[str, tuple[int, ...], float, float]], rounds: int) -> str:
    lines = [
        SECTION,
        "",
        "`benchmarks/bench_shapes.py`: per allowed shape, one emulator run of an fp16",
        "MLP (256 -> 256 -> GELU -> 16) against the torch forward, same process,",
        f"alternating rounds (best of {rounds} rounds of 20 calls; one thread, BLAS included;",
        f"{platform.machine()}, Python {platform.python_version()}, load average",
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs). The shapes are those",
        "`coreml_model.declared_shapes()` gives the test loop.",
        "",
        "| program | input shape | emulator µs | torch µs | emulator / torch |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, shape, emu, ref in rows:
        lines.append(f"| {label} | {shape} | {emu:.0f} | {ref:.0f} | {emu / ref:.1f}x |")
    fixed = next(e for label, s, e, _ in rows if label.startswith("fixed"))
    flexible = [e for label, s, e, _ in rows if not label.startswith("fixed") and s == (8, 256)]
    if flexible:
        extra = statistics.median(flexible) / fixed
        verdict = (
            "within this host's noise: symbolic dims cost the emulator nothing measurable"
            if extra < 1.25
            else "symbolic dims cost the emulator this much on this host"
        )
        lines += [
            "",
            f"At (8, 256) the enumerated program runs in {extra:.2f}x the fixed program's",
            f"time: {verdict}",
            "(the allowed-shape check is one tuple comparison per input).",
            "Testing every shape costs the sum of its rows: it grows with the sizes tested.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    text = render(measure(args.rounds), args.rounds)
    if args.no_write:
        print(text)
    else:
        write_section(ROOT / "docs/performance.md", SECTION, text)
        print(text)


if __name__ == "__main__":
    main()
