"""What the scale-aware verdict and its metrics add to each ``assert_parity`` call.

The old rule was one element-wise mask (``mismatch_mask`` with rtol/atol); the
verdict (``judge``) applies the element rule and the metrics its gates need (the
full table of max abs/rel error, cosine, PSNR, SNR and top-1/top-5 only on failure). Both are timed in the same run, alternating rounds,
on a float16 Core ML output against a float32 torch reference: 1000 logits and a
(1, 3, 224, 224) image-shaped output. Writes the '## Verdict metrics cost' section
of docs/performance.md (``--no-write`` prints it instead).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _docs import write_section  # noqa: E402

from pytest_coreml_parity.verdict import judge, preset  # noqa: E402

SECTION = "## Verdict metrics cost"
SHAPES = {"1000 logits (1, 1000)": (1, 1000), "image (1, 3, 224, 224)": (1, 3, 224, 224)}


def old_rule(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """The rule before the scale-aware verdict, verbatim: one element-wise mask."""
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected).astype(np.float64)
    both_finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - e) <= atol + rtol * np.abs(e)
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & np.isinf(e) & (np.sign(a) == np.sign(e)))
    mask: np.ndarray = np.where(both_finite, ~close, ~same_nonfinite)
    return mask


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure(shape: tuple[int, ...], rounds: int) -> tuple[float, float]:
    """Median µs per call of the old rule and of the full verdict (alternating rounds)."""
    rng = np.random.default_rng(0)
    want = rng.standard_normal(shape).astype(np.float32)
    got = want.astype(np.float16)  # what an fp16 Core ML output looks like
    gates = preset("fp16")
    calls = max(3, 20_000 // max(1, int(np.prod(shape)) // 100))
    old, new = [], []
    for _ in range(rounds):
        old.append(_per_call(lambda: old_rule(got, want, 1e-2, 1e-2), calls))
        new.append(_per_call(lambda: judge(got, want, gates), calls))
    return statistics.median(old) * 1e6, statistics.median(new) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for label, shape in SHAPES.items():
        old, new = measure(shape, args.rounds)
        rows.append(f"| {label} | {old:.1f} | {new:.1f} | {new / old:.2f} | {new - old:.1f} |")
        print(rows[-1], flush=True)
    lines = [
        SECTION,
        "",
        "Per `assert_parity` call, per output: the old rule (one element-wise mask, the "
        "previous `mismatch_mask` verbatim) against the verdict (`judge`: the element rule "
        "plus the metrics its gates need, SNR for the fp16 preset; the full table of max "
        "abs/rel error, cosine, PSNR, SNR, top-1/top-5 only when a failure reports it), same "
        "run, alternating rounds, medians. Core ML side float16, torch side float32. Produced by "
        "`benchmarks/bench_metrics.py`.",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.machine()} Linux, Python {platform.python_version()}, numpy "
        f"{np.__version__}, 2 CPU cores shared with other jobs",
        f"- command: `.venv/bin/python benchmarks/bench_metrics.py --rounds {args.rounds}`",
        "",
        "| output | old rule µs/call | verdict + metrics µs/call | ratio | added µs |",
        "|---|--:|--:|--:|--:|",
        *rows,
        "",
        "A passing call costs what the old rule did: the metrics are computed lazily, and one "
        "sum of squared errors is both the finiteness check and the SNR's noise power. On "
        "the image the verdict is cheaper, since a large float16 output widens to float64 "
        "through torch rather than numpy's scalar cast.",
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
