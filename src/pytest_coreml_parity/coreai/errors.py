"""Errors of the Core AI target; all are :class:`~pytest_coreml_parity.errors.CoreMLParityError`.

A leaf module, like the package's ``errors.py``: nothing heavy is imported.

    CoreMLParityError
    └── CoreAIError               every error of the Core AI target
        ├── CoreAIUnavailableError   coreai cannot run here; ``reason`` says why
        └── CoreAIRuntimeError       the interpreter's worker process crashed or failed
            └── CoreAITimeoutError   ... or did not answer in time (it is killed)

Conversion failures are the package's :class:`~pytest_coreml_parity.errors.ConversionError`.
"""

from __future__ import annotations

import signal

from ..errors import CoreMLParityError


class CoreAIError(CoreMLParityError):
    """Base class of the Core AI target's errors."""


class CoreAIUnavailableError(CoreAIError):
    """Core AI cannot be used on this machine; ``reason`` is the one-line cause."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Core AI is unavailable: {reason}")


def describe_exit(returncode: int | None) -> str:
    """``-11`` -> ``"killed by signal SIGSEGV (11)"``; ``3`` -> ``"exited with code 3"``."""
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "signal"
        return f"killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


class CoreAIRuntimeError(CoreAIError):
    """The Core AI interpreter failed to run a program.

    ``model`` names the program (its directory), ``returncode`` is the worker's exit status
    when the worker died (negative: the signal number), ``detail`` is the worker's traceback
    when the failure was a Python exception inside it.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        returncode: int | None = None,
        detail: str = "",
    ) -> None:
        self.model = model
        self.returncode = returncode
        self.detail = detail
        super().__init__(message)


class CoreAITimeoutError(CoreAIRuntimeError):
    """The worker did not answer within ``timeout`` seconds; it was killed."""

    def __init__(self, message: str, *, model: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(message, model=model)


__all__ = [
    "CoreAIError",
    "CoreAIRuntimeError",
    "CoreAITimeoutError",
    "CoreAIUnavailableError",
    "describe_exit",
]
