"""The interpreter runs in an isolated worker: crashes and hangs never take pytest down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity.coreai import (
    CoreAIProgram,
    CoreAIRuntimeError,
    CoreAITimeoutError,
    CoreAIWorker,
)

from .models import ComplexDiv

pytestmark = [pytest.mark.coreai, pytest.mark.usefixtures("needs_coreai")]


@pytest.fixture
def worker() -> Any:
    own = CoreAIWorker(timeout=60)
    yield own
    own.close()


@pytest.fixture
def program(convert: Any) -> CoreAIProgram:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    result: CoreAIProgram = convert("complex_div", ComplexDiv(), (x,), "fp32")
    return result


def run_ok(worker: CoreAIWorker, program: CoreAIProgram) -> None:
    x = torch.randn(16, 4)
    out = worker.run(program, program.feed(x))
    np.testing.assert_array_equal(program.structure(out), ComplexDiv()(x).numpy())


def test_segfault_becomes_an_error_and_the_next_call_works(
    worker: CoreAIWorker, program: CoreAIProgram
) -> None:
    run_ok(worker, program)
    first = worker.pid
    with pytest.raises(CoreAIRuntimeError, match=r"killed by signal SIGSEGV \(11\)") as info:
        worker.request(("debug", "segfault", None), model="segfault-hook")
    assert info.value.returncode == -signal.SIGSEGV and info.value.model == "segfault-hook"
    assert "Segmentation fault" in info.value.detail  # faulthandler's report, from stderr
    assert worker.pid is None
    run_ok(worker, program)
    assert worker.pid not in (None, first, os.getpid()) and worker.starts == 2


def test_loading_an_mlpackage_segfaults_only_the_worker(
    worker: CoreAIWorker, program: CoreAIProgram, tmp_path: Path
) -> None:
    ct = pytest.importorskip("coremltools")
    traced = torch.jit.trace(ComplexDiv().eval(), torch.randn(16, 4))  # type: ignore[no-untyped-call]
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(shape=(16, 4))],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS16,
    )
    package = tmp_path / "ComplexDiv.mlpackage"
    mlmodel.save(str(package))
    with pytest.raises(CoreAIRuntimeError, match="SIGSEGV") as info:
        worker.open(package)
    assert str(package) in str(info.value)
    run_ok(worker, program)


def test_hang_times_out_kills_the_worker_and_the_next_call_works(
    worker: CoreAIWorker, program: CoreAIProgram
) -> None:
    run_ok(worker, program)
    hung = worker.pid
    start = time.monotonic()
    with pytest.raises(CoreAITimeoutError, match="did not answer within 1 s") as info:
        worker.request(("debug", "sleep", 60), model="sleep-hook", timeout=1)
    assert time.monotonic() - start < 15 and info.value.timeout == 1
    assert hung is not None
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)  # killed and reaped
    run_ok(worker, program)


def test_exit_code_is_named(worker: CoreAIWorker, program: CoreAIProgram) -> None:
    with pytest.raises(CoreAIRuntimeError, match="exited with code 3") as info:
        worker.request(("debug", "exit", 3), model="exit-hook")
    assert info.value.returncode == 3
    run_ok(worker, program)


def test_python_errors_in_the_worker_keep_it_alive(worker: CoreAIWorker, tmp_path: Path) -> None:
    pid = worker.request(("ping",), model="ping")
    with pytest.raises(CoreAIRuntimeError, match="FileNotFoundError") as info:
        worker.request(("run", str(tmp_path), {}), model="missing")
    assert "Traceback" in info.value.detail and info.value.returncode is None
    assert worker.request(("ping",), model="ping") == pid


def test_worker_reuses_the_loaded_program(worker: CoreAIWorker, program: CoreAIProgram) -> None:
    run_ok(worker, program)
    x = program.feed(torch.randn(16, 4))
    start = time.perf_counter()
    for _ in range(20):
        worker.run(program, x)
    assert (time.perf_counter() - start) / 20 < 0.5  # no reload/recompile per call
    assert worker.starts == 1
