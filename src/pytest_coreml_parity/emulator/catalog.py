"""Every kernel the emulator has: imports the kernel modules, then looks kernels up.

This is the one module above both :mod:`.registry` (the table) and
:mod:`.kernels` (which fill it), so neither has to import the other.
"""

from __future__ import annotations

from . import kernels  # noqa: F401  (importing registers every kernel module)
from .registry import REGISTERED, Kernel


def lookup(op_type: str) -> Kernel | None:
    """The kernel for ``op_type``, or ``None`` when the emulator has none."""
    return REGISTERED.get(op_type)


def supported_ops() -> frozenset[str]:
    """Every op type the emulator can run (``const`` is resolved while planning)."""
    return frozenset(REGISTERED) | {"const"}
