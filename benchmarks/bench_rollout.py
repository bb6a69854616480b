"""What one rollout step of a stateful model costs: emulator vs torch, same run.

A KV-cache decoder (one attention head, d=64, a 32-slot cache in registered buffers
that ``forward`` updates in place) converted by the plugin's default recipe, which
declares the buffers as states, at fp32 and fp16. For each precision it times one
32-step rollout on each side, alternating: the emulator's ``run`` with an
``EmulatorState``, and the torch forward on a deep copy whose buffers advance; then
a whole ``assert_parity`` step (both sides plus the verdict and the drift record).
Reports medians per step and the ratio. Writes the '## Stateful rollout cost'
section of docs/performance.md (``--no-write`` prints it).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _docs import write_section  # noqa: E402

SECTION = "## Stateful rollout cost"
D, L = 64, 32


def decoder() -> Any:
    import torch

    class KVDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (torch.nn.Linear(D, D) for _ in range(4))
            self.register_buffer("k_cache", torch.zeros(L, D))
            self.register_buffer("v_cache", torch.zeros(L, D))

        def forward(self, x: Any, pos: Any, mask: Any) -> Any:
            k, v = self.k(x), self.v(x)
            self.k_cache.mul_(1 - pos).add_(pos * k)
            self.v_cache.mul_(1 - pos).add_(pos * v)
            scores = self.q(x) @ self.k_cache.T / math.sqrt(D) + mask
            return self.o(torch.softmax(scores, -1) @ self.v_cache)

    torch.manual_seed(0)
    return KVDecoder().eval()


def feeds() -> list[tuple[Any, ...]]:
    import torch

    g = torch.Generator().manual_seed(1)
    out = []
    for t in range(L):
        pos = torch.zeros(L, 1)
        pos[t] = 1
        mask = torch.full((1, L), -1e4)
        mask[0, : t + 1] = 0
        out.append((torch.randn(1, D, generator=g), pos, mask))
    return out


def measure(rounds: int) -> list[tuple[str, float, float, float]]:
    """(precision, emulator µs/step, torch µs/step, assert_parity µs/step), medians."""
    import torch

    from pytest_coreml_parity import assert_parity
    from pytest_coreml_parity.cache import ConversionCache
    from pytest_coreml_parity.emulator import Emulator
    from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime

    torch.set_num_threads(1)
    steps = feeds()
    rows = []
    for precision in ("fp32", "fp16"):
        model = CoreMLModel(
            ModelSettings(precision=precision),
            Runtime(ConversionCache(None), "emulator"),
        )
        model.bind(decoder(), steps[0])
        emulator = Emulator(model.mlmodel)
        names = model.input_names
        arrays = [tuple(x.numpy() for x in feed) for feed in steps]
        emu_times, torch_times, parity_times = [], [], []
        for _ in range(rounds + 1):  # the first round warms up (imports, allocations)
            state = emulator.make_state()
            start = time.perf_counter()
            for feed in arrays:
                emulator.run(dict(zip(names, feed, strict=True)), state=state)
            emu_times.append((time.perf_counter() - start) / L * 1e6)
            twin = copy.deepcopy(model.torch_model)
            start = time.perf_counter()
            with torch.no_grad():
                for feed in steps:
                    twin(*feed)
            torch_times.append((time.perf_counter() - start) / L * 1e6)
            model.reset_state()
            start = time.perf_counter()
            for feed in steps:
                # fp32 programs store states in float16: judged at fp16's rtol (the hint's advice)
                assert_parity(model, *feed, rtol=1e-2, scale_atol=0.2)
            parity_times.append((time.perf_counter() - start) / L * 1e6)
        rows.append(
            (
                precision,
                statistics.median(emu_times[1:]),
                statistics.median(torch_times[1:]),
                statistics.median(parity_times[1:]),
            )
        )
    return rows


def render(rows: list[tuple[str, float, float, float]], rounds: int) -> str:
    lines = [
        SECTION,
        "",
        f"Produced by `benchmarks/bench_rollout.py`: a KV-cache decoder (d={D}, a {L}-slot",
        "cache in two registered buffers that the default recipe declares as float16 states),",
        f"one {L}-step rollout per round on each side, alternating, medians of {rounds} rounds",
        f"after a warm-up round; one torch thread; {platform.machine()} Linux, Python",
        f"{platform.python_version()}, 2 shared CPU cores. Emulator: `Emulator.run` with an",
        "`EmulatorState`; torch: eager forward on a deep copy whose buffers advance. Both run",
        "in the same process; the ratio is what to compare across machines.",
        "",
        "| precision | emulator step (µs) | torch step (µs) | emulator / torch | assert_parity step (µs) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for precision, emu, ref, parity in rows:
        lines.append(f"| {precision} | {emu:.0f} | {ref:.0f} | {emu / ref:.1f}x | {parity:.0f} |")
    lines += [
        "",
        "The `assert_parity` step runs both sides once (the torch side on the test's deep",
        "copy), judges every output with every metric (at fp32 with fp16's element rule,",
        "since the state is float16) and records the step for the drift table; the",
        "difference from emulator + torch is that verdict and bookkeeping. On this shared",
        "host (load average about 6 on 2 cores) repeated runs moved the ratio between about",
        "6x and 9x.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    text = render(measure(args.rounds), args.rounds)
    print(text)
    if not args.no_write:
        write_section(ROOT / "docs" / "performance.md", SECTION, text)


if __name__ == "__main__":
    main()
