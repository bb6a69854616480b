"""Runs Core AI programs in an isolated, persistent worker process.

coreai-core's interpreter is native code (Swift). On this Linux machine loading an
``.mlpackage`` with it segfaults the process, and a hang in native code cannot be
interrupted from Python. So the interpreter never runs in the pytest process: a
:class:`CoreAIWorker` starts ``python -m pytest_coreml_parity.coreai.runner`` once,
reuses it for every call (loaded models stay compiled), and turns

* a crash (any signal, any exit) into :class:`CoreAIRuntimeError` naming the signal or
  exit code, the model and the tail of the worker's stderr (faulthandler is on);
* no answer within ``timeout`` seconds into :class:`CoreAITimeoutError` (the worker is
  killed);
* a Python exception inside the worker into :class:`CoreAIRuntimeError` with its traceback
  (the worker stays up).

After a crash or timeout the next call starts a fresh worker. One lock serializes calls
(the interpreter is effectively single-threaded anyway); under xdist each pytest worker
has its own Core AI worker.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import CoreAIRuntimeError, CoreAITimeoutError, describe_exit

if TYPE_CHECKING:
    import numpy as np

    from .program import CoreAIProgram

#: Seconds one call may take before the worker is killed; the first call on a program
#: includes compiling it to ODIX.
DEFAULT_TIMEOUT = 600.0
#: Seconds the worker may take to start and import coreai-core.
START_TIMEOUT = 120.0
_SRC = str(Path(__file__).resolve().parents[2])


class CoreAIWorker:
    """One worker process running coreai-core's interpreter; restarted after it dies."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT, start_timeout: float = START_TIMEOUT
    ) -> None:
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.starts = 0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._stderr: IO[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The live worker's pid, or None when no worker is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _start(self) -> None:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH", "")) if p)
        env["PYTHONFAULTHANDLER"] = "1"
        self._stderr = tempfile.TemporaryFile(prefix="coreai-worker-stderr-")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_coreml_parity.coreai.runner",
                    str(child_read),
                    str(child_write),
                ],
                pass_fds=(child_read, child_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=env,
                close_fds=True,
            )
        finally:
            os.close(child_read)
            os.close(child_write)
        self._send = Connection(parent_write, readable=False)
        self._recv = Connection(parent_read, writable=False)
        self.starts += 1
        reply = self._receive(self.start_timeout, "starting the Core AI worker")
        if reply[0] != "ready":
            self._stop()
            raise CoreAIRuntimeError(
                f"the Core AI worker sent {reply!r} instead of 'ready'", model="-"
            )

    def _stop(self) -> None:
        process, self._process = self._process, None
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self._send = self._recv = None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """Stop the worker (it restarts on the next call)."""
        with self._lock:
            self._stop()

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        # the interpreter logs "ODIE [default]: Loading function ..." on every load; drop it
        return "\n".join(line for line in text.splitlines() if not line.startswith("ODIE ")).strip()

    # -- calls -------------------------------------------------------------------------------

    def _receive(self, timeout: float, model: str) -> tuple[Any, ...]:
        assert self._recv is not None and self._process is not None
        process = self._process
        try:
            ready = self._recv.poll(timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            pid = process.pid
            self._stop()
            raise CoreAITimeoutError(
                f"the Core AI interpreter (worker pid {pid}) did not answer within {timeout:g} s "
                f"while running {model}; it was killed and restarts on the next call",
                model=model,
                timeout=timeout,
            )
        try:
            reply: tuple[Any, ...] = self._recv.recv()
            return reply
        except (EOFError, OSError):
            pass
        try:
            returncode: int | None = process.wait(10)
        except subprocess.TimeoutExpired:
            returncode = None
        tail = self._stderr_tail()
        pid = process.pid
        self._stop()
        raise CoreAIRuntimeError(
            f"the Core AI interpreter (worker pid {pid}) {describe_exit(returncode)} while running "
            f"{model}; the pytest process is unaffected and the worker restarts on the next call"
            + (f"\nworker stderr (tail):\n{tail}" if tail else ""),
            model=model,
            returncode=returncode,
            detail=tail,
        )

    def request(self, message: tuple[Any, ...], *, model: str, timeout: float | None = None) -> Any:
        """Send one request and return the worker's result; see :mod:`.runner` for messages."""
        with self._lock:
            if self.pid is None:
                self._stop()
                self._start()
            assert self._send is not None
            try:
                self._send.send(message)
            except (BrokenPipeError, OSError):
                # died between calls (killed from outside): requests are idempotent, retry once
                self._stop()
                self._start()
                assert self._send is not None
                self._send.send(message)
            reply = self._receive(self.timeout if timeout is None else timeout, model)
        if reply[0] == "ok":
            return reply[1]
        _, kind, text, tb = reply
        raise CoreAIRuntimeError(
            f"Core AI failed running {model}: {kind}: {text}", model=model, detail=tb
        )

    def run(
        self,
        program: CoreAIProgram,
        feed: Mapping[str, np.ndarray],
        *,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs by name of ``program`` on the named inputs ``feed``."""
        result: dict[str, np.ndarray] = self.request(
            ("run", str(program.directory), dict(feed)), model=program.name, timeout=timeout
        )
        return result

    def record(
        self,
        program: CoreAIProgram,
        feed: Mapping[str, np.ndarray],
        *,
        timeout: float | None = None,
    ) -> tuple[dict[int, list[np.ndarray | None]], dict[str, np.ndarray]]:
        """Every op's outputs by Core AI op id, and the final outputs, from a debug build."""
        result: tuple[dict[int, list[np.ndarray | None]], dict[str, np.ndarray]] = self.request(
            ("record", str(program.directory), dict(feed)), model=program.name, timeout=timeout
        )
        return result

    def open(self, path: Path, *, timeout: float | None = None) -> list[str]:
        """Load any asset path with coreai-core (isolated); its function names."""
        names: list[str] = self.request(("open", str(path)), model=str(path), timeout=timeout)
        return names


_DEFAULT: CoreAIWorker | None = None
_DEFAULT_LOCK = threading.Lock()


def default_worker() -> CoreAIWorker:
    """The process-wide worker (created on first use, stopped at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = CoreAIWorker()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


__all__ = ["DEFAULT_TIMEOUT", "CoreAIWorker", "default_worker"]
