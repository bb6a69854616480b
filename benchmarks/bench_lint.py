"""Cost of the lint at bind vs a cached bind, on real models.

Run: ``.venv/bin/python benchmarks/bench_lint.py`` (from the repo root).
Writes the results table to the '## Lint cost' section of docs/performance.md.

A cached bind is what the plugin does for a test whose program is in the disk cache:
``CoreMLModel.bind`` = capture (forward + trace) + key + disk hit (manifest check, load)
+ the warm-up call (plans the emulator program and runs it once). The lint is what the
plugin then runs at bind (``check_sections``'s lint of the bound model): every rule over
the planned program, the torch graph it captured, and torch source lines for the hits.
Its plan is the one the warm-up made (the emulator backend shares it); the "plan" column
is what a Core ML-backend bind (macOS), which plans no emulator program, pays on top.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
SECTION = "## Lint cost"
warnings.simplefilter("ignore")

from _docs import set_threads, write_section  # noqa: E402

THREADS = set_threads(sys.argv)

import torch  # noqa: E402

from pytest_coreml_parity.cache import ConversionCache  # noqa: E402
from pytest_coreml_parity.check_sections import _lint  # noqa: E402
from pytest_coreml_parity.errors import ConversionError  # noqa: E402
from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime  # noqa: E402

Build = Callable[[], tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]


class RMSNorm(torch.nn.Module):
    """transformers' LlamaRMSNorm, as written there (the fp32-cast rule finds its cast)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + 1e-6)
        return self.weight * hidden_states.to(input_dtype)


class TinyDecoder(torch.nn.Module):
    """Embedding, RMSNorm, an MLP and a head: plain torch, imports nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(64, 32)
        self.norm = RMSNorm(32)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.SiLU(), torch.nn.Linear(64, 32))
        self.head = torch.nn.Linear(32, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(ids))
        out: torch.Tensor = self.head(h + self.mlp(h))
        return out


def _zoo(name: str) -> Build:
    """The zoo's entry ``name`` (tools/zoo/registry.py): its model, calibrated, and its inputs."""

    def build() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        from tools.zoo.registry import get

        entry = get(name)
        return entry.model(), tuple(entry.example_inputs())

    return build


def _zoo_names() -> list[str]:
    from tools.zoo.registry import ENTRIES

    return [entry.name for entry in ENTRIES]


#: The default rows: the zoo's CNNs, a vision transformer, an encoder and a decoder.
DEFAULT = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16", "hf/bert", "hf/llama")
MODELS: dict[str, Build] = {
    "tiny_decoder": lambda: (TinyDecoder(), (torch.randint(0, 64, (1, 8)),)),
    **{name: _zoo(name) for name in _zoo_names()},
}


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, build: Build, cache_dir: Path, precision: str, repeat: int) -> tuple[str, ...]:
    """One table row: the cached bind, the lint of the bound program, their ratio."""
    torch.manual_seed(0)
    model, examples = build()
    model.eval()
    settings = ModelSettings(precision=precision)

    def bind() -> tuple[CoreMLModel, Runtime]:
        runtime = Runtime(ConversionCache(cache_dir), "emulator")  # a new session: no memory hit
        bound = CoreMLModel(settings, runtime)
        bound.bind(model, examples, node_id=name)
        return bound, runtime

    try:
        bind()  # converts once into the disk cache
    except ConversionError as error:
        reason = str(error).splitlines()[0][:90]
        return (name, precision, "-", "-", "-", "-", "-", "-", f"fails to convert: {reason}")
    events = []

    def timed_bind() -> None:
        bound, _ = bind()
        events.append(bound.event)

    bind_s = _median_seconds(timed_bind, repeat)
    assert set(events) == {"disk"}, f"{name}: expected disk-cache hits, got {events}"
    bound, runtime = bind()
    source = runtime.last_captured
    findings, _text = _lint(bound, source)
    lint_s = _median_seconds(lambda: _lint(bound, source), repeat)

    from pytest_coreml_parity.emulator import Emulator

    plan_s = _median_seconds(lambda: Emulator(bound.mlmodel, fp16_execution=bound.emulator_profile), repeat)
    ops = len(_emulator_ops(bound))
    rules = sorted({str(f["rule"]) for f in findings})
    return (
        name, precision, str(ops), f"{bind_s * 1e3:.0f}", f"{lint_s * 1e3:.1f}",
        f"{100 * lint_s / bind_s:.2f}%", f"{plan_s * 1e3:.0f}", str(len(findings)),
        ", ".join(rules) if rules else "-",
    )  # fmt: skip


def _emulator_ops(bound: CoreMLModel) -> tuple[Any, ...]:
    from pytest_coreml_parity.emulator import _emulator_for

    return _emulator_for(bound.mlmodel, "main", bound.emulator_profile).ops


HEADER = (
    "model", "precision", "MIL ops", "cached bind ms", "lint ms", "lint / bind",
    "emulator plan ms", "findings", "rules found",
)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT), choices=list(MODELS), help="zoo names (docs/zoo.md)")
    parser.add_argument("--precision", default="fp16", help="conversion precision. Default: fp16")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (set before import)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(measure(name, MODELS[name], Path(tmp), args.precision, args.repeat))
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
    lines = [
        SECTION,
        "",
        f"Measured with `benchmarks/bench_lint.py` on {platform.machine()} Linux, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {THREADS} thread(s), 2 shared CPU "
        f"cores (other jobs running), emulator backend; medians of {args.repeat} runs, in one process.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "The cached bind is `CoreMLModel.bind` on a disk-cache hit, as the plugin runs it for",
        "each test: capture + key, manifest check and load, and the warm-up call that plans",
        "the emulator program and runs it once. The lint runs every rule over that planned",
        "program and the captured torch graph, and looks up torch source lines for its hits;",
        "the plugin lints a program once per session (a program bound by many tests is not",
        "linted again). The emulator plan is shared with the warm-up; a bind on the Core ML",
        "backend (macOS) does not plan the emulator, so there the lint also pays the plan",
        "column (4-18% of the emulator bind measured here; a macOS bind, which compiles the",
        "model for Core ML instead, was not measured).",
        "",
        "The models are the zoo's (`tools/zoo`, docs/zoo.md): built as the zoo builds them",
        "(random weights, batch norm calibrated; transformers from tiny configs) and bound as",
        "the plugin binds them (`hf/llama`: the raw `LlamaForCausalLM`, wrapped with its KV",
        "cache as Core ML states). A model that fails to convert has no ratio.",
        "The NaN scan of `coreml-triu-mask-nan` skips the weights of conv / linear / matmul /",
        "norm / gather ops: scanning resnet18's 11M weights was 36 of the lint's 39 ms.",
        "",
    ]
    if args.no_write:
        print("\n".join(lines))
    else:
        out = ROOT / "docs/performance.md"
        write_section(out, SECTION, "\n".join(lines))
        print(f"wrote the '{SECTION}' section of {out}")


if __name__ == "__main__":
    main()
