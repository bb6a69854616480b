"""The package's error hierarchy: one base class, one subclass per kind of failure.

A leaf module (no imports from the package, nothing heavy), so the settings the
plugin imports at startup and the emulator used on its own can both raise these.
Every error says what was wrong and where it came from; docs/errors.md lists them.

    CoreMLParityError
    ├── SettingError          an option, ini value or marker keyword is invalid (ValueError)
    ├── ConversionError       tracing/exporting or ct.convert failed; ``summary`` is one line
    ├── InputMismatchError    inputs given to coreml_model do not fit the model (ValueError)
    ├── PackageError          a package= model does not load or does not fit torch_model
    ├── NotBoundError         a coreml_model used outside a test that bound it (RuntimeError)
    ├── CacheEntryError       a disk-cache entry failed verification (it is rebuilt, not raised)
    └── EmulatorError         (pytest_coreml_parity.emulator.errors) every emulator error

``ParityFailure`` is the ``AssertionError`` that ``assert_parity`` and
``assert_finite`` raise; it lives in :mod:`.compare` and carries the model and inputs.
"""

from __future__ import annotations


class CoreMLParityError(Exception):
    """Base class for every error this package raises on purpose."""


class SettingError(CoreMLParityError, ValueError):
    """A setting is invalid; the message names the value and where it came from."""


class ConversionError(CoreMLParityError):
    """Tracing or converting failed; ``summary`` is the one-line reason."""

    def __init__(self, summary: str, detail: str = "") -> None:
        self.summary = summary
        self.detail = detail
        super().__init__(summary)


class InputMismatchError(CoreMLParityError, ValueError):
    """The inputs passed to ``coreml_model`` do not match the converted model."""


class PackageError(CoreMLParityError):
    """A ``package=`` model does not load, or its inputs/outputs do not fit ``torch_model``."""


class NotBoundError(CoreMLParityError, RuntimeError):
    """A ``coreml_model`` was used before the plugin bound it to a test's torch model."""


class CacheEntryError(CoreMLParityError):
    """A disk-cache entry is truncated, garbled, half-written or foreign.

    The cache treats it as a miss and rebuilds the entry; ``reason`` is what the
    session summary reports.
    """

    def __init__(self, reason: str, where: str) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"cache entry {where}: {reason}")


class DumpError(CoreMLParityError):
    """A golden dump folder (``--coreml-dump``) that replay cannot use: missing, foreign,
    of another format version, or damaged (report/replay.py)."""


__all__ = [
    "CacheEntryError",
    "ConversionError",
    "CoreMLParityError",
    "DumpError",
    "InputMismatchError",
    "NotBoundError",
    "PackageError",
    "SettingError",
]

