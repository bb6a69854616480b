"""Failure messages under hypothesis: what the shrink phase pays for them.

Run: ``.venv/bin/python benchmarks/bench_failures.py`` (from the repo root; ``--no-write``
prints the section instead of writing the '## Failure messages under hypothesis' section
of docs/performance.md).

A real ``@given`` search on a real conversion (``x * 300 * y`` at fp16, past 65504 once
``|x * y| > 218``) that fails and shrinks: generation finds a failing example, then
hypothesis re-runs the test on smaller examples, each of which raises a
``ParityFailure``. Two variants of the same test body, alternating rounds in one process:

* **lazy** (now): the failure's text is rendered when read (``str()``): hypothesis
  formats only the example it reports;
* **eager** (before): the body reads ``str(failure)`` before re-raising, which is what
  building the message in ``assert_parity`` cost on every failing call.

Each round is one whole search (derandomized, so every round runs the same examples).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _docs import set_threads, write_section  # noqa: E402

set_threads(sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from pytest_coreml_parity import compare  # noqa: E402
from pytest_coreml_parity.cache import ConversionCache  # noqa: E402
from pytest_coreml_parity.compare import ParityFailure, assert_parity  # noqa: E402
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime  # noqa: E402

SECTION = "## Failure messages under hypothesis"


class Product(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 300.0 * y


def _bound() -> CoreMLModel:
    model = CoreMLModel(
        ModelSettings(precision="fp16"), Runtime(ConversionCache(None), "emulator")
    )
    x = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
    model.bind(Product().eval(), (x, x))
    return model


def search(model: CoreMLModel, eager: bool, max_examples: int) -> dict[str, float]:
    """One whole search: wall and CPU seconds, failing calls, messages rendered."""
    calls = {"failing": 0, "renders": 0}
    real = compare._parity_message

    def counting(*args: Any) -> str:
        calls["renders"] += 1
        return real(*args)

    arrays = hnp.arrays(np.float32, (2, 4), elements=st.floats(-100, 100, width=32))

    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(x=arrays, y=arrays)
    def test(x: np.ndarray, y: np.ndarray) -> None:
        try:
            assert_parity(model, x, y)
        except ParityFailure as failure:
            calls["failing"] += 1
            if eager:
                str(failure)
            raise

    compare._parity_message = counting  # type: ignore[assignment]
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            test()
        except ParityFailure:
            pass
        else:
            raise SystemExit("the search found no failure")
        return {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "failing": float(calls["failing"]),
            "renders": float(calls["renders"]),
        }
    finally:
        compare._parity_message = real


def render_cost(model: CoreMLModel, n: int = 50) -> float:
    """Microseconds to render one failure's text (a new failure each time)."""
    x = np.full((2, 4), 20.0, np.float32)
    times = []
    for _ in range(n):
        try:
            assert_parity(model, x, x)
        except ParityFailure as failure:
            start = time.perf_counter()
            str(failure)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = _bound()
    search(model, True, args.max_examples)  # warm-up
    search(model, False, args.max_examples)
    runs: dict[str, list[dict[str, float]]] = {"eager": [], "lazy": []}
    for _ in range(args.rounds):
        for variant in ("eager", "lazy"):
            runs[variant].append(search(model, variant == "eager", args.max_examples))
    render_us = render_cost(model)

    def med(variant: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[variant])

    ratio = statistics.median(
        lazy["cpu"] / eager["cpu"] for lazy, eager in zip(runs["lazy"], runs["eager"], strict=True)
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines = [
        SECTION,
        "",
        f"Produced by `benchmarks/bench_failures.py --rounds {args.rounds} --max-examples {args.max_examples}`: "
        "a real `@given` search (generate and shrink phases, derandomized, so every round runs "
        "the same examples) over a real fp16 conversion of `x * 300 * y` that fails past 65504. "
        "*eager* reads each failure's text in the test body before re-raising, which is what "
        "building the message in `assert_parity` cost on every failing call before; *lazy* is "
        "`assert_parity` now (the text is rendered on the first `str()`). Alternating rounds in "
        f"one process, medians of {args.rounds}; {args.threads} torch thread; {platform.machine()} "
        f"{platform.system()}, Python {platform.python_version()}, {os.cpu_count()} shared CPU "
        f"cores (load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} at the end).",
        "",
        "| variant | failing calls per search | messages rendered | search CPU s | search wall s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {med(v, 'failing'):.0f} | {med(v, 'renders'):.0f} | {med(v, 'cpu'):.3f} "
            f"| {med(v, 'wall'):.3f} |"
            for name, v in (("eager (before)", "eager"), ("lazy (now)", "lazy"))
        ),
        "",
        f"One message costs **{render_us:.0f} µs** to render (median of 50, this model). "
        f"Lazy / eager search CPU time: **{ratio:.2f}** (median of the per-round ratios). "
        "Hypothesis formats only the example it reports (the stored failure and its final replay: "
        "the renders of the lazy row); `tests/plugin/test_per_call_costs.py` checks the count.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(ROOT / "docs" / "performance.md", SECTION, text)
        print(f"wrote the '{SECTION}' section of docs/performance.md")


if __name__ == "__main__":
    main()
