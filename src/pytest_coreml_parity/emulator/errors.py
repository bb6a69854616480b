"""Exceptions raised by the emulator. All derive from :class:`EmulatorError`."""

from __future__ import annotations

from ..errors import CoreMLParityError


class EmulatorError(CoreMLParityError):
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


class UnsupportedFeatureError(EmulatorError):
    """The program uses a feature the emulator does not run, other than an op type.

    ``feature`` says what is not supported (``"sampling_mode 'UNALIGN_CORNERS'"``,
    ``"input of type state<...>"``) and ``where`` where it was met (the op, with its
    type and opset, or the model's source). Tensors of unknown rank (coremltools'
    program loader cannot read them) are reported at load; an attribute value or
    dtype a kernel does not model (a sampling mode, integer ``scatter`` division)
    when the op runs, before any output is returned.

    It is a sibling of :class:`UnsupportedOpError`, not a kind of it: catch both
    to catch everything the emulator declines to run.
    """

    def __init__(self, feature: str, where: str) -> None:
        self.feature = feature
        self.where = where
        super().__init__(f"the emulator does not support {feature} ({where})")


class InputError(EmulatorError, ValueError):
    """The inputs given to a run do not match the model's declared inputs."""


class KernelError(EmulatorError):
    """A kernel failed on the values it was given; names the op that failed."""


class DuplicateKernelError(EmulatorError):
    """Two kernels were registered for one op type (a bug in the emulator itself)."""

    def __init__(self, op_type: str) -> None:
        self.op_type = op_type
        super().__init__(f"two kernels registered for op type {op_type!r}")


class UnspecifiedResultError(EmulatorError, ValueError):
    """An op was given inputs for which Core ML leaves the result undefined.

    Out-of-range indices (whatever ``validate_indices`` says), integer division by
    zero, and the like: the device returns *something*, but nothing says what, so
    the emulator refuses rather than guess. Kernels raise it; callers receive it as
    the ``__cause__`` of the :class:`KernelError` naming the op.
    """
