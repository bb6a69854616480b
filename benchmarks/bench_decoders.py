"""What a decoder costs: one decode step (emulator vs torch, same run) and a 64-step
generation check, per precision.

The tiny Llama of ``examples/llm_decoder`` (2 layers, hidden 64, vocabulary 256, random
weights), raw, bound the way a test binds it (``CoreMLModel.bind`` with the ``states``
recipe: the KV cache as fp16 Core ML states, context 128). Per precision and round,
alternating: an 8-token prefill then 64 one-token decode steps through ``Emulator.run``
with an ``EmulatorState``, and the same through the torch wrapper (a deep copy whose
cache buffers advance); then a whole ``assert_generation(model, prompt,
max_new_tokens=64)`` (both sides, greedy, each with its own cache, the verdicts).
Medians over the rounds after a warm-up round; one thread on each side. Writes the
'## Decoder cost' section of docs/performance.md (``--no-write`` prints it).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tools.zoo.torchvision_guard

from _docs import set_threads, write_section  # noqa: E402

THREADS = set_threads(sys.argv)

import argparse  # noqa: E402
import copy  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

SECTION = "## Decoder cost"
PROMPT, STEPS = 8, 64


def tiny_llama() -> Any:
    import torch
    from tools.zoo.torchvision_guard import ensure_torchvision_importable

    ensure_torchvision_importable()  # a torchvision built for another torch breaks transformers'
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    torch.manual_seed(0)
    model: Any = LlamaForCausalLM(config)
    return model.eval()


def measure(rounds: int) -> list[dict[str, float | str]]:
    import numpy as np
    import torch

    from pytest_coreml_parity import assert_generation
    from pytest_coreml_parity.cache import ConversionCache
    from pytest_coreml_parity.emulator import Emulator
    from pytest_coreml_parity.model import CoreMLModel, ModelSettings, Runtime

    torch.set_num_threads(THREADS)
    prompt = torch.randint(0, 256, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    tokens = torch.randint(0, 256, (STEPS,), generator=torch.Generator().manual_seed(2)).tolist()
    rows: list[dict[str, float | str]] = []
    for precision in ("fp32", "fp16"):
        model = CoreMLModel(
            ModelSettings(precision=precision),
            Runtime(ConversionCache(None), "emulator"),
        )
        start = time.perf_counter()
        model.bind(tiny_llama(), (prompt,), decoder="states")
        convert_s = time.perf_counter() - start
        emulator = Emulator(model.mlmodel)
        feeds = [(prompt.numpy().astype(np.int32), np.ones((1, PROMPT), np.int32))]
        for i, token in enumerate(tokens):
            feeds.append((np.array([[token]], np.int32), np.ones((1, PROMPT + i + 1), np.int32)))
        torch_feeds = [tuple(torch.from_numpy(array) for array in step) for step in feeds]
        emu, ref, gen = [], [], []
        for _ in range(rounds + 1):  # the first round warms up
            state = emulator.make_state()
            emulator.run(dict(zip(model.input_names, feeds[0], strict=True)), state=state)
            start = time.perf_counter()
            for feed in feeds[1:]:
                emulator.run(dict(zip(model.input_names, feed, strict=True)), state=state)
            emu.append((time.perf_counter() - start) / STEPS * 1e6)
            twin = copy.deepcopy(model.torch_model)
            with torch.no_grad():
                twin(*torch_feeds[0])
                start = time.perf_counter()
                for tensors in torch_feeds[1:]:
                    twin(*tensors)
            ref.append((time.perf_counter() - start) / STEPS * 1e6)
            model.reset_state()
            start = time.perf_counter()
            assert_generation(model, prompt, max_new_tokens=STEPS)
            gen.append(time.perf_counter() - start)
        rows.append(
            {
                "precision": precision,
                "emulator_us": statistics.median(emu[1:]),
                "torch_us": statistics.median(ref[1:]),
                "generation_s": statistics.median(gen[1:]),
                "convert_s": convert_s,
            }
        )
    return rows


def render(rows: list[dict[str, float | str]], rounds: int) -> str:
    import coremltools
    import torch

    lines = [
        SECTION,
        "",
        "Produced by `benchmarks/bench_decoders.py`: the tiny Llama of `examples/llm_decoder`",
        "(2 layers, hidden 64, vocabulary 256) bound raw with the `states` recipe (KV cache as",
        f"fp16 Core ML states, context 128). A decode step: {STEPS} one-token steps after an",
        f"{PROMPT}-token prefill, `Emulator.run` with an `EmulatorState` against the torch",
        "wrapper on a deep copy whose cache advances, alternating in one process. The",
        f"generation check: `assert_generation(model, prompt, max_new_tokens={STEPS})`, both",
        f"sides and the verdicts (target: under 10 s per precision). Medians of {rounds}",
        f"rounds after a warm-up; {THREADS} thread(s) on each side; {platform.machine()} Linux,",
        f"Python {platform.python_version()}, torch {torch.__version__}, coremltools",
        f"{coremltools.__version__}, 2 shared CPU cores (load average {os.getloadavg()[0]:.1f} at",
        "the end of the run: other jobs share the cores, so compare the ratio, not the µs).",
        "",
        "| precision | emulator step (µs) | torch step (µs) | emulator / torch | 64-step generation check (s) | conversion (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        emu, ref = float(row["emulator_us"]), float(row["torch_us"])
        lines.append(
            f"| {row['precision']} | {emu:.0f} | {ref:.0f} | {emu / ref:.2f}x | "
            f"{float(row['generation_s']):.2f} | {float(row['convert_s']):.1f} |"
        )
    lines += [
        "",
        "Conversion (trace, `ct.convert`, plan) happens once per session and precision, then",
        "comes from the disk cache; it is not part of the generation check.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
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
