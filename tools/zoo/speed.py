"""Emulator against torch eager, one thread each side, in the same run.

:func:`measure` alternates the two sides (so a busy neighbour slows both alike) and
takes each side's median. The ratio is emulator / torch: 1.0 means as fast as torch.
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

#: Timed repetitions per side: at least, at most, and the wall time aimed for.
MIN_REPS = 3
MAX_REPS = 99
TARGET_SECONDS = 3.0


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch and numpy's BLAS on one thread (threadpoolctl, when installed), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    limits: Any = contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        limits = importlib.import_module("threadpoolctl").threadpool_limits(limits=1)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(threads)


def _seconds(call: Callable[..., Any], setup: Callable[[], Any] | None = None) -> float:
    """Seconds of ``call()``; ``setup()`` runs first, untimed, and its value is the argument."""
    if setup is None:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start
    argument = setup()
    start = time.perf_counter()
    call(argument)
    return time.perf_counter() - start


def measure(coreml_model: Any, torch_model: Any, example_inputs: Sequence[Any]) -> dict[str, float | int]:
    """Median milliseconds of ``coreml_model(*inputs)`` and of torch eager, and their ratio.

    A stateful model's call continues its sequence (a causal LM's KV cache fills) and also
    steps its torch copy, so for one the Core ML side is a fresh prefill: the state reset
    and the inputs prepared untimed, then the program's run alone.
    """
    inputs = tuple(example_inputs)
    emulator: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    if getattr(coreml_model, "torch_state_model", None) is not None:

        def setup() -> Any:
            coreml_model.reset_state()
            return coreml_model.prepare(inputs)

        emulator = coreml_model.run_prepared
    else:

        def emulator() -> Any:
            return coreml_model(*inputs)

    def eager() -> Any:
        with torch.no_grad():
            return torch_model(*inputs)

    with one_thread():
        _seconds(emulator, setup), eager()  # warm both sides (first-call allocations, lazy plans)
        first = (_seconds(emulator, setup), _seconds(eager))
        reps = max(MIN_REPS, min(MAX_REPS, int(TARGET_SECONDS / max(sum(first), 1e-6))))
        times: list[tuple[float, float]] = [first]
        for _ in range(reps - 1):
            times.append((_seconds(emulator, setup), _seconds(eager)))
    emulator_ms = statistics.median(t[0] for t in times) * 1e3
    torch_ms = statistics.median(t[1] for t in times) * 1e3
    return {
        "emulator_ms": round(emulator_ms, 3),
        "torch_ms": round(torch_ms, 3),
        "ratio": round(emulator_ms / torch_ms, 3) if torch_ms > 0 else float("nan"),
        "reps": len(times),
    }
