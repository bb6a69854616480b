"""``CoreMLModel``: what the ``coreml_model`` fixture gives a test.

A ``CoreMLModel`` is created per (test function, precision) at collection and
bound to the test's ``torch_model`` and ``example_inputs`` at setup. Binding
goes through the session's :class:`Runtime` (conversion cache + backend), so
every hypothesis example and every test sharing a model reuses one conversion.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import messages
from .backends import Backend, resolve_backend
from .cache import ConversionCache, Entry
from .convert import (
    ConversionError,
    ConversionOptions,
    capture,
    conversion_key,
    convert_captured,
    default_input_names,
    input_signature,
    unflatten,
)
from .errors import InputMismatchError, NotBoundError

if TYPE_CHECKING:
    from .verdict import ToleranceValue


@dataclass(frozen=True)
class ModelSettings:
    """Per-test settings resolved from marker, command line, ini and defaults."""

    options: ConversionOptions
    rtol: ToleranceValue = None
    atol: ToleranceValue = None
    search_fix: bool = False
    report_dir: Path | None = None


class Runtime:
    """Session-wide: the conversion cache and the backend."""

    def __init__(self, cache: ConversionCache, backend_choice: str) -> None:
        self.cache = cache
        self.backend_choice = backend_choice
        self._resolved: tuple[Backend | None, str | None] | None = None
        #: Why the last :meth:`obtain` rebuilt a damaged disk-cache entry, else None.
        self.last_rebuilt: str | None = None

    def backend(self) -> tuple[Backend | None, str | None]:
        """(backend, None), or (None, why it cannot run here)."""
        if self._resolved is None:
            self._resolved = resolve_backend(self.backend_choice)
        return self._resolved

    def obtain(
        self, torch_model: Any, example_inputs: Sequence[Any], options: ConversionOptions
    ) -> tuple[Entry, str]:
        backend, reason = self.backend()
        if backend is None:
            raise NotBoundError(str(reason))
        self.last_rebuilt = None
        # Capture once: the key is computed from the captured program, and a miss
        # converts that same program (no second trace).
        try:
            captured = capture(torch_model, example_inputs, options)
        except ConversionError as exc:
            self.cache.stats.failed += 1
            return Entry(error=exc), "failed"
        entry, event = self.cache.get(
            conversion_key(captured, options),
            convert=lambda: (convert_captured(captured, options), captured.structure),
            load=lambda path: backend.load(path, options.compute_units),
        )
        if event != "memory":
            self.last_rebuilt = entry.rebuilt
        return entry, event


_LIVE: weakref.WeakSet[CoreMLModel] = weakref.WeakSet()


def live_models() -> list[CoreMLModel]:
    """Models alive in this process (assert_finite finds the one that made its outputs)."""
    return list(_LIVE)


_DTYPE_CODES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}


class CoreMLModel:
    """A converted model at one precision; call it like the torch model.

    ``coreml_model(*inputs)`` takes tensors or arrays and returns numpy arrays
    in the torch model's output structure. ``last_inputs``/``last_outputs``
    remember the most recent call (``assert_finite`` finds its model by them).

    Diagnosis reads the public attributes below (``torch_model``,
    ``example_inputs``, ``options``, ``mlmodel``, ``precision``, ``rtol``, ``atol``,
    ``search_fix``) through :class:`~.diagnose.subject.ModelUnderTest`; the plugin
    reads ``report_dir`` and ``node_id`` to write report files.
    """

    def __init__(self, settings: ModelSettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        self.options: ConversionOptions = settings.options
        self.precision: str = settings.options.precision
        self.rtol: ToleranceValue = settings.rtol
        self.atol: ToleranceValue = settings.atol
        self.search_fix: bool = settings.search_fix
        self.report_dir: Path | None = settings.report_dir
        self.node_id: str | None = None
        self.mlmodel: Any = None
        self.backend: Backend | None = None
        self.torch_model: Any = None
        self.example_inputs: tuple[Any, ...] = ()
        self.input_names: tuple[str, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self.input_dtypes: tuple[str | None, ...] = ()
        self.package_path: Path | None = None
        self.last_inputs: tuple[Any, ...] | None = None
        self.last_outputs: Any = None
        self.event: str | None = None
        self._structure: Any = None
        _LIVE.add(self)

    def __repr__(self) -> str:
        name = type(self.torch_model).__name__ if self.torch_model is not None else "unbound"
        backend = self.backend.name if self.backend is not None else "?"
        return f"CoreMLModel({name}, {self.precision}, {backend})"

    # ------------------------------------------------------------------ binding

    def bind(self, torch_model: Any, example_inputs: Any, node_id: str | None = None) -> str:
        """Convert (or fetch from cache) for these fixtures; return how it was obtained.

        Raises :class:`ConversionError` when the model does not convert.
        """
        import torch

        if not isinstance(torch_model, torch.nn.Module):
            raise TypeError(messages.BAD_TORCH_MODEL.format(type=type(torch_model).__name__))
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        if not isinstance(example_inputs, (tuple, list)) or not all(
            isinstance(x, torch.Tensor) for x in example_inputs
        ):
            got = type(example_inputs).__name__
            if isinstance(example_inputs, (tuple, list)):
                got += " of " + ", ".join(type(x).__name__ for x in example_inputs)
            raise TypeError(messages.BAD_EXAMPLE_INPUTS.format(got=got))
        if self.runtime is None:
            raise NotBoundError(messages.NOT_BOUND)
        example_inputs = tuple(example_inputs)
        options = self.options
        if options.input_names is None:
            options = dataclasses.replace(
                options, input_names=default_input_names(torch_model, len(example_inputs))
            )
        self.torch_model = torch_model
        self.example_inputs = example_inputs
        self.node_id = node_id
        self.last_inputs = self.last_outputs = None
        entry, event = self.runtime.obtain(torch_model, example_inputs, options)
        self.event = event
        if entry.error is not None:
            self.mlmodel = None
            raise entry.error
        self.options = options
        self.backend = self.runtime.backend()[0]
        self.mlmodel = entry.mlmodel
        self.package_path = entry.path
        self._structure = entry.structure
        description = self.mlmodel.get_spec().description
        self.input_names = tuple(i.name for i in description.input)
        self.output_names = tuple(o.name for o in description.output)
        self.input_dtypes = tuple(
            _DTYPE_CODES.get(i.type.multiArrayType.dataType) for i in description.input
        )
        if event != "memory":
            # Plan (emulator) or compile (Core ML) now, so the first hypothesis example
            # is not slower than the rest; this also proves the model runs.
            self(*example_inputs)
            self.last_inputs = self.last_outputs = None
        return event

    def with_options(self, **changes: Any) -> CoreMLModel:
        """A sibling converted with changed :class:`ConversionOptions` (same cache, backend)."""
        settings = dataclasses.replace(
            self.settings, options=dataclasses.replace(self.options, **changes)
        )
        sibling = CoreMLModel(settings, self.runtime)
        sibling.bind(self.torch_model, self.example_inputs, self.node_id)
        return sibling

    # ------------------------------------------------------------------ running

    def prepare(self, inputs: Sequence[Any]) -> tuple[Any, ...]:
        """Validate ``inputs`` against the example inputs; return them as numpy arrays."""
        import numpy as np

        if self.mlmodel is None:
            raise NotBoundError(messages.NOT_BOUND)
        model = type(self.torch_model).__name__
        if len(inputs) != len(self.example_inputs):
            raise InputMismatchError(
                messages.WRONG_INPUT_COUNT.format(
                    got=len(inputs),
                    model=model,
                    want=len(self.example_inputs),
                    signature=list(input_signature(self.example_inputs)),
                )
            )
        arrays = []
        for i, (x, example) in enumerate(zip(inputs, self.example_inputs, strict=True)):
            array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            if tuple(array.shape) != tuple(example.shape):
                raise InputMismatchError(
                    messages.WRONG_INPUT_SHAPE.format(
                        index=i,
                        name=self.input_names[i] if i < len(self.input_names) else f"x{i}",
                        got=tuple(array.shape),
                        model=model,
                        want=tuple(example.shape),
                    )
                )
            arrays.append(array)
        return tuple(arrays)

    def run_named(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Run on a feed keyed by Core ML input names; outputs keyed by output name."""
        import numpy as np

        if self.mlmodel is None or self.backend is None:
            raise NotBoundError(messages.NOT_BOUND)
        cast = {}
        for name, dtype in zip(self.input_names, self.input_dtypes, strict=True):
            value = np.asarray(feed[name])
            with np.errstate(over="ignore"):  # fp16 inputs overflow to inf, as on device
                cast[name] = value.astype(dtype) if dtype is not None else value
        extra = {k: v for k, v in feed.items() if k not in cast}
        return self.backend.predict(self.mlmodel, {**cast, **extra})

    def __call__(self, *inputs: Any) -> Any:
        arrays = self.prepare(inputs)
        outputs = self.run_named(dict(zip(self.input_names, arrays, strict=True)))
        leaves = [outputs[name] for name in self.output_names]
        result = unflatten(self._structure, iter(leaves))
        self.last_inputs = arrays
        self.last_outputs = result
        return result

    def flat_outputs(self, result: Any) -> list[Any]:
        """Leaves of a result in output order."""
        out: list[Any] = []
        _flatten(result, out)
        return out

    def reference(self, *inputs: Any) -> Any:
        """The torch model's output on ``inputs`` (validated like a Core ML call), as numpy."""
        import torch

        arrays = self.prepare(inputs)
        tensors = [
            torch.from_numpy(a.copy()).to(example.dtype)
            for a, example in zip(arrays, self.example_inputs, strict=True)
        ]
        with torch.no_grad():
            result = self.torch_model(*tensors)
        return _to_numpy(result)


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, (tuple, list)):
        for v in value:
            _flatten(v, out)
    else:
        out.append(value)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return value.detach().cpu().numpy()


__all__ = ["ConversionError", "CoreMLModel", "InputMismatchError", "ModelSettings", "Runtime"]
