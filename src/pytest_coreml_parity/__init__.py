"""pytest-coreml-parity: PyTorch -> Core ML conversion parity, testable in any CI.

Public names are loaded lazily (PEP 562), so ``import pytest_coreml_parity``
and the pytest plugin stay cheap until a test actually needs torch or coremltools.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import TOLERANCES, assert_finite, assert_parity
    from .convert import ConversionError, ConversionOptions, convert_model
    from .emulator import Emulator, EmulatorState, UnsupportedOpError, emulate
    from .model import CoreMLModel, InputMismatchError

_LAZY = {
    "assert_parity": "compare",
    "assert_finite": "compare",
    "TOLERANCES": "compare",
    "ConversionError": "convert",
    "ConversionOptions": "convert",
    "convert_model": "convert",
    "CoreMLModel": "model",
    "InputMismatchError": "model",
    "Emulator": "emulator",
    "EmulatorState": "emulator",
    "UnsupportedOpError": "emulator",
    "emulate": "emulator",
}

__all__ = [
    "TOLERANCES",
    "ConversionError",
    "ConversionOptions",
    "CoreMLModel",
    "Emulator",
    "EmulatorState",
    "InputMismatchError",
    "UnsupportedOpError",
    "assert_finite",
    "assert_parity",
    "convert_model",
    "emulate",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
