"""Exceptions raised by the emulator. All derive from :class:`EmulatorError`."""

from __future__ import annotations


class EmulatorError(Exception):
    """Base class for every error the emulator raises on purpose."""


class ModelLoadError(EmulatorError):
    """The model or ``.mlpackage`` could not be read as an ML Program.

    Raised for missing, truncated or malformed packages, for neural-network
    (non ML Program) models, and for unknown function names.
    """


class UnsupportedOpError(EmulatorError):
    """The program contains an op the emulator has no kernel for.

    Raised while planning, before any output is produced: an unsupported op is
    never approximated.
    """

    def __init__(self, op_type: str, op_name: str, opset: str) -> None:
        self.op_type = op_type
        self.op_name = op_name
        self.opset = opset
        super().__init__(
            f"the emulator does not support op type {op_type!r} "
            f"(op {op_name!r}, opset {opset}); see docs/emulator.md for the supported ops"
        )


class InputError(EmulatorError, ValueError):
    """The inputs given to a run do not match the model's declared inputs."""


class KernelError(EmulatorError):
    """A kernel failed on the values it was given; names the op that failed."""
