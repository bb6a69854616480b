"""Fuzzing speed and guidance: examples per second through ``assert_parity``, and
examples to the first failure with and without ``hypothesis.target()``.

Run: ``.venv/bin/python benchmarks/bench_fuzz.py`` (from the repo root; ``--quick``
for a smoke run that writes nothing, ``--profile`` to print where the time goes).
Writes the '## Fuzzing throughput' section of docs/performance.md and prints the
guidance table that docs/usage.md quotes.

Everything is real: a coremltools conversion per model and precision, the emulator
backend, the torch reference and hypothesis, run as a ``@given`` test runs them
(outside pytest, which adds a fixed per-test cost, not a per-example one).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import math
import os
import platform
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Fuzzing throughput"
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _docs import write_section  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402
from tests.diagnose.models import ComplexDiv, TransformerBlock  # noqa: E402

from pytest_coreml_parity import assert_parity  # noqa: E402
from pytest_coreml_parity.cache import ConversionCache  # noqa: E402
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime  # noqa: E402
from pytest_coreml_parity.settings import Settings  # noqa: E402
from pytest_coreml_parity.strategies import extreme_tensors, model_inputs  # noqa: E402


class MaskedAttention(torch.nn.Module):
    """Self-attention with a padding-mask input turned into an additive finfo(float32).min mask.

    A fully masked (padded) row makes float16 softmax see only -inf: nan. What
    ``model_inputs`` draws for the mask input (padding masks, some rows fully masked)
    is what finds it.
    """

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = x @ x.transpose(-1, -2) / 2.0
        keep = attention_mask[:, None, :] > 0.5
        additive = torch.where(keep, 0.0, torch.finfo(torch.float32).min)
        return torch.softmax(scores + additive, dim=-1) @ x


class ScoresAttention(torch.nn.Module):
    """Scores plus an additive finfo(float32).min mask on some rows' keys, softmax, matmul.

    fp16 stores the mask as -inf, which softmax handles on partly masked rows; what
    breaks is ``q @ k^T`` passing 65504 once the inputs grow.
    """

    def __init__(self, dim: int = 8, length: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.q = torch.nn.Linear(dim, dim)
        self.k = torch.nn.Linear(dim, dim)
        self.v = torch.nn.Linear(dim, dim)
        mask = torch.zeros(length, length)
        mask[length // 2 :, length - 2 :] = torch.finfo(torch.float32).min  # later rows skip 2 keys
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(-1, -2) + self.mask
        return torch.softmax(scores, dim=-1) @ self.v(x)


def bound(torch_model: torch.nn.Module, examples: tuple[torch.Tensor, ...] | torch.Tensor,
          precision: str, guide: bool) -> CoreMLModel:
    model = CoreMLModel(
        ModelSettings(Settings(guide=guide), precision=precision),
        Runtime(ConversionCache(ROOT / ".coreml-parity-cache" / "bench"), "emulator"),
    )
    model.bind(torch_model, examples if isinstance(examples, tuple) else (examples,))
    return model


Inputs = st.SearchStrategy[tuple[Any, ...]]


def fuzz_test(model: CoreMLModel, strategy: Inputs, n: int, body: bool = True) -> Callable[[], None]:
    """A ``@given`` test of ``n`` examples written as the README writes it (``st.data()``,
    one ``data.draw`` of every input); generate phase only: no shrinking."""

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        inputs = data.draw(strategy, label="inputs")
        if body:
            assert_parity(model, *inputs)

    return fuzz


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for ``repeat`` calls of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def per_element(shape: tuple[int, ...], low: float, high: float) -> Inputs:
    """What users write by hand: ``hnp.arrays`` with a float element strategy, one draw each."""
    elements = st.floats(low, high, width=32, allow_nan=False, allow_infinity=False)
    return st.tuples(arrays(np.float32, shape, elements=elements))


def whole_array(shape: tuple[int, ...], low: float, high: float) -> Inputs:
    """The plugin's strategies (one hypothesis choice per array), kept in a range that passes."""
    return st.tuples(extreme_tensors(shape, min_magnitude=max(low, 0.0), max_magnitude=high))


def breakdown(model: CoreMLModel, a: np.ndarray, guided: bool, n: int) -> dict[str, float]:
    """CPU µs per call of assert_parity and of its parts, outside hypothesis."""
    arrays_ = model.prepare((a,))
    parts = {
        "assert_parity": lambda: assert_parity(model, a),
        "torch reference": lambda: model.reference(*arrays_),
        "Core ML run" + (" (recorded)" if guided else ""): lambda: model.run_prepared(arrays_, peaks=guided),
    }
    out = {}
    for label, fn in parts.items():
        fn()
        out[label] = timed(fn, n)[1] / n * 1e6
    return out


