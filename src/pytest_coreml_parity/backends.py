"""Where converted models run: the real Core ML runtime (macOS) or the emulator, and,
for the ``coreai`` target, Apple's Core AI (its interpreter, or the system runtime on macOS).

``resolve_backend`` turns the ``--coreml-backend`` choice into a backend, or
into the reason it cannot run here; ``resolve_coreai_backend`` does the same for
the coreai target. The plugin skips (never passes) tests whose backend is unavailable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

BACKENDS: tuple[str, ...] = ("auto", "coreml", "emulator")


class Backend(Protocol):
    """A runner: what runs a stack's converted artifact (every member callers use)."""

    #: The runner's name in reports and summaries: ``emulator``, ``coreml``, ``coreai-interpreter``.
    name: str
    #: True for the emulator: it can record every op's value (headroom, guided fuzzing).
    records: bool
    #: True for a real Apple runtime: models load compiled, image inputs take PIL images.
    on_device: bool

    def load(self, package: Path, compute_units: str) -> Any:
        """Open a cached artifact (``.mlpackage``, program directory) in the form :meth:`predict` needs."""

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``mlmodel`` on ``feed``; outputs keyed by output name."""

    def make_state(self, mlmodel: Any, initial: Mapping[str, np.ndarray]) -> Any:
        """A fresh state of a stateful program, buffers set to ``initial``."""

    def predict_stateful(
        self, mlmodel: Any, feed: Mapping[str, np.ndarray], state: Any
    ) -> dict[str, np.ndarray]:
        """:meth:`predict` reading and advancing ``state`` (from :meth:`make_state`)."""

    def with_profile(self, profile: str) -> Backend:
        """This runner under the emulator execution ``profile`` (others: itself)."""


class EmulatorBackend:
    """Runs ML Programs with Core ML's typed fp16 storage, on any OS (see docs/emulator.md).

    ``profile`` is the emulator's execution profile (``fp16_execution``: typed,
    float32 or fp16-sequential), chosen by ``--coreml-emulator-profile``.
    """

    name = "emulator"
    records = True
    on_device = False

    def __init__(self, profile: str = "typed") -> None:
        self.profile = profile

    def with_profile(self, profile: str) -> EmulatorBackend:
        """This backend under ``profile`` (itself when unchanged)."""
        return self if profile == self.profile else EmulatorBackend(profile)

    def load(self, package: Path, compute_units: str) -> Any:
        """The package as an ``emulator.SavedModel``: its spec parsed without importing
        coremltools (a warm session never imports it); the ``MLModel`` is built on first use
        of anything else."""
        from .emulator.saved import SavedModel

        model = SavedModel(package)
        model.get_spec()  # a spec that does not parse is a damaged cache entry
        return model

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .emulator import emulate

        # A multi-function package opened with function_name= runs that function.
        function = getattr(mlmodel, "function_name", None) or "main"
        return emulate(mlmodel, feed, function_name=function, fp16_execution=self.profile)

    def make_state(self, mlmodel: Any, initial: Mapping[str, np.ndarray]) -> Any:
        """A fresh ``EmulatorState`` for a stateful program, buffers set to ``initial``
        (rounded to the declared float16), the others zero as Core ML's ``make_state``."""
        from .emulator import planned

        state = planned(mlmodel, "main", self.profile).make_state()
        for name, value in initial.items():
            state[name] = value
        return state

    def predict_stateful(
        self, mlmodel: Any, feed: Mapping[str, np.ndarray], state: Any
    ) -> dict[str, np.ndarray]:
        """:meth:`predict` reading and advancing ``state`` (from :meth:`make_state`)."""
        from .emulator import emulate

        return emulate(mlmodel, feed, fp16_execution=self.profile, state=state)


