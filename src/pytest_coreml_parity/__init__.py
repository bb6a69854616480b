"""pytest-coreml-parity: PyTorch -> Core ML conversion parity, testable in any CI."""

from __future__ import annotations

from .emulator import Emulator, UnsupportedOpError, emulate

__all__ = ["Emulator", "UnsupportedOpError", "emulate"]
__version__ = "0.1.0"