def first_failure(model: CoreMLModel, strategy: Inputs, run_seed: int, budget: int) -> int | None:
    """Examples hypothesis runs up to and including the first failing one (None: none failed)."""
    count = [0, 0]

    @seed(run_seed)
    @settings(max_examples=budget, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate, Phase.target], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        count[0] += 1
        inputs = data.draw(strategy, label="inputs")
        try:
            assert_parity(model, *inputs)
        except AssertionError:
            if not count[1]:
                count[1] = count[0]
            raise

    with contextlib.suppress(AssertionError):
        fuzz()
    return count[1] or None


def profile(fn: Callable[[], Any], top: int = 14) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


#: hypothesis' own cost of an example: a ``@given(data=st.data())`` test drawing 4 bytes.
FLOOR = st.tuples(st.binary(min_size=4, max_size=4))


def throughput(model: CoreMLModel, strategy: Inputs, n: int, rounds: int = 5) -> tuple[str, ...]:
    """Per example, over ``rounds`` interleaved rounds of ``n // rounds`` examples each:
    examples/s (wall, all rounds), examples per CPU-second (median round, best round), and
    the median round's CPU µs split into hypothesis' floor, drawing over the floor, and the
    body; or ``fails`` when hypothesis finds a failure."""
    per_round = max(n // rounds, 10)
    try:
        fuzz_test(model, strategy, 20)()  # warm up
        total_wall, body, draw, floor = 0.0, [], [], []
        for _ in range(rounds):  # interleaved, so a slow spell of the host hits all three
            wall, cpu = timed(fuzz_test(model, strategy, per_round))
            total_wall += wall
            body.append(cpu / per_round)
            draw.append(timed(fuzz_test(model, strategy, per_round, body=False))[1] / per_round)
            floor.append(timed(fuzz_test(model, FLOOR, per_round, body=False))[1] / per_round)
    except AssertionError:  # hypothesis found a failure: no throughput to report
        return ("fails", "", "", "", "", "", "")
    cpu, d, f = statistics.median(body), statistics.median(draw), statistics.median(floor)
    return (f"{rounds * per_round / total_wall:.0f}", f"{1 / cpu:.0f}", f"{1 / min(body):.0f}",
            f"{1e6 * cpu:.0f}", f"{1e6 * f:.0f}", f"{1e6 * (d - f):.0f}", f"{1e6 * (cpu - d):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="few examples, write nothing")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the fuzz loop")
    parser.add_argument("--no-guidance", action="store_true", help="throughput only")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    seeds = range(2 if args.quick else 6)

    cdiv, block = ComplexDiv().eval(), TransformerBlock().eval()
    torch.manual_seed(0)
    cases = [
        ("complex division", cdiv, torch.rand(8, 4) + 0.5, (8, 4), 0.5, 2.0, 2000),
        ("transformer block", block, torch.randn(1, 8, 16), (1, 8, 16), -3.0, 3.0, 400),
    ]
    rows, parts_rows = [], []
    for name, torch_model, example, shape, low, high, n in cases:
        n = 50 if args.quick else n
        for precision in ("fp32", "fp16"):
            for guide in (False, True):
                model = bound(torch_model, example, precision, guide)
                strategies = {
                    "model_inputs": model_inputs(model),
                    "whole array, in range": whole_array(shape, low, high),
                    "per element, in range": per_element(shape, low, high),
                }
                for label, strategy in strategies.items():
                    rows.append((name, precision, "on" if guide else "off", label,
                                 *throughput(model, strategy, n)))
                    print(rows[-1], flush=True)
                parts = breakdown(model, example.numpy(), guide, 50 if args.quick else n)
                parts_rows.append((name, precision, "on" if guide else "off",
                                   *(f"{v:.0f}" for v in parts.values())))
                print(parts_rows[-1], flush=True)
    profile_text = ""
    if args.profile:
        model = bound(cdiv, torch.rand(8, 4) + 0.5, "fp16", True)
        profile_text = profile(fuzz_test(model, whole_array((8, 4), 0.5, 2.0), 1000))
        print(profile_text)

    # Guidance: examples to the first failure, per seed, with and without target().
    attention, scores = MaskedAttention().eval(), ScoresAttention().eval()
    attention_examples = (torch.linspace(-1.0, 1.0, 40).reshape(2, 5, 4), torch.ones(2, 5))
    guided_cases: list[tuple[str, torch.nn.Module, Any, Callable[[CoreMLModel], Inputs], str, int]] = [
        ("complex division", cdiv, torch.rand(8, 4) + 0.5, model_inputs,
         "model_inputs(coreml_model)", 100),
        ("complex division", cdiv, torch.rand(8, 4) + 0.5,
         lambda _m: st.tuples(extreme_tensors((8, 4), max_magnitude=250.0, allow_subnormal=False,
                                              min_magnitude=2**-6)),
         "extreme_tensors((8, 4), min_magnitude=2**-6, max_magnitude=250): no single value "
         "overflows when squared", 1000),
        ("masked attention", attention, attention_examples, model_inputs,
         "model_inputs(coreml_model): x and a padding mask", 100),
        # A climb: q @ k^T passes 65504 only when a whole row of x grows with the right signs.
        ("attention scores", scores, torch.randn(1, 6, 8),
         lambda _m: per_element((1, 6, 8), -25.0, 25.0), "per element, floats(-25, 25)", 4000),
        ("attention scores", scores, torch.randn(1, 6, 8),
         lambda _m: st.tuples(extreme_tensors((1, 6, 8), max_magnitude=25.0)),
         "extreme_tensors((1, 6, 8), max_magnitude=25)", 4000),
    ]
    guidance = []
    for name, torch_model, example, make, described, cap in [] if args.no_guidance else guided_cases:
        found: dict[bool, list[int | None]] = {}
        cap = min(cap, 200) if args.quick else cap
        for guide in (False, True):
            model = bound(torch_model, example, "fp16", guide)
            found[guide] = [first_failure(model, make(model), s, cap) for s in seeds]
            print(name, guide, found[guide], flush=True)
        guidance.append((name, described, found, cap))
    if guidance:
        print("\n".join(guidance_table(guidance)))
    if args.quick:
        return
    lines = [
        SECTION,
        "",
        f"Measured with `benchmarks/bench_fuzz.py` on {platform.machine()} Linux, Python "
        f"{platform.python_version()}, 2 CPU cores shared with other jobs (load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), emulator backend, "
        "one torch thread. One `@given(data=st.data())` test that draws every input with one "
        "`data.draw` and calls `assert_parity(coreml_model, *inputs)`, as the README writes it; "
        "hypothesis generate phase, 5 rounds of 400 examples (complex division) or of 80 "
        "(transformer block), each round followed by the same count drawing only and by "
        "hypothesis' floor, so a slow spell of the host hits all three. Examples per "
        "CPU-second (this process's CPU time, median round; best round next to it) are what "
        "a dedicated core would give; wall-clock rates suffer from the shared host. `guide` "
        "on: each example "
        "records the emulator run and calls `hypothesis.target()` twice (the default inside "
        "`@given`). Strategies: `model_inputs` is the README's `model_inputs(coreml_model)` "
        "(at fp16 it finds the overflow within the first examples, so there is no passing run "
        "to time: `fails`); `whole array, in range` is `extreme_tensors(shape, min_magnitude, "
        "max_magnitude)` kept in a range where every example passes (the complex division's "
        "0.5-2, the block's 0-3), the same one-choice-per-array draw as `model_inputs`; `per "
        "element, in range` is `hnp.arrays(np.float32, shape, elements=st.floats(lo, hi))`, "
        "what users write by hand, one hypothesis choice per element.",
        "",
        "CPU µs per example splits into hypothesis' floor (the same `@given(data=st.data())` "
        "test drawing 4 bytes and doing nothing, in the same rounds: what any hypothesis "
        "test pays per example), drawing the inputs over that floor, and the test body "
        "(`assert_parity`: torch, the emulator, the verdict, guidance). The host's speed "
        "drifts by up to 2x over minutes, and the floor with it: compare the parts of a row, "
        "not rows far apart.",
        "",
        "| model | precision | guide | strategy | examples/s (wall) | examples/CPU-s, median "
        "round | best round | CPU µs/example | hypothesis floor | drawing over the floor | "
        "assert_parity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Where the time of one `assert_parity` call goes (CPU µs per call, outside hypothesis, "
        "on the example inputs):",
        "",
        "| model | precision | guide | assert_parity | torch reference | Core ML run (emulator) |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in parts_rows),
        "",
        "The rest of `assert_parity` (assert_parity minus reference minus run) is the verdict: "
        "gate resolution, the gates' metrics and the mismatch mask for every output.",
        "",
        "Examples hypothesis runs up to and including the first failure at fp16, per seed "
        f"(seeds 0-{len(seeds) - 1}), with and without `hypothesis.target()` guidance:",
        "",
        *guidance_table(guidance),
        "",
    ]
    write_section(ROOT / "docs" / "performance.md", SECTION, "\n".join(lines))


def guidance_table(guidance: list[Any]) -> list[str]:
    lines = ["| model | inputs | budget | target() | examples to first failure, per seed | median | found |",
             "|---|---|---|---|---|---|---|"]
    for name, described, found, budget in guidance:
        for guide in (False, True):
            counts = found[guide]
            hits = [c for c in counts if c is not None]
            shown = ", ".join(str(c) if c is not None else f">{budget}" for c in counts)
            median = statistics.median([c if c is not None else math.inf for c in counts])
            lines.append(f"| {name} | {described} | {budget} | {'on' if guide else 'off'} | {shown} | "
                         f"{median if median != math.inf else f'>{budget}'} | {len(hits)}/{len(counts)} |")
    return lines


if __name__ == "__main__":
    main()
