"""pytest-coreml-parity: PyTorch -> Core ML conversion parity, testable in any CI.

Public names are loaded lazily (PEP 562), so ``import pytest_coreml_parity``
and the pytest plugin stay cheap until a test actually needs torch or coremltools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr

if TYPE_CHECKING:
    from .compare import (
        ParityFailure,
        PreprocessingMismatch,
        assert_finite,
        assert_parity,
        assert_rollout,
    )
    from .convert import ConversionOptions, convert_model
    from .decoders.generation import assert_generation
    from .emulator import (
        Emulator,
        EmulatorError,
        EmulatorState,
        InputError,
        KernelError,
        ModelLoadError,
        UnspecifiedResultError,
        UnsupportedFeatureError,
        UnsupportedOpError,
        emulate,
    )
    from .errors import (
        CacheEntryError,
        ConversionError,
        CoreMLParityError,
        InputMismatchError,
        NotBoundError,
        SettingError,
    )
    from .model import CoreMLModel
    from .verdict import TOLERANCES

_LAZY = {
    "assert_parity": "compare",
    "assert_rollout": "compare",
    "assert_generation": "decoders.generation",
    "assert_finite": "compare",
    "TOLERANCES": "verdict",
    "ParityFailure": "compare",
    "PreprocessingMismatch": "compare",
    "ConversionError": "errors",
    "CoreMLParityError": "errors",
    "SettingError": "errors",
    "NotBoundError": "errors",
    "CacheEntryError": "errors",
    "EmulatorError": "emulator",
    "InputError": "emulator",
    "KernelError": "emulator",
    "ModelLoadError": "emulator",
    "UnspecifiedResultError": "emulator",
    "UnsupportedFeatureError": "emulator",
    "ConversionOptions": "convert",
    "convert_model": "convert",
    "CoreMLModel": "model",
    "InputMismatchError": "errors",
    "Emulator": "emulator",
    "EmulatorState": "emulator",
    "UnsupportedOpError": "emulator",
    "emulate": "emulator",
}

__all__ = [
    "TOLERANCES",
    "CacheEntryError",
    "ConversionError",
    "ConversionOptions",
    "CoreMLModel",
    "CoreMLParityError",
    "Emulator",
    "EmulatorError",
    "EmulatorState",
    "InputError",
    "InputMismatchError",
    "KernelError",
    "ModelLoadError",
    "NotBoundError",
    "ParityFailure",
    "PreprocessingMismatch",
    "SettingError",
    "UnspecifiedResultError",
    "UnsupportedFeatureError",
    "UnsupportedOpError",
    "assert_finite",
    "assert_generation",
    "assert_parity",
    "assert_rollout",
    "convert_model",
    "emulate",
]
__version__ = "0.1.0"


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
