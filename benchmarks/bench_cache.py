"""Cost of the cache key: capturing the program (trace + key) vs converting it.

Run: ``.venv/bin/python benchmarks/bench_cache.py`` (from the repo root).
Writes the results table to the '## Cache key cost' section of docs/performance.md.

Every bind captures the model (one forward, ``torch.jit.trace``, hashing the
inlined graph and every parameter and buffer) to compute its cache key; only a
miss pays ``ct.convert`` of that same captured program. A disk hit pays the
manifest check (sha256 of every file) and loading the package.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "## Cache key cost"
warnings.simplefilter("ignore")

from _docs import write_section  # noqa: E402

from pytest_coreml_parity.backends import EmulatorBackend  # noqa: E402
from pytest_coreml_parity.cache import ConversionCache  # noqa: E402
from pytest_coreml_parity.convert import (  # noqa: E402
    ConversionOptions,
    capture,
    conversion_key,
    convert_captured,
)
from pytest_coreml_parity.stacks.coreml.layout import PACKAGE_LAYOUT  # noqa: E402


class ComplexDiv(torch.nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x).flatten(1))
        return out


class TransformerBlock(torch.nn.Module):
    """Pre-LN block with hand-written attention (nn.MultiheadAttention's fast path does not convert)."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


MODELS: dict[str, Callable[[], tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]] = {
    "complex division": lambda: (ComplexDiv(), (torch.randn(8, 4),)),
    "small CNN (2 conv)": lambda: (SmallCNN(), (torch.randn(1, 3, 32, 32),)),
    "transformer block (dim 64)": lambda: (TransformerBlock(), (torch.randn(1, 16, 64),)),
}


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.manual_seed(0)
    options = ConversionOptions(precision="fp16")
    backend = EmulatorBackend()
    rows = []
    warm_model, warm_inputs = MODELS["complex division"]()
    convert_captured(capture(warm_model, warm_inputs, options), options)  # imports, first-call setup
    for name, build in MODELS.items():
        model, examples = build()
        model.eval()
        captured = capture(model, examples, options)
        trace_s = _median_seconds(lambda: capture(model, examples, options), args.repeat)  # noqa: B023
        key_s = _median_seconds(lambda: conversion_key(captured, options), args.repeat)  # noqa: B023
        convert_s = _median_seconds(
            lambda: convert_captured(captured, options), max(1, (args.repeat + 1) // 2)  # noqa: B023
        )
        key = conversion_key(captured, options)
        with tempfile.TemporaryDirectory() as tmp:
            ConversionCache(Path(tmp)).get(
                key,
                lambda: (convert_captured(captured, options), captured.structure),  # noqa: B023
                lambda path: backend.load(path, "ALL"),
                PACKAGE_LAYOUT,
            )
            hit_s = _median_seconds(
                lambda: ConversionCache(Path(tmp)).get(
                    key,  # noqa: B023
                    lambda: (None, "t"),
                    lambda path: backend.load(path, "ALL"),
                    PACKAGE_LAYOUT,
                ),
                args.repeat,
            )
        params = sum(p.numel() for p in model.parameters())
        bind_s = trace_s + key_s
        rows.append((
            name, f"{params:,}", f"{trace_s * 1e3:.1f}", f"{key_s * 1e3:.1f}",
            f"{convert_s * 1e3:.0f}", f"{hit_s * 1e3:.1f}", f"{100 * bind_s / convert_s:.1f}%",
        ))
        print(rows[-1], flush=True)
    header = ("model", "parameters", "capture ms (forward + trace)", "key ms (hash)",
              "ct.convert ms (fp16)", "disk hit ms (verify + load)", "capture + key / convert")
    lines = [
        SECTION,
        "",
        f"Measured with `benchmarks/bench_cache.py` on {platform.machine()} Linux, Python "
        f"{platform.python_version()}, torch {torch.__version__}, 2 shared CPU cores (other "
        f"jobs running); medians of {args.repeat} runs.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [
        "",
        "Every bind pays capture + key (the key is derived from the captured program, so a",
        "changed attribute, constructor argument, helper function or non-persistent buffer",
        "misses the cache); a miss then converts that same captured program, without a",
        "second trace. A disk hit verifies the entry's manifest (sha256 of every file) and",
        "loads the package.",
        "",
    ]
    if not args.no_write:
        out = ROOT / "docs/performance.md"
        write_section(out, SECTION, "\n".join(lines))
        print(f"wrote the '{SECTION}' section of {out}")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
