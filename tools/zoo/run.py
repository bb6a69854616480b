"""Run zoo models through the plugin's default path, each in a pytest subprocess.

For each model (or one group of models, ``together=True``) a temporary directory
gets the generated test file (:mod:`.testfile`) and an empty ``pytest.ini``, so
the run sees the plugin's defaults and nothing of this repository's configuration.
pytest runs it with the collector (:mod:`.collect`) and a fresh conversion cache,
with torch and BLAS on one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .registry import ZooModel
from .results import ModelResult, PrecisionResult, model_result
from .testfile import file_name, render

#: The repository root (``tools/`` is importable from here).
REPO = Path(__file__).resolve().parents[2]
#: Seconds one subprocess may take before it is stopped and its models marked.
DEFAULT_TIMEOUT = 1800.0
#: One thread each side: torch's intra-op pool and numpy's BLAS (read at import).
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def subprocess_env() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH, one thread, and quiet progress bars."""
    env = dict(os.environ)
    paths = [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(ONE_THREAD_ENV)
    env.setdefault("TQDM_DISABLE", "1")
    return env


def pytest_command(files: Sequence[str], results: Path, cache_dir: str, precisions: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
        "-p", "tools.zoo.collect", f"--zoo-results={results}",
        f"--coreml-cache-dir={cache_dir}", f"--coreml-precisions={','.join(precisions)}",
    ]  # fmt: skip


def run_group(
    entries: Sequence[ZooModel],
    *,
    precisions: Sequence[str] = ("fp32", "fp16"),
    workdir: Path,
    cache_dir: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ModelResult]:
    """Run ``entries`` in one pytest subprocess in ``workdir``; one result per entry."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    files = []
    for entry in entries:
        files.append(file_name(entry.name))
        (workdir / files[-1]).write_text(render(entry.name))
    results_path = workdir / "results.json"
    results_path.unlink(missing_ok=True)
    cache = cache_dir if cache_dir is not None else str(workdir / "coreml-cache")
    command = pytest_command(files, results_path, cache, precisions)
    start = time.perf_counter()
    harness_error = ""
    with open(workdir / "pytest.log", "w") as log:
        try:
            completed = subprocess.run(
                command, cwd=workdir, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            harness_error = f"timed out after {timeout:.0f} s"
        else:
            if completed.returncode not in (0, 1):  # 1: tests failed, which the records say
                harness_error = f"pytest exited with status {completed.returncode} (see {workdir / 'pytest.log'})"
    wall = round(time.perf_counter() - start, 3)
    payload: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    out = []
    for entry, name in zip(entries, files, strict=True):
        result = model_result(entry, payload, name)
        result.wall_s = wall if len(entries) == 1 else None
        if harness_error and not result.harness_error:
            result.harness_error = harness_error
        for precision in precisions:
            slot = result.precisions.setdefault(precision, PrecisionResult())
            if slot.verdict == "missing" and harness_error:
                slot.verdict, slot.cause = "error", harness_error
        out.append(result)
    return out


def run_models(
    entries: Sequence[ZooModel],
    *,
    precisions: Sequence[str] = ("fp32", "fp16"),
    workdir: Path | None = None,
    cache_dir: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    on_result: Callable[[ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Each model in its own subprocess (a crash or a timeout costs one model), in order."""
    base = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="zoo-"))
    results = []
    for entry in entries:
        directory = base / entry.name.replace("/", "_")
        (result,) = run_group(
            [entry], precisions=precisions, workdir=directory, cache_dir=cache_dir, timeout=timeout
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