class CoreMLBackend:
    """The real Core ML runtime via ``MLModel.predict`` (macOS only)."""

    name = "coreml"
    records = False
    on_device = True

    def with_profile(self, profile: str) -> CoreMLBackend:
        """The runtime has no emulator profile: itself."""
        return self

    def load(self, package: Path, compute_units: str) -> Any:
        from ._coremltools import import_coremltools

        ct = import_coremltools()
        return ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, compute_units))

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # MLModel.predict wants arrays in the declared dtypes; the caller casts them.
        import numpy as np

        result = mlmodel.predict(dict(feed))
        return {name: np.asarray(value) for name, value in result.items()}

    def make_state(self, mlmodel: Any, initial: Mapping[str, np.ndarray]) -> Any:
        """``MLModel.make_state()``, buffers written with ``initial`` (untested: needs macOS)."""
        import numpy as np

        state = mlmodel.make_state()
        for name, value in initial.items():
            state.write_state(name, np.asarray(value, dtype=np.float16))
        return state

    def predict_stateful(
        self, mlmodel: Any, feed: Mapping[str, np.ndarray], state: Any
    ) -> dict[str, np.ndarray]:
        import numpy as np

        result = mlmodel.predict(dict(feed), state=state)
        return {name: np.asarray(value) for name, value in result.items()}


class CoreAIBackend:
    """Core AI programs, run in the isolated worker process (see docs/coreai.md).

    ``coreai-interpreter``: coreai-core's bundled interpreter (Linux x86_64, and macOS
    before the OS framework exists). ``coreai-runtime``: the same worker on macOS, where
    ``AIModelAsset.executable()`` uses Core AI's system framework. A crash or hang of
    either becomes a CoreAIRuntimeError in the test; the pytest process survives.
    """

    records = False
    on_device = False

    def __init__(self, name: str = "coreai-interpreter") -> None:
        self.name = name

    def with_profile(self, profile: str) -> CoreAIBackend:
        """The interpreter has no emulator profile: itself."""
        return self

    def make_state(self, mlmodel: Any, initial: Mapping[str, np.ndarray]) -> Any:
        """Core AI programs carry no state across calls here: a clear error."""
        from . import messages
        from .errors import NotBoundError

        raise NotBoundError(messages.STATE_UNSUPPORTED_BACKEND.format(backend=self.name))

    def predict_stateful(
        self, mlmodel: Any, feed: Mapping[str, np.ndarray], state: Any
    ) -> dict[str, np.ndarray]:
        from . import messages
        from .errors import NotBoundError

        raise NotBoundError(messages.STATE_UNSUPPORTED_BACKEND.format(backend=self.name))

    def load(self, package: Path, compute_units: str) -> Any:
        """Open a cached program directory; verifies main.hash (CacheEntryError if bad)."""
        from .coreai.program import CoreAIProgram

        return CoreAIProgram.load(package)

    def predict(self, mlmodel: Any, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = mlmodel.run(feed)
        return result


def coreai_backend_name() -> str:
    """``coreai-runtime`` on macOS (the OS framework, untested here), else ``coreai-interpreter``."""
    return "coreai-runtime" if sys.platform == "darwin" else "coreai-interpreter"


def resolve_coreai_backend() -> tuple[Backend | None, str | None]:
    """(the Core AI backend, None), or (None, why Core AI cannot run here)."""
    from .coreai.availability import coreai_unavailable_reason

    reason = coreai_unavailable_reason(deep=True)
    if reason is not None:
        return None, reason
    return CoreAIBackend(coreai_backend_name()), None


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
    return CoreMLBackend.name if coreml_unavailable_reason() is None else EmulatorBackend.name


def _emulator() -> tuple[Backend | None, str | None]:
    return EmulatorBackend(), None


def _coreml_runtime() -> tuple[Backend | None, str | None]:
    reason = coreml_unavailable_reason()
    if reason is not None:
        return None, f"--coreml-backend={CoreMLBackend.name}: {reason}"
    return CoreMLBackend(), None


#: Core ML's runners by ``--coreml-backend`` name: (runner, None) or (None, why not here).
RUNNERS: dict[str, Callable[[], tuple[Backend | None, str | None]]] = {
    EmulatorBackend.name: _emulator,
    CoreMLBackend.name: _coreml_runtime,
}


def resolve_backend(choice: str) -> tuple[Backend | None, str | None]:
    """(backend, None) when ``choice`` can run here, else (None, reason to skip)."""
    name = auto_backend_name() if choice == "auto" else choice
    if name not in RUNNERS:
        raise ValueError(f"unknown backend {choice!r} (known: {', '.join(BACKENDS)})")
    return RUNNERS[name]()
