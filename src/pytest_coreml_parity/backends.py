"""Where converted models run: the real Core ML runtime (macOS) or the emulator.

``resolve_backend`` turns the ``--coreml-backend`` choice into a backend, or
into the reason it cannot run here; the plugin skips (never passes) tests
whose backend is unavailable.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

BACKENDS: tuple[str, ...] = ("auto", "coreml", "emulator")


class Backend(Protocol):
    name: str

    def load(self, package: Path, compute_units: str) -> Any:
        """Open a cached ``.mlpackage`` in the form :meth:`predict` needs."""

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``mlmodel`` on ``feed``; outputs keyed by output name."""


class EmulatorBackend:
    """Runs ML Programs with Core ML's typed fp16 storage, on any OS (see docs/emulator.md)."""

    name = "emulator"

    def load(self, package: Path, compute_units: str) -> Any:
        from ._coremltools import import_coremltools

        ct = import_coremltools()
        return ct.models.MLModel(str(package), skip_model_load=True)

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .emulator import emulate

        return emulate(mlmodel, feed)


class CoreMLBackend:
    """The real Core ML runtime via ``MLModel.predict`` (macOS only)."""

    name = "coreml"

    def load(self, package: Path, compute_units: str) -> Any:
        from ._coremltools import import_coremltools

        ct = import_coremltools()
        return ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, compute_units))

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # MLModel.predict wants arrays in the declared dtypes; the caller casts them.
        import numpy as np

        result = mlmodel.predict(dict(feed))
        return {name: np.asarray(value) for name, value in result.items()}


@lru_cache(maxsize=1)
def coreml_unavailable_reason() -> str | None:
    """Why the real Core ML runtime cannot run here, or None if it can."""
    if sys.platform != "darwin":
        return f"the Core ML runtime needs macOS (this is {sys.platform})"
    try:
        from ._coremltools import import_coremltools

        import_coremltools()
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError as exc:
        return f"coremltools.libcoremlpython does not import: {exc}"
    return None


def auto_backend_name() -> str:
    """What ``auto`` means here: ``coreml`` on macOS with a working runtime, else ``emulator``."""
    return "coreml" if coreml_unavailable_reason() is None else "emulator"


def resolve_backend(choice: str) -> tuple[Backend | None, str | None]:
    """(backend, None) when ``choice`` can run here, else (None, reason to skip)."""
    name = auto_backend_name() if choice == "auto" else choice
    if name == "emulator":
        return EmulatorBackend(), None
    if name == "coreml":
        reason = coreml_unavailable_reason()
        if reason is not None:
            return None, f"--coreml-backend=coreml: {reason}"
        return CoreMLBackend(), None
    raise ValueError(f"unknown backend {choice!r} (known: {', '.join(BACKENDS)})")
